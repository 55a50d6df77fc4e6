"""`s`: pick a scheduler for the remaining steps, from a list showing family and order."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...engine.schedulers import SCHEDULERS


def scheduler_row(info, current: str) -> str:
    mark = "*" if info.name == current else " "
    return f"{mark} {info.name:<9} {info.family:<6} order {info.order}  {info.description}"


class SchedulerPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel"),
                Binding("q", "app.quit", "quit", priority=True, show=False)]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Scheduler for the remaining steps (family: vp or sigma latent space; * = now):")
            options = [Option(scheduler_row(info, self.current), id=name) for name, info in SCHEDULERS.items()]
            picker = OptionList(*options, id="scheduler-list")
            yield picker
            yield Label("enter or click to pick, escape to cancel", id="dialog-hint")

    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        names = list(SCHEDULERS)
        picker.highlighted = names.index(self.current) if self.current in names else 0
        picker.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
