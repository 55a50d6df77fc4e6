"""The notes area: lesson text, scripted notes and what the app did (rewinds, swaps, exports)."""

from __future__ import annotations

from textual.widgets import Log


class NotesPanel(Log):
    DEFAULT_CSS = "NotesPanel { height: 3; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=500, auto_scroll=True)
        self.can_focus = False

    def note(self, text: str) -> None:
        for line in str(text).splitlines() or [""]:
            self.write_line(line)
