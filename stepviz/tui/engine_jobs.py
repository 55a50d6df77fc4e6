"""What the engine worker does in its thread: call the session, post messages, never touch widgets.

Each job runs in a Textual thread worker (see screens/main.py). `cancelled()` is checked between
steps, so pausing, rewinding or quitting lets the step in progress finish and then stops cleanly.
Every failure a user can cause (NaN/Inf, out of memory, a bad value, a missing model) becomes a
`Failed` message: the app shows it and stays alive.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from ..run.session import MAIN, RunSession, describe_failure


class EngineJobs:
    class RunChanged(Message):
        """A branch changed (loaded, stepped, rewound, edited): its fresh view."""

        def __init__(self, view, reason: str = "", notice: str | None = None) -> None:
            super().__init__()
            self.view, self.reason, self.notice = view, reason, notice

    class Failed(Message):
        """Something the user should see; the app stays alive."""

        def __init__(self, title: str, text: str, view=None) -> None:
            super().__init__()
            self.title, self.text, self.view = title, text, view

    class EventsDue(Message):
        """Scripted lesson events applied at this step: their notes, and whether to pause."""

        def __init__(self, notes: list[str], pause: bool, view, hold: float | None = None) -> None:
            super().__init__()
            self.notes, self.pause, self.view = notes, pause, view
            self.hold = hold  # playing by itself: seconds to hold before playing on (None: not playing by itself)

    class PicturesReady(Message):
        def __init__(self, branch: str, index: int | None, kind: str, pictures: dict) -> None:
            super().__init__()
            self.branch, self.index, self.kind, self.pictures = branch, index, kind, pictures

    class Exported(Message):
        def __init__(self, path: Path) -> None:
            super().__init__()
            self.path = path

    class Busy(Message):
        """The engine started something that may take a while (`text`), or finished it (None)."""

        def __init__(self, text: str | None) -> None:
            super().__init__()
            self.text = text

    class BranchesReady(Message):
        """The lesson's [[compare]] runs exist in the session, under these branch names."""

        def __init__(self, names: list[str]) -> None:
            super().__init__()
            self.names = names

    class PlayStopped(Message):
        """Auto-play ended (finished, paused by the user or a lesson, or failed)."""

    def __init__(self, session: RunSession, post: Callable[[Message], object]):
        self.session, self.post = session, post
        self._extra_cache: tuple = (None, (), {})  # (kind, extra-channel tensors, their pictures)

    # ------------------------------------------------------------ jobs
    def load(self, cancelled) -> None:
        with self._reporting():
            view = self.session.load(lambda text: self.post(self.Busy(f"loading: {text}")))
            passed = self.session.fast_forward()
            if passed or self.session.settings.start_at:
                notes = [f"(started at step {self.session.settings.start_at}; earlier notes:)",
                         *(e.note for e in passed if e.note)]
                self.post(self.EventsDue(notes, False, self.session.view(MAIN)))
                view = self.session.view(MAIN)
            self.post(self.RunChanged(view, "loaded"))
            if not self._events(MAIN) and self.session.settings.auto_pace:
                self.post(self.EventsDue([], False, view, hold=0.0))

    def steps(self, branches: tuple[str, ...], count: int | None, cancelled) -> None:
        """`count` steps of each branch (None: until done, paused or cancelled)."""
        taken = 0
        try:
            while count is None or taken < count:
                if cancelled():
                    return
                moved = False
                for branch in branches:
                    with self._reporting(branch) as report:
                        self.post(self.Busy(f"computing step {self.session.steps_taken(branch) + 1}"))
                        if self.session.step(branch) is not None:
                            moved = True
                            self.post(self.RunChanged(self.session.view(branch), "step"))
                            if self._events(branch):
                                return
                    if report.failed:
                        return
                if not moved:
                    return
                taken += 1
        finally:
            self.post(self.Busy(None))
            if count is None:
                self.post(self.PlayStopped())

    def rewind(self, keep: int, branch: str, cancelled) -> None:
        with self._reporting(branch):
            self.session.rewind(keep, branch)
            self.post(self.RunChanged(self.session.view(branch), "rewind"))

    def set_guidance_scale(self, scale: float, branch: str, cancelled) -> None:
        with self._reporting(branch):
            self.session.set_guidance_scale(scale, branch)
            self.post(self.RunChanged(self.session.view(branch), "guidance"))

    def set_scheduler(self, name: str, branch: str, cancelled) -> None:
        with self._reporting(branch):
            notice = self.session.set_scheduler(name, branch)
            self.post(self.RunChanged(self.session.view(branch), "scheduler", notice))

    def refresh(self, branch: str, cancelled) -> None:
        """The branch's view again (another screen stepped or edited it)."""
        with self._reporting(branch):
            self.post(self.RunChanged(self.session.view(branch), "refresh"))

    def fork(self, steps: int | None, cancelled) -> None:
        with self._reporting():
            self.session.fork(steps)
            self.post(self.RunChanged(self.session.view(MAIN), "fork"))
            self.post(self.RunChanged(self.session.view("fork"), "fork"))

    def lesson_branches(self, cancelled) -> None:
        with self._reporting():
            self.post(self.Busy("building the lesson's runs"))
            self.post(self.BranchesReady(self.session.lesson_branches()))
        self.post(self.Busy(None))

    def export(self, out_dir: Path, kind: str, cancelled) -> None:
        with self._reporting():
            self.post(self.Exported(Path(self.session.export_strip(out_dir, kind))))

    def pictures(self, branch: str, record, index: int | None, kind: str, initial, extra_channels,
                 cancelled) -> None:
        from ..render.step_pictures import step_pictures  # torch: imported in the worker, after the first frame

        with self._reporting(branch):
            pictures = step_pictures(self.session.pipe, record, kind, initial)
            pictures.update(self._extra_channel_pictures(extra_channels, kind))
            if not cancelled():
                self.post(self.PicturesReady(branch, index, kind, pictures))

    # ------------------------------------------------------------ helpers
    def _extra_channel_pictures(self, extra_channels: dict, kind: str) -> dict:
        """The extra UNet inputs' pictures: fixed for the run, so drawn once per preview kind, not per step."""
        from ..render.channel_pictures import extra_channel_pictures

        tensors = tuple(extra_channels.values())
        cached_kind, cached_tensors, pictures = self._extra_cache
        if kind != cached_kind or len(tensors) != len(cached_tensors) or \
                any(a is not b for a, b in zip(tensors, cached_tensors)):
            pictures = extra_channel_pictures(self.session.pipe, extra_channels, kind)
            self._extra_cache = (kind, tensors, pictures)  # keeps the tensors: identity stays meaningful
        return pictures

    def _events(self, branch: str) -> bool:
        """Apply the lesson events due now; True when one asks to pause."""
        due = self.session.due_events(branch)
        if not due:
            return False
        notes = [e.note for e in due if e.note]
        pause = any(e.pause for e in due)
        auto = self.session.settings.auto_pace
        if auto and (pause or notes):  # playing by itself: hold at every note, then go on (see lessons/pacing.py)
            self.post(self.EventsDue(notes, False, self.session.view(branch), hold=auto))
            return True
        self.post(self.EventsDue(notes, pause, self.session.view(branch)))
        return pause

    def _reporting(self, branch: str = MAIN):
        return _Reporter(self, branch)


class _Reporter:
    """A context that turns a failure into a `Failed` message (with the branch's view where there is one)."""

    def __init__(self, jobs: EngineJobs, branch: str):
        self.jobs, self.branch, self.failed = jobs, branch, False

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None:
            return False
        if not isinstance(exc, Exception):
            return False
        self.failed = True
        self.jobs.post(EngineJobs.Failed(*describe_failure(exc), view=self._view()))
        return True

    def _view(self):
        try:
            return self.jobs.session.view(self.branch) if self.jobs.session.has(self.branch) else None
        except Exception:  # a view is a courtesy here; the failure message matters more
            return None
