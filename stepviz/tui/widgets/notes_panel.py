"""The notes area: the lesson's current note, shown whole (wrapped, scrollable), and every note so far.

A lesson note stays until the next one replaces it: what the app did (a swap, a rewind, an export)
goes to a notification and to the history (`n` rereads it), never over the note. Each note remembers the step
it came at, so looking back or rewinding shows the note of the step shown, not the latest one.
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
        self.at_steps: list[tuple[int, str]] = []  # (steps taken when it came, text) of each lesson note
        self._keys_hints: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Static("", id="notes-text", markup=False)

    @property
    def lines(self) -> list[str]:
        """Every note and message so far, one line each."""
        return [text for _, text in self.history]

    def note(self, text: str, step: int | None = None, keys_hint: bool = False) -> None:
        """Show a note whole, in place of the one before (which stays in the history); `step`: the steps taken
        when it came (None: the same step as the note before); `keys_hint`: the screen's own welcome, which
        names its keys (not a lesson note: another screen does not show it)."""
        if keys_hint:
            self._keys_hints.add(str(text))
        self.history.append(("note", str(text)))
        if step is None:
            step = self.at_steps[-1][0] if self.at_steps else 0
        self.at_steps = [(at, kept) for at, kept in self.at_steps if at <= step] + [(step, str(text))]
        self._show(str(text))

    @property
    def lesson_note(self) -> str:
        """The note shown, when it is a lesson's ("" for the screen's welcome)."""
        return "" if self.current in self._keys_hints else self.current

    def show_for_step(self, step: int) -> None:
        """Show the latest note that came at or before `step` (steps taken), as the run showed it then."""
        due = [text for at, text in self.at_steps if at <= step]
        if due and due[-1] != self.current:
            self._show(due[-1])

    def _show(self, text: str) -> None:
        self.current = text
        self.query_one("#notes-text", Static).update(text)
        self.scroll_home(animate=False)

    def log(self, text: str) -> None:
        self.history.append(("app", str(text)))

    def notes(self) -> list[str]:
        return [text for kind, text in self.history if kind == "note"]
