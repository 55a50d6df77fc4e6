"""The status line: model, mode, scheduler, step i/N, t, sigma, alpha_cumprod, guidance scale, of the step
looked at; in front, whether auto-play runs and what the engine is busy with (loading, a slow step)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from ...render.readouts import status_text
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
        if self.shown is not None:  # two rows at most, broken between parts: at 80 columns the run's constants
            width = self.content_size.width or 1000  # give way to the step's
            used = len(text.plain)
            rows = broken_between_parts(status_text(self.shown.view, self.shown.record), width, used)
            if rows.count("\n") > 1:
                rows = broken_between_parts(status_text(self.shown.view, self.shown.record, narrow=True), width,
                                            used)
            text.append(rows)
        elif not self.busy:
            text.append("loading the model...")
        if text != self._text:  # an update costs a layout of the screen
            self._text = text
            self.update(text)


def broken_between_parts(text: str, width: int, used: int = 0) -> str:
    """`text` (parts joined by ' · ') with a line break before each part that would run past `width` columns
    (`used`: columns already taken on the first row), so no phrase is cut in two."""
    rows, row = [], ""
    for part in text.split(" · "):
        joined = f"{row} · {part}" if row else part
        if row and used + len(joined) > width:
            rows.append(row)
            row, used = part, 0
        else:
            row = joined
    return "\n".join([*rows, row])
