"""`s`: pick a scheduler for the remaining steps, from a list showing family and order."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...engine.schedulers import family_schedulers


def scheduler_row(info, current: str, width: int = 9) -> str:
    mark = "*" if info.name == current else " "
    return f"{mark} {info.name:<{width}} {info.family:<6} order {info.order}  {info.description}"


class SchedulerPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel"),
                Binding("q", "app.quit", "quit", priority=True, show=False)]

    def __init__(self, current: str, family: str = "vp") -> None:
        """family: the run's latent family; a flow run (SD3, FLUX.1) is offered the flow schedulers only."""
        super().__init__()
        self.current, self.family = current, family
        self.schedulers = family_schedulers(family)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            families = "flow" if self.family == "flow" else "vp or sigma"
            yield Label(f"Scheduler for the remaining steps (family: {families} latent space; * = now):")
            width = max(9, *(len(name) + 1 for name in self.schedulers))
            options = [Option(scheduler_row(info, self.current, width), id=name)
                       for name, info in self.schedulers.items()]
            picker = OptionList(*options, id="scheduler-list")
            yield picker
            yield Label("enter or click to pick, escape to cancel", id="dialog-hint")

    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        names = list(self.schedulers)
        picker.highlighted = names.index(self.current) if self.current in names else 0
        picker.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
