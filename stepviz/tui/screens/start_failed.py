"""The run could not start (only the loaded model could tell): say why in one line, and offer the way out."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

START_FAILED_EXIT_CODE = 2  # as the command line's own refusals


class StartFailed(ModalScreen[None]):
    """Shown instead of a screen left on "loading the model..."; quitting prints the line on the terminal."""

    DEFAULT_CSS = "StartFailed #dialog-error { width: 1fr; margin: 1 0; }"
    BINDINGS = [Binding("q", "quit", "quit", priority=True), Binding("escape", "quit", "quit"),
                Binding("enter", "quit", "quit")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"The run could not start: {self.title_text}", id="start-failed-title")
            yield Static(self.text, id="dialog-error")
            yield Label("Fix the model or the options and start stepviz again.", id="dialog-hint")
            yield Button("Quit (q)", id="quit", variant="error")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_quit()

    def action_quit(self) -> None:
        self.app.exit(return_code=START_FAILED_EXIT_CODE, message=f"stepviz: error: {self.text}")
