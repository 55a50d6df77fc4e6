"""`f`: the run and its fork side by side. Steps go to both; guidance and scheduler edits to the fork."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from ...readouts import guidance_text
from ...session import FORK, MAIN, Shown
from ..widgets.preview_panel import PreviewPanel
from ..widgets.status_line import StatusLine

TITLES = {MAIN: "A: the run", FORK: "B: the fork (g and s change this one)"}


class CompareScreen(Screen):
    BINDINGS = [
        Binding("space", "step", "step both", priority=True),
        Binding("p", "play", "play/pause both", priority=True),
        Binding("g", "guidance", "fork's guidance", priority=True),
        Binding("s", "scheduler", "fork's scheduler", priority=True),
        Binding("v", "preview", "preview", priority=True),
        Binding("escape,f", "close", "back", priority=True),
        Binding("question_mark", "help", "help", priority=True, key_display="?"),
        Binding("q", "quit", "quit", priority=True),
    ]

    def __init__(self, main, graphics: str = "halfcell") -> None:
        super().__init__()
        self.main, self.graphics = main, graphics
        self._pending: dict = {}  # what arrived before the screen was composed
        self._ready = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="branches"):
            for branch in (MAIN, FORK):
                with Vertical(classes="branch", id=f"branch-{branch}"):
                    yield Label(getattr(self.main, "compare_titles", TITLES)[branch], classes="branch-title")
                    yield StatusLine("", classes="branch-status")
                    yield PreviewPanel(self.graphics, id=f"previews-{branch}")
                    yield Static("", classes="branch-guidance")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._ready = True
        for key, args in list(self._pending.items()):
            (self.show_view if key[0] == "view" else self.show_pictures)(*args)
        self._pending.clear()

    def show_view(self, view) -> None:
        if not self._ready:
            self._pending[("view", view.branch)] = (view,)
            return
        column = self.query_one(f"#branch-{view.branch}")
        column.query_one(StatusLine).shown = Shown(view)
        record = view.record(None)
        column.query_one(".branch-guidance", Static).update(guidance_text(record, column.content_size.width))

    def show_pictures(self, branch: str, pictures: dict, kind: str) -> None:
        if not self._ready:
            self._pending[("pictures", branch)] = (branch, pictures, kind)
            return
        view = self.main.views.get(branch)
        step = 0 if view is None else view.steps_taken
        self.query_one(f"#previews-{branch}", PreviewPanel).show(pictures, kind, step)

    def action_step(self) -> None:
        self.main.start_steps((MAIN, FORK), 1)

    def action_play(self) -> None:
        if self.main.playing:
            self.main.pause()
        else:
            self.main.start_steps((MAIN, FORK), None)

    def action_guidance(self) -> None:
        self.main.ask_guidance(FORK)

    def action_scheduler(self) -> None:
        self.main.ask_scheduler(FORK)

    def action_preview(self) -> None:
        self.main.action_preview()
        for branch in (MAIN, FORK):
            self.main.draw_pictures(branch, Shown(self.main.views[branch]))

    def action_close(self) -> None:
        self.main.pause()
        self.dismiss()

    def action_help(self) -> None:
        self.main.action_help()

    def action_quit(self) -> None:
        self.main.action_quit()
