"""The main screen's keys: what each one asks of the engine (a job from jobs.py) or opens.

Follow a key from its binding to the engine: `b` -> `action_rewind` -> `Rewind(keep)` -> `Rewind.run`
-> `RunSession.rewind` -> `Stepper.rewind`. Keys only decide and ask; the answers come back as
`EngineJobs` messages, which screens/main.py shows.
"""

from __future__ import annotations

from pathlib import Path

from textual.binding import Binding

from ...run.session import FORK, MAIN
from ..jobs import (BuildLessonBranches, ExportPage, ExportStrip, Fork, Play, Rewind, SetGuidanceScale, SetScheduler,
                     Step)
from ..widgets.notes_panel import NotesPanel
from ..widgets.preview_panel import next_kind

# Every key of the main screen, once: (key, action, as the key bar shows it, long word, short word); the key bar
# shows the rows with a word, in this order, and keeps every one at 80 columns (right pairs with left as ←→).
KEYS = (
    ("space", "step", "space", "step", "step"),
    ("p", "play", "p", "play", "play"),
    ("left", "look(-1)", "←→", "look back", "look"),
    ("right", "look(1)", None, "later", None),
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


class MainKeys:
    """The key bindings and actions of MainScreen; the state they read and change is the screen's own
    (MainScreen.__init__)."""

    BINDINGS = [Binding(key, action, long, priority=True) for key, action, _, long, _ in KEYS]

    # ------------------------------------------------------------ stepping and playing
    def action_step(self) -> None:
        self.start_steps(Step())

    def action_play(self) -> None:
        if self.playing or self._hold_timer is not None:  # holding at a note counts as playing
            self.pause()
        else:
            self.start_steps(Play())

    def start_steps(self, job: Step) -> None:
        if not self.views:  # taken once the model is loaded (on_worker_state_changed): no need to press again
            self._queued = job
            self.notify("the model is still loading: " + ("step 1 follows" if job.count == 1 else "play starts") +
                        " once it is", title="Wait")
            return
        if all(self.views[b].done for b in job.branches if b in self.views):
            self.notify("the run is finished: look back (left) and rewind (b), or fork (f) at an earlier step",
                        title="Finished")
            return
        self.set_playing(job.count is None)
        self._stopped_by_user = False
        self._stop_hold()
        self.run_engine(job)

    def pause(self) -> None:
        self.workers.cancel_group(self, "engine")
        self.set_playing(False)
        self._stopped_by_user = True  # a lesson playing by itself stays paused too, until p or space
        self._stop_hold()

    def hold_then_play(self, seconds: float) -> None:
        """Playing by itself (--auto): after `seconds` on this note, play on to the next one."""
        def play_on() -> None:
            self._hold_timer = None
            view = self.views.get(MAIN)
            if view is not None and not view.done and not self.playing and not self._stopped_by_user:
                self.start_steps(Play())

        self._stop_hold()
        self._hold_timer = self.set_timer(max(seconds, 0.01), play_on)

    def _stop_hold(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.stop()
            self._hold_timer = None

    # ------------------------------------------------------------ looking back, rewinding, forking
    def action_look(self, delta: int) -> None:
        shown = self.shown()
        if shown is None or not shown.view.records:
            return
        last = shown.view.steps_taken - 1
        current = last if self.index is None else self.index
        new = min(max(current + delta, -1), last)
        self.index = None if new == last else new
        self.show_main()

    def action_rewind(self) -> None:
        if self.index is None:
            self.notify("look at an earlier step first (left arrow or click the timeline), then b",
                        title="Rewind")
            return
        self.pause()
        self.run_engine(Rewind(keep=self.index + 1, branch=MAIN))

    def action_fork(self) -> None:
        """Fork at the step looked at (the latest when following): the fork goes on from there, beside the run."""
        shown = self.shown()
        if shown is None:
            return
        steps = shown.view.steps_taken if self.index is None else self.index + 1
        if shown.view.done and steps == shown.view.steps_taken:
            self.notify("the run is finished here: look at an earlier step (left), then f forks from it",
                        title="Fork")
            return
        self.pause()
        self.run_engine(Fork(steps))

    def action_compare(self) -> None:
        """The lesson's [[compare]] runs beside this one, brought to its step, then stepping with it."""
        if MAIN not in self.views:
            return
        if not self.session.settings.compare:
            self.notify("this run has no [[compare]] runs: f forks it at the step looked at", title="Compare")
            return
        self.pause()
        self.run_engine(BuildLessonBranches())

    # ------------------------------------------------------------ edits mid-run
    def action_guidance(self) -> None:
        if MAIN in self.views:
            self.ask_guidance(MAIN)

    def ask_guidance(self, branch: str) -> None:
        from .guidance_dialog import GuidanceDialog  # its checks are the engine's: imported when asked

        def apply(scale: float | None) -> None:
            if scale is not None:
                self.run_edit(SetGuidanceScale(scale, branch))

        label = " of the fork" if branch == FORK else ""
        view = self.views[branch]
        self.app.push_screen(GuidanceDialog(view.guidance_scale, label, view.prediction_type), apply)

    def action_scheduler(self) -> None:
        if MAIN in self.views:
            self.ask_scheduler(MAIN)

    def ask_scheduler(self, branch: str) -> None:
        from .scheduler_picker import SchedulerPicker

        if self.views[branch].done:
            self.notify("the run is finished: rewind first, then swap the scheduler", title="Scheduler")
            return

        def apply(name: str | None) -> None:
            if name is not None:
                self.run_edit(SetScheduler(name, branch))

        self.app.push_screen(SchedulerPicker(self.views[branch].scheduler, self.views[branch].family), apply)

    # ------------------------------------------------------------ what is shown, other screens
    def action_preview(self) -> None:
        self.kind = next_kind(self.kind)
        self.query_one(NotesPanel).log(f"preview: {self.kind}")
        if self.kind == "full" and MAIN in self.views:
            from ...render.preview import slow_preview_notice  # torch is loaded by now: the model is

            view = self.views[MAIN]
            notice = slow_preview_notice(self.session.pipe, view.height, view.width, "v again for approx (instant)")
            if notice:
                self.tell(notice, "Preview")
        self.show_main()

    def action_notes(self) -> None:
        from .notes_history import NotesHistory

        self.app.push_screen(NotesHistory(self.query_one(NotesPanel).history))

    def action_export(self) -> None:
        if MAIN in self.views:
            self.run_edit(ExportStrip(Path.cwd(), self.kind))

    def action_export_page(self) -> None:
        if MAIN in self.views:
            self.run_edit(ExportPage(Path.cwd(), self.kind))

    def action_attention(self) -> None:
        from .attention import AttentionScreen, RunWindow

        if MAIN in self.views:
            notes = self.query_one("#notes")
            window = RunWindow(shown=self.shown, step=self.action_step, look=self.action_look,
                               pipe=self.session.pipe, note=lambda: notes.lesson_note)
            self.app.push_screen(AttentionScreen(window, self.graphics))

    def action_help(self) -> None:
        from .help import open_help

        view = self.views.get(MAIN)  # before the model is loaded what it predicts is not known yet
        open_help(self.app, None if view is None else view.prediction_type, None if view is None else view.sharing)

    def action_quit(self) -> None:
        """Quit at once: a step in progress is abandoned (run_app leaves without waiting for it)."""
        self.workers.cancel_node(self)
        self.app.exit()
