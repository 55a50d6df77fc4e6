"""The stepviz terminal UI: a thin App around the main screen (see screens/main.py)."""

from __future__ import annotations

from textual.app import App

from .session import RunSession
from .widgets.picture import GRAPHICS


class StepvizApp(App):
    """Step through a diffusion run. `pipe=None` loads `settings.model` in a worker."""

    CSS_PATH = "stepviz.tcss"
    TITLE = "stepviz"
    ENABLE_COMMAND_PALETTE = False  # ctrl+p would only clutter the footer; every action has its key

    def __init__(self, settings, pipe=None, graphics: str = "halfcell") -> None:
        super().__init__()
        if graphics not in GRAPHICS:
            raise ValueError(f"graphics={graphics!r} is unknown: use one of {', '.join(GRAPHICS)}")
        self.session = RunSession(settings, pipe)
        self.graphics = graphics

    def on_mount(self) -> None:
        from .screens.main import MainScreen

        self.push_screen(MainScreen(self.session, self.graphics))


def run_app(settings, graphics: str = "halfcell") -> int:
    """Run the TUI until the user quits; 0 on a normal exit."""
    StepvizApp(settings, graphics=graphics).run()
    return 0
