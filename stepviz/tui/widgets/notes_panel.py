"""The notes area: the lesson's current note, shown whole (wrapped, scrollable), and every note so far.

A lesson note stays until the next one replaces it: what the app did (a swap, a rewind, an export)
goes to a notification and to the history (`n` rereads it), never over the note.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class NotesPanel(VerticalScroll, can_focus=False):
    """`note(text)` shows a lesson note; `log(text)` only keeps an app message in the history."""

    DEFAULT_CSS = """
    NotesPanel { height: auto; max-height: 12; }
    NotesPanel > Static { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history: list[tuple[str, str]] = []  # (kind, text): "note" (the lesson's) or "app"
        self.current = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="notes-text", markup=False)

    @property
    def lines(self) -> list[str]:
        """Every note and message so far, one line each."""
        return [text for _, text in self.history]

    def note(self, text: str) -> None:
        """Show a note whole, in place of the one before (which stays in the history)."""
        self.history.append(("note", str(text)))
        self.current = str(text)
        self.query_one("#notes-text", Static).update(self.current)
        self.scroll_home(animate=False)

    def log(self, text: str) -> None:
        self.history.append(("app", str(text)))

    def notes(self) -> list[str]:
        return [text for kind, text in self.history if kind == "note"]
