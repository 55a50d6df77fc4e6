"""The status line: model, mode, scheduler, step i/N, t, sigma, alpha_cumprod, guidance scale, of the step
looked at; in front, whether auto-play runs and what the engine is busy with (loading, a slow step)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from ...run.readouts import status_text
from ...run.session import Shown


class StatusLine(Static):
    shown: reactive[Shown | None] = reactive(None, always_update=True)
    playing: reactive[bool] = reactive(False)
    busy: reactive[str | None] = reactive(None)
    _text: Text | None = None

    def watch_shown(self) -> None:
        self._update()

    def watch_playing(self) -> None:
        self._update()

    def watch_busy(self) -> None:
        self._update()

    def on_resize(self) -> None:
        self._update()

    def _update(self) -> None:
        text = Text()
        if self.playing:
            text.append(" ▶ PLAYING (p pauses) ", style="bold black on green")
            text.append(" ")
        if self.busy:
            text.append(f" {self.busy} ", style="bold black on yellow")
            text.append(" ")
        if self.shown is not None:  # two rows at most: at 80 columns the run's constants give way to the step's
            rows = 2 * (self.content_size.width or 1000)
            full = status_text(self.shown.view, self.shown.record)
            text.append(full if len(text.plain) + len(full) + 8 <= rows else
                        status_text(self.shown.view, self.shown.record, narrow=True))
        elif not self.busy:
            text.append("loading the model...")
        if text != self._text:  # an update costs a layout of the screen
            self._text = text
            self.update(text)
