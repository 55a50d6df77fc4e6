"""What a key asks of the engine: one class per kind of job, each run on the engine worker's thread.

A key's action builds one of these (`Rewind(keep=3)`) and hands it to its screen's worker (the main screen's
or the compare grid's: `run_engine` for jobs that replace the one in progress, `run_edit` for those that go
beside it), which calls `job.run(jobs, cancelled)`. `run` calls the session (plain Python, under its lock) and posts
`EngineJobs` messages back; it never touches a widget. `cancelled()` is checked between steps, so pausing,
rewinding or quitting lets the step in progress finish and then stops cleanly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..run.lockstep import LockstepRuns
from ..run.session import FORK, MAIN
from .engine_jobs import EngineJobs, notes_and_pause

Cancelled = Callable[[], bool]


class EngineJob:
    """A job for the engine worker."""

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Load(EngineJob):
    """Load the model, build the run, take it to the lesson's first step."""

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        session = jobs.session
        with jobs.reporting():
            session.load(lambda text: jobs.post(EngineJobs.Busy(f"loading: {text}")))
            passed, now = session.fast_forward()
            if passed or session.settings.start_at:
                notes = [f"(started at step {session.settings.start_at}; earlier notes:)",
                         *(e.note for e in passed if e.note)]
                jobs.post(EngineJobs.EventsDue(notes, False, session.view(MAIN)))
            view = session.view(MAIN)
            jobs.post(EngineJobs.RunChanged(view, "loaded"))
            if not jobs.show_events(MAIN, now.events) and session.settings.auto_pace:
                jobs.post(EngineJobs.EventsDue([], False, view, hold=0.0))


@dataclass(frozen=True)
class Step(EngineJob):
    """`count` scheduler steps of each branch, a round at a time."""

    count: int | None = 1
    branches: tuple[str, ...] = (MAIN,)

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        session, taken = jobs.session, 0
        plays = {branch: session.play(branch) for branch in self.branches}
        try:
            while self.count is None or taken < self.count:
                if cancelled():
                    return
                moved = False
                for branch in self.branches:
                    with jobs.reporting(branch) as report:
                        jobs.post(EngineJobs.Busy(f"computing step {session.steps_taken(branch) + 1}"))
                        played = next(plays[branch], None)
                        if played is not None:
                            moved = True
                            if played.stopped is not None:
                                raise played.stopped
                            jobs.post(EngineJobs.RunChanged(session.view(branch), "step"))
                            if jobs.show_events(branch, played.events):
                                return
                    if report.failed:
                        return
                if not moved:
                    return
                taken += 1
        finally:
            jobs.post(EngineJobs.Busy(None))
            if self.count is None:
                jobs.post(EngineJobs.PlayStopped())


@dataclass(frozen=True)
class Play(Step):
    """Steps until the run is finished, a lesson pauses it, or the user does (the worker is cancelled)."""

    count: int | None = None


@dataclass(frozen=True)
class StepTogether(EngineJob):
    """`count` lockstep rounds of the compare grid's branches (None: until every one is finished, a lesson pauses
    them, or the user does); a round steps each branch at the common step (run/lockstep.py)."""

    branches: tuple[str, ...]
    count: int | None = 1

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        runs, rounds = LockstepRuns(jobs.session, self.branches), 0
        try:
            with jobs.reporting(self.branches[0]):
                while (self.count is None or rounds < self.count) and not cancelled():
                    moments = runs.round(cancelled)
                    if not moments:
                        break
                    rounds += 1
                    jobs.post_views(self.branches, "step")
                    notes, pause = notes_and_pause([event for moment in moments for event in moment.events])
                    if notes or pause:  # the lesson's events ride on its main branch
                        jobs.post(EngineJobs.EventsDue(notes, pause, jobs.session.view(self.branches[0])))
                        if pause:
                            break
        finally:
            jobs.post_views(self.branches, "step")  # after a failure too: the grid shows the runs as they are
            if self.count is None:
                jobs.post(EngineJobs.PlayStopped())


@dataclass(frozen=True)
class CatchUp(EngineJob):
    """Bring the other branches to the first one's step, showing each step (the lesson's [[compare]] runs, built
    at step 0, join the run where it is)."""

    branches: tuple[str, ...]

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        with jobs.reporting(self.branches[0]):
            for _ in LockstepRuns(jobs.session, self.branches).catch_up(cancelled):
                jobs.post_views(self.branches, "step")
        jobs.post_views(self.branches, "refresh")


@dataclass(frozen=True)
class Rewind(EngineJob):
    """Keep the first `keep` steps of `branch`, drop the later ones."""

    keep: int
    branch: str = MAIN

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        with jobs.reporting(self.branch):
            jobs.session.rewind(self.keep, self.branch)
            jobs.post(EngineJobs.RunChanged(jobs.session.view(self.branch), "rewind"))


@dataclass(frozen=True)
class SetGuidanceScale(EngineJob):
    """The CFG scale from the next step of `branch` on."""

    scale: float
    branch: str = MAIN

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        with jobs.reporting(self.branch):
            jobs.session.set_guidance_scale(self.scale, self.branch)
            jobs.post(EngineJobs.RunChanged(jobs.session.view(self.branch), "guidance"))


@dataclass(frozen=True)
class SetScheduler(EngineJob):
    """Swap the scheduler of `branch` for the steps left (`name` as `stepviz schedulers` lists them)."""

    name: str
    branch: str = MAIN

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        with jobs.reporting(self.branch):
            notice = jobs.session.set_scheduler(self.name, self.branch)
            jobs.post(EngineJobs.RunChanged(jobs.session.view(self.branch), "scheduler", notice))


@dataclass(frozen=True)
class Fork(EngineJob):
    """A fork of the run after its first `steps` steps (None: as it is now), beside the run."""

    steps: int | None = None

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        with jobs.reporting():
            jobs.session.fork(self.steps)
            jobs.post(EngineJobs.RunChanged(jobs.session.view(MAIN), "fork"))
            jobs.post(EngineJobs.RunChanged(jobs.session.view(FORK), "fork"))


@dataclass(frozen=True)
class BuildLessonBranches(EngineJob):
    """The lesson's [[compare]] runs, built beside the run (once)."""

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        with jobs.reporting():
            jobs.post(EngineJobs.Busy("building the lesson's runs"))
            jobs.post(EngineJobs.BranchesReady(jobs.session.lesson_branches()))
        jobs.post(EngineJobs.Busy(None))


@dataclass(frozen=True)
class Refresh(EngineJob):
    """The branches' views again (a screen opens on them, or another screen stepped or edited them)."""

    branches: tuple[str, ...] = (MAIN,)

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        with jobs.reporting(self.branches[0]):
            jobs.post_views(self.branches, "refresh")


@dataclass(frozen=True)
class ExportStrip(EngineJob):
    """The run's per-step strip, written into `out_dir` with pictures of this preview kind."""

    out_dir: Path
    kind: str

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        from ..export.strip import export_strip

        with jobs.reporting():
            with jobs.session.writing_file() as stepper:
                path = export_strip(stepper, self.out_dir, kind=self.kind)
            jobs.post(EngineJobs.Exported(Path(path)))


@dataclass(frozen=True)
class ExportPage(EngineJob):
    """The run as `stepviz export` writes it (the explorable index.html, the handout, strips, metrics) into a new
    folder `stepviz-export-<time>` under `out_dir`: the run's settings replayed with the edits made here as events
    at their steps, a lesson's [[compare]] runs beside it."""

    out_dir: Path
    kind: str

    def run(self, jobs: EngineJobs, cancelled: Cancelled) -> None:
        import time

        from ..export.replay import settings_with_edits
        from ..export.run_export import export_run

        session = jobs.session
        with jobs.reporting():
            folder = self.out_dir / f"stepviz-export-{time.strftime('%Y%m%d-%H%M%S')}"
            number = 1
            while folder.exists():
                number += 1
                folder = folder.with_name(f"stepviz-export-{time.strftime('%Y%m%d-%H%M%S')}-{number}")
            jobs.post(EngineJobs.Busy(f"exporting the page to {folder.name}"))
            try:
                with session.writing_file() as stepper:
                    settings = settings_with_edits(session.settings, stepper, where="the TUI")
                    export_run(settings, folder, kind=self.kind, pipe=session.pipe)
            finally:
                jobs.post(EngineJobs.Busy(None))
            jobs.post(EngineJobs.Exported(folder / "index.html"))

