"""`g`: a new guidance scale, checked by the engine's own rule before the dialog closes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from ...engine.checks import StepvizInputError, check_guidance
from ...engine.prediction import prediction_for


class GuidanceDialog(ModalScreen[float | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, current: float, branch_label: str = "", prediction_type: str = "epsilon") -> None:
        super().__init__()
        self.current, self.branch_label = current, branch_label
        self.cfg_line = prediction_for(prediction_type).cfg_line()

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Guidance scale s{self.branch_label} (now {self.current:g}), from the next step on:")
            yield Input(value=f"{self.current:g}", id="guidance-input")
            yield Label(f"{self.cfg_line}; enter to apply, escape to cancel",
                        id="dialog-hint")
            yield Label("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Apply", id="apply", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.apply(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.apply(self.query_one(Input).value)
        else:
            self.dismiss(None)

    def apply(self, text: str) -> None:
        try:
            scale = check_guidance(text.strip())
        except StepvizInputError as exc:
            self.query_one("#dialog-error", Label).update(str(exc))
            self.notify(str(exc), title="Not allowed", severity="error")
            return
        self.dismiss(scale)

    def action_cancel(self) -> None:
        self.dismiss(None)
