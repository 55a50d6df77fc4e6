"""`Debugger`: the step debugger as a notebook widget (Jupyter, JupyterLab, VS Code, Colab).

    from stepviz.notebook import Debugger
    debugger = Debugger("toy", prompt="a red circle on a black background", num_inference_steps=20)
    debugger                                  # shows the widget (also: debugger.widget)
    debugger.stepper.set_guidance_scale(3)    # code and buttons drive the same Stepper

The run is a `stepviz.run.session.RunSession`, as in the TUI: buttons put jobs on an engine thread
(`EngineThread`), which steps the model and redraws, so the kernel answers clicks while a step
computes; `Drawing` shows the step (its plots on a thread of their own).

Following code: after every cell the notebook runs (an IPython `post_run_cell` hook), and before every
button's action, the widget compares the Stepper with what it last showed (its log of edits, its
records, guidance and scheduler) and redraws when they differ. Outside IPython, call `debugger.refresh()`.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..engine.checks import StepvizInputError, check_choice
from ..export.replay import settings_with_edits
from ..run.session import FORK, MAIN, RunSession, describe_failure
from .drawing import Drawing, lesson_runs
from .engine_thread import EngineThread
from .panels import Panels
from .cell_hook import redraw_after_cells
from .run_settings import session_for

PLAY_REDRAW_EVERY = 0.3  # seconds between two redraws while playing: the newest step wins


class Debugger:
    """`Debugger(pipe_or_model, prompt=..., **Stepper arguments)`, `Debugger(stepper)` or
    `Debugger.from_lesson("guidance")`."""

    def __init__(self, pipe_or_stepper, prompt: str | None = None, *, kind: str = "full", **stepper_kwargs):
        from ..render import PREVIEW_KINDS

        check_choice("kind", kind, PREVIEW_KINDS, "preview kinds")
        # the run as a session, and why `export` could not replay it (if it could not)
        self.session, self._export_problem = session_for(pipe_or_stepper, prompt, stepper_kwargs)
        self.settings = self.session.settings
        view = self.session.view(MAIN)
        self.panels = Panels(self.settings.title, self.settings.description, kind=kind, scheduler=view.scheduler)
        self.index: int | None = None  # the step looked at (Shown's index): None follows the latest
        self._seen = None  # the Stepper's state when it was last drawn (see `refresh`)
        self._redraw_due = False
        self.engine = EngineThread(self._failed)
        self.drawing = Drawing(self.session, self.panels, self._failed)
        self._connect()
        redraw_after_cells(self)
        self.engine.submit(self._job_events_at_start)
        self.request_redraw()

    @classmethod
    def from_lesson(cls, name_or_path, pipe=None, kind: str = "full") -> Debugger:
        """A ready lesson ('guidance', 'schedulers', ...) or a scenario file: its run, notes, pauses and edits."""
        from ..run.lesson_file import load_lesson

        settings = load_lesson(name_or_path)
        settings.validate()
        return cls(RunSession(settings, pipe), kind=kind)

    # ------------------------------------------------------------ what a user holds
    @property
    def stepper(self):
        """The Stepper of the main run: call its methods from code, and the widget follows."""
        return self.session.steppers[MAIN]

    @property
    def widget(self):
        return self.panels.root

    @property
    def kind(self) -> str:
        return self.panels.kind.value

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until the engine thread has done every job asked so far, and the plots have caught up
        (for scripts and tests)."""
        return self.engine.wait(timeout) and self.drawing.plotter.wait(timeout)

    def close(self) -> None:
        self.engine.close()
        self.drawing.plotter.close()
        self.widget.close()

    # ------------------------------------------------------------ actions (the buttons call these too)
    def step(self, count: int = 1) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise StepvizInputError(f"step({count!r}) is not allowed: give a whole number of steps >= 1")
        self._steps(count)

    def play(self) -> None:
        self._steps(None)

    def pause(self) -> None:
        self.engine.cancel()

    def look(self, step: int | None) -> None:
        """Look at the state after `step` steps (0: the starting noise; None: the latest)."""
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise StepvizInputError(f"look({step!r}) is not allowed: give a step number >= 0 (0: the starting "
                                    "noise), or None for the latest")
        taken = len(self.session.view(MAIN).records)
        self.index = None if step is None or step >= taken else max(step, 0) - 1
        self.request_redraw()

    def rewind(self) -> None:
        """Go back to the step looked at: the later steps are dropped (the fork keeps its own)."""
        if self.index is None:
            self.panels.show_error("look at an earlier step first (the timeline), then rewind")
            return
        keep = self.index + 1
        self.pause()
        self._submit(lambda cancelled: self.session.rewind(keep, MAIN), f"rewound to step {keep}: later steps dropped")
        self.index = None

    def set_guidance_scale(self, scale) -> None:
        """From the next step on, on the branch(es) the controls act on (checked as everywhere)."""
        for branch in self._branches():
            self._submit(lambda cancelled, b=branch: self.session.set_guidance_scale(scale, b),
                         f"{branch}: guidance scale {scale} from the next step on")

    def set_scheduler(self, name: str) -> None:
        for branch in self._branches():
            self._submit(lambda cancelled, b=branch: self._swap(name, b))

    def set_preview(self, kind: str) -> None:
        from ..render import PREVIEW_KINDS

        check_choice("kind", kind, PREVIEW_KINDS, "preview kinds")
        self.panels.kind.value = kind  # its observer redraws

    def fork(self) -> None:
        """An independent copy of the run at the step looked at (the latest unless the timeline looks back)."""
        keep = None if self.index is None else self.index + 1
        self.pause()

        def fork(cancelled) -> None:
            self.session.fork()
            if keep is not None:  # the fork goes back to the step looked at; the main run keeps its steps
                self.session.rewind(keep, FORK)

        where = "the latest step" if keep is None else f"step {keep}"
        self._submit(fork, f"forked at {where}: the fork goes on from there")

    def export(self, folder: str | Path | None = None, replace: bool | None = None) -> Path:
        """Write the handout (`stepviz export`'s folder) of this run as it was stepped, edits included; returns
        the folder it goes to (a relative name lands in the working folder, or the home folder when the
        notebook runs inside the installed package)."""
        from ..export.folder import users_folder

        folder = Path(folder if folder is not None else self.panels.export_folder.value).expanduser()
        folder = folder if folder.is_absolute() else users_folder() / folder
        replace = self.panels.export_replace.value if replace is None else replace
        self._submit(lambda cancelled: self._export(folder, replace))
        return folder

    def refresh(self) -> None:
        """Redraw if the Stepper changed since the last drawing (a call from code, e.g. set_guidance_scale)."""
        if self._stepper_state() != self._seen:
            self.request_redraw()

    # ------------------------------------------------------------ jobs (run on the engine thread)
    def _steps(self, count: int | None) -> None:
        self.refresh()
        branches = self._branches()
        views = [self.session.view(b) for b in branches]
        if all(v.done for v in views):
            self.panels.show_error("the run is finished: look back and rewind, or fork")
            return
        self.panels.show_error(None)
        self.panels.show_busy("computing..." if count == 1 else "playing...")
        self.index = None
        self.engine.submit(lambda cancelled: self._job_steps(branches, count, cancelled))

    def _job_steps(self, branches: tuple[str, ...], count: int | None, cancelled) -> None:
        """`count` steps (None: play), redrawn at most every PLAY_REDRAW_EVERY s while playing, and at the end."""
        taken, last_redraw, drawn = 0, 0.0, True
        plays = {branch: self.session.play(branch) for branch in branches}
        try:
            while count is None or taken < count:
                if cancelled():
                    self.panels.note("paused")
                    return
                moved = {}
                for branch in branches:
                    played = next(plays[branch], None)
                    if played is not None and played.stopped is not None:
                        raise played.stopped
                    if played is not None:
                        moved[branch] = played
                if not moved:
                    return
                taken, drawn = taken + 1, False
                if MAIN in moved:
                    self._keep_up_lesson_runs()
                paused = MAIN in moved and self._show_events(moved[MAIN].events)
                if paused:
                    self.panels.note("paused by the lesson: step or play to go on")
                    return
                if count is None and time.monotonic() - last_redraw > PLAY_REDRAW_EVERY:
                    self._redraw(final=False)
                    last_redraw, drawn = time.monotonic(), True
        finally:
            self.panels.show_busy("")
            if not drawn or count is None:
                self._redraw()

    def _job_events_at_start(self, cancelled) -> None:
        if self.settings.compare:  # the runs the lesson's notes compare, stepped beside the main run
            self.session.lesson_branches()
        if not self.session.view(MAIN).records:
            self._show_events(self.session.due_events(MAIN))

    def _keep_up_lesson_runs(self) -> None:
        """Step each of the lesson's runs until it has taken as many steps as the main run (or ended)."""
        taken = self.session.steps_taken(MAIN)
        for branch in lesson_runs(self.session):
            while self.session.steps_taken(branch) < taken and not self.session.view(branch).done:
                self.session.step(branch)

    def _show_events(self, due) -> bool:
        """The notes of the lesson's events due now, shown whole; True when one asks to pause."""
        for event in due:
            if event.note:
                self.panels.note(event.note)
        return any(event.pause for event in due)

    def _swap(self, name: str, branch: str) -> None:
        notice = self.session.set_scheduler(name, branch)
        self.panels.note(f"{branch}: scheduler {name} from the next step on" + (f" ({notice})" if notice else ""))

    def _export(self, folder: Path, replace: bool) -> None:
        from ..export.run_export import export_run

        self.panels.show_busy(f"exporting to {folder}...")
        try:
            settings = settings_with_edits(self.settings, self.stepper, self._export_problem)
            export_run(settings, folder, kind=self.kind, force=replace, pipe=self.session.pipe)
        finally:
            self.panels.show_busy("")
        self.panels.note(f"exported the handout: {folder / 'index.html'}")

    def _submit(self, action, note: str | None = None) -> None:
        """An edit on the engine thread (after the step in progress), then a redraw."""
        self.refresh()
        self.panels.show_error(None)

        def job(cancelled) -> None:
            action(cancelled)
            if note:
                self.panels.note(note)
            self._redraw()

        self.engine.submit(job)

    def request_redraw(self) -> None:
        self._redraw_due = True
        self.engine.submit(lambda cancelled: self._redraw() if self._redraw_due else None)

    def _failed(self, exc: Exception) -> None:
        title, text = describe_failure(exc)
        self.panels.show_error(f"{title}: {text}")
        self.panels.note(f"{title}: {text}")
        self._redraw()

    # ------------------------------------------------------------ drawing (engine thread)
    def _redraw(self, final: bool = True) -> None:
        self._redraw_due = False
        view = self.session.view(MAIN)
        self._seen = self._stepper_state()
        if self.index is not None and self.index >= len(view.records):
            self.index = None
        self.drawing.show(view, self.index, self.kind, final)

    def _stepper_state(self) -> tuple:
        """What tells that the main Stepper changed: its edit log, its records, guidance and scheduler."""
        st = self.stepper
        last = st.records[-1] if st.records else None
        return len(st.log), len(st.records), id(last), st.guidance_scale, st.scheduler_name, self.session.has(FORK)

    def _branches(self) -> tuple[str, ...]:
        choice = self.panels.branch.value
        if not self.session.has(FORK) or choice == MAIN:
            return (MAIN,)
        return (MAIN, FORK) if choice == "both" else (FORK,)

    # ------------------------------------------------------------ wiring
    def _connect(self) -> None:
        p = self.panels
        p.step.on_click(lambda _: self.step())
        p.play.on_click(lambda _: self.play())
        p.pause.on_click(lambda _: self.pause())
        p.rewind.on_click(lambda _: self.rewind())
        p.fork.on_click(lambda _: self.fork())
        p.apply_guidance.on_click(lambda _: self.set_guidance_scale(p.guidance.value))
        p.export.on_click(lambda _: self.export())
        quiet = lambda act: (lambda change: None if self.drawing.syncing else act(change["new"]))  # noqa: E731
        p.timeline.observe(quiet(self.look), names="value")
        p.scheduler.observe(quiet(self.set_scheduler), names="value")
        p.kind.observe(quiet(lambda kind: self.request_redraw()), names="value")
        p.attention_token.observe(quiet(lambda token: self.request_redraw()), names="value")
