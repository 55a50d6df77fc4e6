"""The main screen's keys: what each one asks of the engine (a job from jobs.py) or opens.

Follow a key from its binding to the engine: `b` -> `MainScreen.action_key("rewind")` -> `MainKeys.rewind`
-> `Rewind(keep)` -> `Rewind.run` -> `RunSession.rewind` -> `Stepper.rewind`. Keys only decide and ask; the
answers come back as `EngineJobs` messages, which the screen (screens/main.py) shows. `MainKeys` holds what
only the keys need (a step asked for while the model loads, the hold at a note while playing by itself);
what is shown (the views, the step looked at, the preview kind, playing or not) is the screen's.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from textual.binding import Binding

from ...run.session import FORK, MAIN
from ..jobs import (BuildLessonBranches, ExportPage, ExportStrip, Fork, Play, Refresh, Rewind, SetGuidanceScale,
                    SetScheduler, Step)
from ..widgets.notes_panel import NotesPanel
from ..widgets.preview_panel import next_kind

# Every key of the main screen, once: (key, MainKeys method, as the key bar shows it, long word, short word); the
# key bar shows the rows with a word, in this order, and keeps every one at 80 columns (right pairs with left as ←→).
KEYS = (
    ("space", "step", "space", "step", "step"),
    ("p", "play", "p", "play", "play"),
    ("left", "look_back", "←→", "look back", "look"),
    ("right", "look_later", None, "later", None),
    ("b", "rewind", "b", "rewind", "rew"),
    ("g", "guidance", "g", "guidance", "guid"),
    ("s", "scheduler", "s", "scheduler", "sched"),
    ("v", "preview", "v", "preview", "view"),
    ("f", "fork", "f", "fork here", "fork"),
    ("c", "compare", "c", "compare runs", "cmp"),
    ("a", "attention", "a", "attention", "attn"),
    ("n", "notes", "n", "notes", "notes"),
    ("x", "export", "x", "export", "exp"),
    ("X", "export_page", None, "export page", None),
    ("question_mark", "help", "?", "help", "help"),
    ("q", "quit", "q", "quit", "quit"),
)
MAIN_KEYS = tuple((shown, long, short) for _, _, shown, long, short in KEYS if shown)  # the key bar's rows
# each key calls its MainKeys method through the screen's one action (MainScreen.action_key)
KEY_BINDINGS = [Binding(key, f"key('{method}')", long, priority=True) for key, method, _, long, _ in KEYS]


class MainKeys:
    """What each key of the main screen does, for `screen` (a MainScreen: its views, the step looked at, its
    workers)."""

    def __init__(self, screen) -> None:
        self.screen = screen
        self.session = screen.session
        self.queued: Step | None = None  # the Step or Play asked for while the model loaded
        self.hold_timer = None  # playing by itself (--auto): the wait at a note before playing on
        self.stopped_by_user = False  # paused with p: a lesson playing by itself stays paused too

    # ------------------------------------------------------------ stepping and playing
    def step(self) -> None:
        self.start_steps(Step())

    def play(self) -> None:
        if self.screen.playing or self.hold_timer is not None:  # holding at a note counts as playing
            self.pause()
        else:
            self.start_steps(Play())

    def start_steps(self, job: Step) -> None:
        screen = self.screen
        if not screen.views:  # taken once the model is loaded (start_queued): no need to press again
            self.queued = job
            screen.notify("the model is still loading: " + ("step 1 follows" if job.count == 1 else "play starts")
                          + " once it is", title="Wait")
            return
        if all(screen.views[b].done for b in job.branches if b in screen.views):
            screen.notify("the run is finished: look back (left) and rewind (b), or fork (f) at an earlier step",
                          title="Finished")
            return
        screen.set_playing(job.count is None)
        self.stopped_by_user = False
        self.stop_hold()
        screen.run_engine(job)

    def start_queued(self) -> None:
        """The Step or Play asked for while the model loaded, now that it is loaded (and the run has a view)."""
        queued, self.queued = self.queued, None
        if queued is not None and MAIN in self.screen.views:
            self.start_steps(queued)

    def pause(self) -> None:
        self.screen.workers.cancel_group(self.screen, "engine")
        self.screen.set_playing(False)
        self.stopped_by_user = True  # a lesson playing by itself stays paused too, until p or space
        self.stop_hold()

    def hold_then_play(self, seconds: float) -> None:
        """Playing by itself (--auto): after `seconds` on this note, play on to the next one."""
        def play_on() -> None:
            self.hold_timer = None
            view = self.screen.views.get(MAIN)
            if view is not None and not view.done and not self.screen.playing and not self.stopped_by_user:
                self.start_steps(Play())

        self.stop_hold()
        self.hold_timer = self.screen.set_timer(max(seconds, 0.01), play_on)

    def stop_hold(self) -> None:
        if self.hold_timer is not None:
            self.hold_timer.stop()
            self.hold_timer = None

    # ------------------------------------------------------------ looking back, rewinding, forking
    def look_back(self) -> None:
        self.look(-1)

    def look_later(self) -> None:
        self.look(1)

    def look(self, delta: int) -> None:
        screen = self.screen
        shown = screen.shown()
        if shown is None or not shown.view.records:
            return
        last = shown.view.steps_taken - 1
        current = last if screen.index is None else screen.index
        new = min(max(current + delta, -1), last)
        screen.index = None if new == last else new
        screen.show_main()

    def rewind(self) -> None:
        if self.screen.index is None:
            self.screen.notify("look at an earlier step first (left arrow or click the timeline), then b",
                               title="Rewind")
            return
        self.pause()
        self.screen.run_engine(Rewind(keep=self.screen.index + 1, branch=MAIN))

    def fork(self) -> None:
        """Fork at the step looked at (the latest when following): the fork goes on from there, beside the run."""
        screen = self.screen
        shown = screen.shown()
        if shown is None:
            return
        steps = shown.view.steps_taken if screen.index is None else screen.index + 1
        if shown.view.done and steps == shown.view.steps_taken:
            screen.notify("the run is finished here: look at an earlier step (left), then f forks from it",
                          title="Fork")
            return
        self.pause()
        screen.run_engine(Fork(steps))

    def compare(self) -> None:
        """The lesson's [[compare]] runs beside this one, brought to its step, then stepping with it."""
        if MAIN not in self.screen.views:
            return
        if not self.session.settings.compare:
            self.screen.notify("this run has no [[compare]] runs: f forks it at the step looked at", title="Compare")
            return
        self.pause()
        self.screen.run_engine(BuildLessonBranches())

    def open_compare(self, branches: list[str], catch_up: bool = False) -> None:
        """The compare grid over these branches of the session (played by the session, under its lock).

        The grid and the main screen share only the session: lesson notes it shows reach the run's notes
        through the app (StepvizApp.on_engine_jobs_events_due); when it closes, the main screen takes its preview
        kind and refreshes the branches it stepped.
        """
        from .compare import CompareScreen

        screen, session = self.screen, self.session
        fork_step = screen.views[FORK].steps_taken if FORK in branches and FORK in screen.views else 0
        labels = {MAIN: f"{session.label(MAIN)}{' (with its edits)' if session.settings.events else ''}",
                  FORK: f"fork from step {fork_step}"}
        pairs = [(b, labels.get(b) or session.label(b)) for b in branches]
        title = ("the run and its fork, same step in each" if FORK in branches
                 else "the lesson's runs, same seed, same step in each")
        compare = CompareScreen(session, pairs, screen.graphics, kind=screen.kind,
                                selected=len(pairs) - 1 if FORK in branches else 0, title=title, catch_up=catch_up)
        screen.app.push_screen(compare, partial(self.compare_closed, branches))

    def compare_closed(self, branches: list[str], kind: str | None) -> None:
        """Back from the compare grid: its preview kind, and fresh views of the branches it stepped or edited."""
        self.screen.kind = kind or self.screen.kind
        self.screen.run_edit(Refresh(tuple(branches)))

    # ------------------------------------------------------------ edits mid-run
    def guidance(self) -> None:
        from .guidance_dialog import GuidanceDialog  # its checks are the engine's: imported when asked

        screen = self.screen
        if MAIN not in screen.views:
            return

        def apply(scale: float | None) -> None:
            if scale is not None:
                screen.run_edit(SetGuidanceScale(scale, MAIN))

        view = screen.views[MAIN]
        screen.app.push_screen(GuidanceDialog(view.guidance_scale, "", view.prediction_type), apply)

    def scheduler(self) -> None:
        from .scheduler_picker import SchedulerPicker

        screen = self.screen
        if MAIN not in screen.views:
            return
        view = screen.views[MAIN]
        if view.done:
            screen.notify("the run is finished: rewind first, then swap the scheduler", title="Scheduler")
            return

        def apply(name: str | None) -> None:
            if name is not None:
                screen.run_edit(SetScheduler(name, MAIN))

        screen.app.push_screen(SchedulerPicker(view.scheduler, view.family), apply)

    # ------------------------------------------------------------ what is shown, other screens
    def preview(self) -> None:
        screen = self.screen
        screen.kind = next_kind(screen.kind)
        screen.query_one(NotesPanel).log(f"preview: {screen.kind}")
        if screen.kind == "full" and MAIN in screen.views:
            from ...render.preview import slow_preview_notice  # torch is loaded by now: the model is

            view = screen.views[MAIN]
            notice = slow_preview_notice(self.session.pipe, view.height, view.width, "v again for approx (instant)")
            if notice:
                screen.tell(notice, "Preview")
        screen.show_main()

    def notes(self) -> None:
        from .notes_history import NotesHistory

        self.screen.app.push_screen(NotesHistory(self.screen.query_one(NotesPanel).history))

    def export(self) -> None:
        if MAIN in self.screen.views:
            self.screen.run_edit(ExportStrip(Path.cwd(), self.screen.kind))

    def export_page(self) -> None:
        if MAIN in self.screen.views:
            self.screen.run_edit(ExportPage(Path.cwd(), self.screen.kind))

    def attention(self) -> None:
        from .attention import AttentionScreen, RunWindow

        screen = self.screen
        if MAIN in screen.views:
            notes = screen.query_one(NotesPanel)
            window = RunWindow(shown=screen.shown, step=self.step, look=self.look, pipe=self.session.pipe,
                               note=lambda: notes.lesson_note)
            screen.app.push_screen(AttentionScreen(window, screen.graphics))

    def help(self) -> None:
        from .help import open_help

        view = self.screen.views.get(MAIN)  # before the model is loaded what it predicts is not known yet
        open_help(self.screen.app, None if view is None else view.prediction_type,
                  None if view is None else view.sharing)

    def quit(self) -> None:
        """Quit at once: a step in progress is abandoned (run_app leaves without waiting for it)."""
        self.screen.workers.cancel_node(self.screen)
        self.screen.app.exit()
