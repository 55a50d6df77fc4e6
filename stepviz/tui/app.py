"""The stepviz terminal UI: a thin App around the main screen (see screens/main.py).

Nothing here imports torch: the first frame ("loading the model...") is painted before the engine
worker imports torch and diffusers and loads the model.
"""

from __future__ import annotations

import os
import sys

from textual.app import App

from ..session import RunSession
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


def leave_a_core_for_the_ui() -> int | None:
    """Let torch use every core but one (unless OMP_NUM_THREADS says otherwise); the count set, or None.

    The UI thread keeps a core to answer keys on, and on a busy machine a step is much faster: torch
    waiting on threads that another process holds made a toy step 30-100x slower on 2 shared cores.
    Before torch is imported this goes through OMP_NUM_THREADS (torch reads it when it starts).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    threads = max(1, (os.cpu_count() or 2) - 1)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads


def run_app(settings, graphics: str = "halfcell") -> int:
    """Run the TUI until the user quits; 0 on a normal exit."""
    leave_a_core_for_the_ui()
    StepvizApp(settings, graphics=graphics).run()
    return 0
