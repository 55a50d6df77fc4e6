"""Branches of a session stepped in lockstep: the compare grid's runs (the TUI's tui/screens/compare.py, through
its jobs StepTogether and CatchUp in tui/jobs.py). Plain Python.

Every run shows the same step number: a round takes the next step in each run that is at the common
step; a run already further on shows its recorded step (looking back), a finished one its last.
Called from a worker thread; every step goes through the session's loop (`RunSession.play`), under its lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from .play import Played


def common_step(views) -> int | None:
    """The step number all columns show: the fewest steps taken by a run that is not finished (None: all are)."""
    going = [view.steps_taken for view in views if not view.done]
    return min(going) if going else None


COLUMN_LETTERS = "ABCDEFGH"  # the runs compared side by side are named A.. (the TUI's grid, the export's page)


def lockstep_branches(branches: Sequence[str]) -> list[str]:
    """The branches as a list, refused unless there are 1 to 8 (columns A-H)."""
    if not 1 <= len(branches) <= len(COLUMN_LETTERS):
        raise ValueError(f"{len(branches)} runs cannot be compared: give 1 to {len(COLUMN_LETTERS)}")
    return list(branches)


class LockstepRuns:
    """Branches of a session (2-8, the first leads), each played by the session's loop (run/play.py)."""

    def __init__(self, session, branches: Sequence[str]) -> None:
        self.session, self.branches = session, lockstep_branches(branches)

    def __len__(self) -> int:
        return len(self.branches)

    def views(self) -> list:
        """A frozen view of each run, in the order of `branches`."""
        with self.session.lock:
            return [self.session.view(branch) for branch in self.branches]

    def catch_up(self, cancelled: Callable[[], bool]) -> Iterator[Played]:
        """Step the other runs to the first run's step, one step at a time (yields after each)."""
        target = self.session.steps_taken(self.branches[0])
        for branch in self.branches[1:]:
            while self.session.steps_taken(branch) < target and not cancelled():
                played = self._next(branch)
                if played is None:
                    break
                yield played

    def round(self, cancelled: Callable[[], bool]) -> list[Played]:
        """One lockstep round: the next step of every run at the common step; what each step brought (none
        when no run moved)."""
        step = common_step(self.views())
        moments: list[Played] = []
        for branch in self.branches if step is not None else ():
            if cancelled():
                break
            if self.session.steps_taken(branch) == step:
                played = self._next(branch)
                moments += [played] if played is not None else []
        return moments

    def _next(self, branch: str) -> Played | None:
        """One step of `branch` (None when it is finished): a loop of one step each time, since two workers
        of the grid may overlap (a cancelled one finishing its step)."""
        played = next(self.session.play(branch, steps=1), None)
        if played is not None and played.stopped is not None:
            raise played.stopped
        return played
