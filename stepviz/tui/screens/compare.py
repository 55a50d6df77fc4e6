"""2-4 runs side by side, stepping in lockstep: a fork (`f`), a lesson's [[compare]] runs (`c`), a trace.

`CompareScreen(session, branches)` takes (branch, label) pairs of a RunSession and plays them in lockstep
(lockstep.py) with the session's loop, in a worker thread, so any app with a session can show one. It knows
nothing of the screen that opened it: it returns its preview kind when it closes, and posts lesson notes as
`Noted` messages (they bubble to the app). A failure and a step's pictures come as the main screen's
messages (engine_jobs.py's `EngineJobs.Failed` and `PicturesReady`), reported by the same `EngineJobs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Label, Static
from textual.worker import get_current_worker

from ...render.readouts import compare_numbers, status_text
from ...run.session import Shown
from ..engine_jobs import EngineJobs, notes_and_pause
from ..lockstep import LETTERS, LockstepRuns, common_step
from ..widgets.key_bar import Key, KeyBar
from ..widgets.notes_panel import NotesPanel
from ..widgets.preview_panel import PreviewPanel, next_kind

class CompareScreen(Screen):
    """The branches in a grid, stepped in lockstep by the screen's own worker."""

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

    class Changed(Message):
        def __init__(self, views: list) -> None:
            super().__init__()
            self.views = views

    class Noted(Message):
        """Lesson notes due after a round (shown here; the app passes them on to the main screen's notes)."""

        def __init__(self, notes: list[str], pause: bool) -> None:
            super().__init__()
            self.notes, self.pause = notes, pause

    def __init__(self, session, branches: Sequence[tuple[str, str]], graphics: str = "halfcell", *,
                 kind: str = "approx", selected: int = 0, title: str = "", catch_up: bool = False) -> None:
        """The lesson events due on the session's main branch come with its steps: their notes are shown here
        and posted as `Noted` (which bubbles to the app); `catch_up` first brings every run to the step of
        the first one."""
        runs = LockstepRuns(session, [branch for branch, _ in branches])
        super().__init__()
        self.runs, self.labels = runs, [label for _, label in branches]
        self.jobs = EngineJobs(session, self.post_message)  # its failures become EngineJobs.Failed here
        self.graphics, self.kind, self.title_text = graphics, kind, title
        self.selected = selected % len(branches)
        self.catch_up = catch_up
        self.views: list = [None] * len(branches)
        self._drawn: dict[int, tuple] = {}  # column -> (record index, kind) of the pictures asked for
        self.playing = False

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Label(self.title_text or "the runs side by side, same step in each", id="compare-title")
        with Container(id="branches", classes=f"runs-{len(self.runs)}"):
            for column, label in enumerate(self.labels):
                with Vertical(classes="branch", id=f"branch-{column}"):
                    yield Label(f"{LETTERS[column]}: {label}", classes="branch-title")
                    yield Static("", classes="branch-status")
                    yield PreviewPanel(self.graphics, id=f"previews-{column}")
                    yield Static("", classes="branch-numbers")
        yield NotesPanel(id="compare-notes")
        yield KeyBar(self.keys(), id="compare-keys")

    def keys(self) -> list[Key]:
        picked = LETTERS[self.selected]
        return [Key("space", "step all", "step"), Key("p", "pause" if self.playing else "play all", "pause"
                                                      if self.playing else "play"),
                Key("tab", f"pick run ({picked})", f"pick {picked}"), Key("g", f"guidance of {picked}", "guid"),
                Key("s", f"scheduler of {picked}", "sched"), Key("v", "preview", "view"), Key("?", "help"),
                Key("esc", "back"), Key("q", "quit")]

    def on_mount(self) -> None:
        self.query_one("#compare-notes").display = False
        if self.catch_up:
            self.catch_up_runs()
        else:
            self.show_runs()

    # ------------------------------------------------------------ workers
    @contextmanager
    def _showing_the_runs(self):
        """Whatever happens in the worker, the columns show the runs as they are at the end; a failure (a NaN,
        out of memory) is shown, and the screen stays."""
        with self.jobs.reporting(self.runs.branches[0]):
            yield
        self.post_message(self.Changed(self.runs.views()))

    @work(thread=True, exclusive=True, group="compare-engine", exit_on_error=False)
    def show_runs(self) -> None:
        with self._showing_the_runs():
            pass

    @work(thread=True, exclusive=True, group="compare-engine", exit_on_error=False)
    def catch_up_runs(self) -> None:
        """Bring every run to the step of the first one, showing each step."""
        worker = get_current_worker()
        with self._showing_the_runs():
            for _ in self.runs.catch_up(lambda: worker.is_cancelled):
                self.post_message(self.Changed(self.runs.views()))

    @work(thread=True, exclusive=True, group="compare-engine", exit_on_error=False)
    def take_rounds(self, count: int | None) -> None:
        """`count` lockstep rounds (None: until every run is finished, a lesson pauses, or the user pauses)."""
        worker = get_current_worker()

        def cancelled() -> bool:
            return worker.is_cancelled

        try:
            with self._showing_the_runs():
                rounds = 0
                while (count is None or rounds < count) and not cancelled():
                    moments = self.runs.round(cancelled)
                    if not moments:
                        break
                    rounds += 1
                    self.post_message(self.Changed(self.runs.views()))
                    notes, pause = notes_and_pause([event for moment in moments for event in moment.events])
                    if notes or pause:
                        self.post_message(self.Noted(notes, pause))
                        if pause:
                            break
        finally:
            if count is None:
                self.app.call_from_thread(self._stopped_playing)

    @work(thread=True, group="compare-edit", exit_on_error=False)
    def change_guidance(self, column: int, scale: float) -> None:
        with self._showing_the_runs():
            self.runs.session.set_guidance_scale(scale, self.runs.branches[column])

    @work(thread=True, group="compare-edit", exit_on_error=False)
    def swap_scheduler(self, column: int, name: str) -> None:
        with self._showing_the_runs():
            notice = self.runs.session.set_scheduler(name, self.runs.branches[column])
            if notice:
                self.app.call_from_thread(self.notify, notice, title="Scheduler")

    def draw(self, column: int, shown: Shown) -> None:
        from ...render.step_pictures import step_pictures  # torch: imported in the worker

        record, branch = shown.record, self.runs.branches[column]
        index, kind, stepper = (None if record is None else record.index), self.kind, self.runs.stepper(column)

        def job() -> None:
            with self.jobs.reporting(branch):
                pictures = step_pictures(stepper.pipe, record, kind, shown.view.initial_latents)
                if not get_current_worker().is_cancelled:
                    self.post_message(EngineJobs.PicturesReady(branch, index, kind, pictures))

        self.run_worker(job, thread=True, exclusive=True, group=f"compare-pictures-{column}", exit_on_error=False)

    # ------------------------------------------------------------ messages
    def shown(self, column: int) -> Shown | None:
        view = self.views[column]
        if view is None:
            return None
        step = common_step(self.views) if all(v is not None for v in self.views) else None
        if step is None or step >= view.steps_taken:
            return Shown(view)
        return Shown(view, step - 1)

    def on_compare_screen_changed(self, message: Changed) -> None:
        self.views = message.views
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
        if message.branch not in self.runs.branches:
            return
        column = self.runs.branches.index(message.branch)
        shown = self.shown(column)
        record = None if shown is None else shown.record
        if message.kind == self.kind and (None if record is None else record.index) == message.index:
            self.query_one(f"#previews-{column}", PreviewPanel).show(
                message.pictures, message.kind, 0 if record is None else record.index + 1, shown.view.mode)

    def on_engine_jobs_failed(self, message: EngineJobs.Failed) -> None:
        self.notify(message.text, title=message.title, severity="error", timeout=8)
        self.playing = False
        self.query_one(KeyBar).set_keys(self.keys())

    def on_compare_screen_noted(self, message: Noted) -> None:
        panel = self.query_one("#compare-notes", NotesPanel)
        for note in message.notes:
            panel.display = True
            panel.note(note)
        if message.pause:
            self._stopped_playing()
            self.notify("paused by the lesson: space or p to go on", title="Lesson")

    def _stopped_playing(self) -> None:
        self.playing = False
        if self.is_attached:
            self.query_one(KeyBar).set_keys(self.keys())

    # ------------------------------------------------------------ keys
    def action_step(self) -> None:
        if self.views and all(v is not None and v.done for v in self.views):
            self.notify("every run is finished: esc goes back; there left looks at an earlier step and f forks "
                        "from it", title="Finished")
            return
        self.take_rounds(1)

    def action_play(self) -> None:
        if self.playing:
            self.workers.cancel_group(self, "compare-engine")
            self._stopped_playing()
            return
        self.playing = True
        self.query_one(KeyBar).set_keys(self.keys())
        self.take_rounds(None)

    def action_pick(self) -> None:
        self.selected = (self.selected + 1) % len(self.runs)
        for column in range(len(self.runs)):
            self.query_one(f"#branch-{column}").set_class(column == self.selected, "-picked")
        self.query_one(KeyBar).set_keys(self.keys())

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
        if all(v is not None for v in self.views):
            self.on_compare_screen_changed(self.Changed(self.views))

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
