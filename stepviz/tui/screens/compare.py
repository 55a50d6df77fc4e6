"""2-8 runs side by side, stepping in lockstep: a fork (`f`), a lesson's [[compare]] runs (`c`), a trace.

`CompareScreen(session, branches)` takes (branch, label) pairs of a RunSession and drives them as the main
screen drives its run: each key builds a job (jobs.py: StepTogether, CatchUp, SetGuidanceScale, SetScheduler,
Refresh) that runs in this screen's engine worker, calls the session (its lockstep rounds are
run/lockstep.py's) and posts the same `EngineJobs` messages back. So any app with a session can show one.
It knows nothing of the screen that opened it: it returns its preview kind when it closes, and the lesson
notes it shows (`EngineJobs.EventsDue`) bubble on to the app, which adds them to the run's notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.screen import Screen
from textual.widgets import Label, Static
from textual.worker import get_current_worker

from ...render.readouts import compare_numbers, status_text
from ...run.lockstep import COLUMN_LETTERS, common_step, lockstep_branches
from ...run.session import Shown
from ..engine_jobs import EngineJobs, JobWorkers
from ..jobs import CatchUp, Refresh, SetGuidanceScale, SetScheduler, StepTogether
from ..widgets.key_bar import Key, KeyBar
from ..widgets.notes_panel import NotesPanel
from ..widgets.preview_panel import PreviewPanel, next_kind

LETTERS = COLUMN_LETTERS


class CompareScreen(JobWorkers, Screen):
    """The branches in a grid, stepped in lockstep by the screen's engine worker."""

    BINDINGS = [
        Binding("space", "step", "step all", priority=True),
        Binding("p", "play", "play all", priority=True),
        Binding("tab", "pick", "pick run", priority=True),
        Binding("g", "guidance", "guidance", priority=True),
        Binding("s", "scheduler", "scheduler", priority=True),
        Binding("v", "preview", "preview", priority=True),
        Binding("question_mark", "help", "help", priority=True),
        Binding("escape", "close", "back", priority=True),
        Binding("q", "quit", "quit", priority=True),
    ]

    def __init__(self, session, branches: Sequence[tuple[str, str]], graphics: str = "halfcell", *,
                 kind: str = "approx", selected: int = 0, title: str = "", catch_up: bool = False) -> None:
        """The lesson events due on the session's main branch come with its steps: their notes are shown here
        and bubble on to the app (`EngineJobs.EventsDue`); `catch_up` first brings every run to the step of the
        first one."""
        super().__init__()
        self.branches = lockstep_branches([branch for branch, _ in branches])
        self.labels = [label for _, label in branches]
        self.jobs = EngineJobs(session, self.post_message)  # the jobs' messages come to this screen
        self.graphics, self.kind, self.title_text = graphics, kind, title
        self.selected = selected % len(branches)
        self.catch_up = catch_up
        self.views: list = [None] * len(branches)
        self._drawn: dict[int, tuple] = {}  # column -> (record index, kind) of the pictures asked for
        self._show_asked = False  # a repaint waits for the views that came with it (show_views)
        self.playing = False

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Label(self.title_text or "the runs side by side, same step in each", id="compare-title")
        with Container(id="branches", classes=f"runs-{len(self.branches)}"):
            for column, label in enumerate(self.labels):
                with Vertical(classes="branch", id=f"branch-{column}"):
                    yield Label(f"{LETTERS[column]}: {label}", classes="branch-title")
                    yield Static("", classes="branch-status")
                    yield PreviewPanel(self.graphics, id=f"previews-{column}")
                    yield Static("", classes="branch-numbers")
        yield NotesPanel(id="compare-notes")
        yield KeyBar(self.key_bar_keys(), id="compare-keys")

    def key_bar_keys(self) -> list[Key]:
        picked = LETTERS[self.selected]
        return [Key("space", "step all", "step"), Key("p", "pause" if self.playing else "play all", "pause"
                                                      if self.playing else "play"),
                Key("tab", f"pick run ({picked})", f"pick {picked}"), Key("g", f"guidance of {picked}", "guid"),
                Key("s", f"scheduler of {picked}", "sched"), Key("v", "preview", "view"), Key("?", "help"),
                Key("esc", "back"), Key("q", "quit")]

    def on_mount(self) -> None:
        self.query_one("#compare-notes").display = False
        self.run_engine(CatchUp(tuple(self.branches)) if self.catch_up else Refresh(tuple(self.branches)))

    # ------------------------------------------------------------ workers (threads; they only post messages;
    # run_engine and run_edit come from JobWorkers)
    def change_guidance(self, column: int, scale: float) -> None:
        self.run_edit(SetGuidanceScale(scale, self.branches[column]))

    def swap_scheduler(self, column: int, name: str) -> None:
        self.run_edit(SetScheduler(name, self.branches[column]))

    def draw(self, column: int, shown: Shown) -> None:
        """The pictures of the step a column shows (one worker per column; a newer request wins)."""
        record, branch = shown.record, self.branches[column]
        index = None if record is None else record.index
        job = partial(self.jobs.pictures, branch, record, index, self.kind, shown.view.initial_latents, {})
        self.run_worker(lambda: job(cancelled=lambda: get_current_worker().is_cancelled), thread=True,
                        exclusive=True, group=f"pictures-{branch}", exit_on_error=False)

    # ------------------------------------------------------------ messages
    def shown(self, column: int) -> Shown | None:
        view = self.views[column]
        if view is None:
            return None
        step = common_step(self.views) if all(v is not None for v in self.views) else None
        if step is None or step >= view.steps_taken:
            return Shown(view)
        return Shown(view, step - 1)

    def on_engine_jobs_run_changed(self, message: EngineJobs.RunChanged) -> None:
        if self.take_view(message.view) and message.notice:
            self.notify(message.notice, title="Scheduler")

    def take_view(self, view) -> bool:
        """Keep a fresh view of one of the columns' branches (False: not one of them), and show the columns once
        the views that came with it are in too: a round's views come one message each."""
        if view is None or view.branch not in self.branches:
            return False
        self.views[self.branches.index(view.branch)] = view
        if not self._show_asked:
            self._show_asked = True
            self.call_later(self.show_views)
        return True

    def show_views(self) -> None:
        """Each column at the common step (once every run's view is in)."""
        self._show_asked = False
        if any(view is None for view in self.views) or not self.is_attached:
            return
        for column in range(len(self.views)):
            shown = self.shown(column)
            box = self.query_one(f"#branch-{column}")
            record = shown.record
            box.query_one(".branch-status", Static).update(status_text(shown.view, record, compact=True))
            box.query_one(".branch-numbers", Static).update(compare_numbers(record))
            box.set_class(column == self.selected, "-picked")
            key = (None if record is None else record.index, self.kind)
            if self._drawn.get(column) != key:
                self._drawn[column] = key
                self.draw(column, shown)
        if all(v.done for v in self.views) and not self.playing:
            self.query_one("#compare-title", Label).update(
                "every run is finished: esc goes back, where left looks at an earlier step and f forks from it")

    def on_engine_jobs_pictures_ready(self, message: EngineJobs.PicturesReady) -> None:
        if message.branch not in self.branches:
            return
        column = self.branches.index(message.branch)
        shown = self.shown(column)
        record = None if shown is None else shown.record
        if message.kind == self.kind and (None if record is None else record.index) == message.index:
            self.query_one(f"#previews-{column}", PreviewPanel).show(
                message.pictures, message.kind, 0 if record is None else record.index + 1, shown.view.mode)

    def on_engine_jobs_failed(self, message: EngineJobs.Failed) -> None:
        self.notify(message.text, title=message.title, severity="error", timeout=8)
        self._stopped_playing()
        self.take_view(message.view)

    def on_engine_jobs_events_due(self, message: EngineJobs.EventsDue) -> None:
        """The lesson's notes due at this round (the message goes on to the app, for the run's own notes)."""
        panel = self.query_one("#compare-notes", NotesPanel)
        for note in message.notes:
            panel.display = True
            panel.note(note)
        if message.pause:
            self._stopped_playing()
            self.notify("paused by the lesson: space or p to go on", title="Lesson")

    def on_engine_jobs_play_stopped(self, message: EngineJobs.PlayStopped) -> None:
        self._stopped_playing()

    def _stopped_playing(self) -> None:
        self.playing = False
        if self.is_attached:
            self.query_one(KeyBar).set_keys(self.key_bar_keys())

    # ------------------------------------------------------------ keys
    def action_step(self) -> None:
        if self.views and all(v is not None and v.done for v in self.views):
            self.notify("every run is finished: esc goes back; there left looks at an earlier step and f forks "
                        "from it", title="Finished")
            return
        self.run_engine(StepTogether(tuple(self.branches), 1))

    def action_play(self) -> None:
        if self.playing:
            self.workers.cancel_group(self, "engine")
            self._stopped_playing()
            return
        self.playing = True
        self.query_one(KeyBar).set_keys(self.key_bar_keys())
        self.run_engine(StepTogether(tuple(self.branches), None))

    def action_pick(self) -> None:
        self.selected = (self.selected + 1) % len(self.branches)
        for column in range(len(self.branches)):
            self.query_one(f"#branch-{column}").set_class(column == self.selected, "-picked")
        self.query_one(f"#branch-{self.selected}").scroll_visible()  # 5 or more runs: the grid may scroll
        self.query_one(KeyBar).set_keys(self.key_bar_keys())

    def action_guidance(self) -> None:
        from .guidance_dialog import GuidanceDialog

        column = self.selected
        view = self.views[column]
        if view is None:
            return
        self.app.push_screen(GuidanceDialog(view.guidance_scale, f" of {LETTERS[column]}"),
                             lambda scale: scale is not None and self.change_guidance(column, scale))

    def action_scheduler(self) -> None:
        from .scheduler_picker import SchedulerPicker

        column = self.selected
        view = self.views[column]
        if view is None:
            return
        if view.done:
            self.notify(f"{LETTERS[column]} is finished: tab picks another run", title="Scheduler")
            return
        self.app.push_screen(SchedulerPicker(view.scheduler, view.family),
                             lambda name: name is not None and self.swap_scheduler(column, name))

    def action_preview(self) -> None:
        self.kind = next_kind(self.kind)
        self.show_views()

    def action_help(self) -> None:
        from .help import open_help

        view = next((v for v in self.views if v is not None), None)
        open_help(self.app, None if view is None else view.prediction_type, None if view is None else view.sharing)

    def action_close(self) -> None:
        self.workers.cancel_node(self)
        self.dismiss(self.kind)

    def action_quit(self) -> None:
        self.workers.cancel_node(self)
        self.app.exit()
