"""The engine worker's side: the messages it posts to the UI, and what every job (jobs.py) shares.

Jobs run in Textual thread workers of the screen that asked (screens/main.py, screens/compare.py): they
call the session, post these messages to that screen, never touch widgets. Every failure a user can cause
(NaN/Inf, out of memory, a bad value, a missing model) becomes a `Failed` message: the app shows it and
stays alive.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.message import Message
from textual.worker import get_current_worker

from ..run.session import MAIN, RunSession, describe_failure


class JobWorkers:
    """The two workers a screen runs its jobs (jobs.EngineJob) in: threads; the jobs only post messages to the
    screen. The screen holds `self.jobs`, the EngineJobs its jobs run with."""

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def run_engine(self, job) -> None:
        """Run `job` on the engine worker, in place of the one in progress (a step, a play, a rewind, a round)."""
        worker = get_current_worker()
        job.run(self.jobs, cancelled=lambda: worker.is_cancelled)

    @work(thread=True, group="edit", exit_on_error=False)
    def run_edit(self, job) -> None:
        """Run `job` beside the one in progress (it waits for the session's lock: a step in progress ends first)."""
        worker = get_current_worker()
        job.run(self.jobs, cancelled=lambda: worker.is_cancelled)


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

    # ------------------------------------------------------------ used by the jobs (jobs.py)
    def pictures(self, branch: str, record, index: int | None, kind: str, initial, extra_channels,
                 cancelled) -> None:
        from ..render.step_pictures import step_pictures  # torch: imported in the worker, after the first frame

        with self.reporting(branch):
            pipe = self.session.pipe_of(branch)
            pictures = step_pictures(pipe, record, kind, initial)
            pictures.update(self._extra_channel_pictures(pipe, extra_channels, kind))
            if not cancelled():
                self.post(self.PicturesReady(branch, index, kind, pictures))

    def _extra_channel_pictures(self, pipe, extra_channels: dict, kind: str) -> dict:
        """The extra UNet inputs' pictures: fixed for the run, so drawn once per preview kind, not per step."""
        from ..render.channel_pictures import extra_channel_pictures

        tensors = tuple(extra_channels.values())
        cached_kind, cached_tensors, pictures = self._extra_cache
        if kind != cached_kind or len(tensors) != len(cached_tensors) or \
                any(a is not b for a, b in zip(tensors, cached_tensors)):
            pictures = extra_channel_pictures(pipe, extra_channels, kind)
            self._extra_cache = (kind, tensors, pictures)  # keeps the tensors: identity stays meaningful
        return pictures

    def post_views(self, branches, reason: str) -> None:
        """A `RunChanged` for each branch, their views taken together (under the session's lock)."""
        with self.session.lock:
            views = [self.session.view(branch) for branch in branches]
        for view in views:
            self.post(self.RunChanged(view, reason))

    def show_events(self, branch: str, due) -> bool:
        """Post the notes of the lesson events due now (the play loop applied them); True when one pauses."""
        if not due:
            return False
        notes, pause = notes_and_pause(due)
        auto = self.session.settings.auto_pace
        if auto and (pause or notes):  # playing by itself: hold at every note, then go on (see lessons/pacing.py)
            self.post(self.EventsDue(notes, False, self.session.view(branch), hold=auto))
            return True
        self.post(self.EventsDue(notes, pause, self.session.view(branch)))
        return pause

    def reporting(self, branch: str = MAIN) -> _Reporter:
        """A context in which a failure becomes a `Failed` message (`.failed` says whether one came)."""
        return _Reporter(self, branch)


def notes_and_pause(due: list) -> tuple[list[str], bool]:
    """The notes of these lesson events, and whether one of them pauses the run."""
    return [e.note for e in due if e.note], any(e.pause for e in due)


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
