"""`n`: every note of the lesson so far, and what the app did, to reread (escape closes)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def history_text(history: list[tuple[str, str]]) -> Text:
    """The notes in order, newest last; the app's own messages dimmed."""
    text = Text()
    for number, (kind, line) in enumerate(history):
        if number:
            text.append("\n\n" if kind == "note" else "\n")
        text.append(line, style="dim" if kind == "app" else "")
    return text or Text("no notes yet")


class NotesHistory(ModalScreen[None]):
    BINDINGS = [Binding("escape,n", "dismiss", "close"),
                Binding("q", "app.quit", "quit", priority=True, show=False)]

    def __init__(self, history: list[tuple[str, str]]) -> None:
        super().__init__()
        self.history = list(history)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="notes-history"):
            yield Static(history_text(self.history), id="notes-history-text")

    def on_mount(self) -> None:
        body = self.query_one("#notes-history")
        body.border_title = "notes so far (newest last)"
        body.border_subtitle = "up/down to scroll · escape to close"
        body.scroll_end(animate=False)
