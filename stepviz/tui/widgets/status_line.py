"""The status line: model, mode, scheduler, step i/N, t, sigma, alpha_cumprod, guidance scale."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

from ...readouts import status_text
from ...session import Shown


class StatusLine(Static):
    shown: reactive[Shown | None] = reactive(None, always_update=True)
    _text: str | None = None

    def watch_shown(self, shown: Shown | None) -> None:
        text = "loading the model..." if shown is None else status_text(shown.view, shown.record)
        if text != self._text:  # an update costs a layout of the screen
            self._text = text
            self.update(text)
