"""2-4 runs stepped in lockstep, the model behind the compare grid (screens/compare.py). Plain Python.

Every run shows the same step number: a round takes the next step in each run that is at the common
step; a run already further on shows its recorded step (looking back), a finished one its last.
Called from a worker thread; every touch of a stepper is under `lock` (the session's, when the runs
are branches of one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from ..run.session import run_view

LETTERS = "ABCD"


def common_step(views) -> int | None:
    """The step number all columns show: the fewest steps taken by a run that is not finished (None: all are)."""
    going = [view.steps_taken for view in views if not view.done]
    return min(going) if going else None


class LockstepRuns:
    """The steppers of the columns A, B, ... and the lock that guards them."""

    def __init__(self, steppers: Sequence, lock: threading.RLock | None = None, model: str = "") -> None:
        if not 1 <= len(steppers) <= 4:
            raise ValueError(f"{len(steppers)} runs cannot be compared: give 1 to 4")
        self.steppers, self.model = list(steppers), model
        self.lock = lock or threading.RLock()

    def __len__(self) -> int:
        return len(self.steppers)

    def views(self) -> list:
        """A frozen view of each run, column A first."""
        with self.lock:
            return [run_view(LETTERS[i], stepper, self.model) for i, stepper in enumerate(self.steppers)]

    def catch_up(self, cancelled: Callable[[], bool]) -> Iterator[None]:
        """Step the other runs to the first run's step, one step at a time (yields after each)."""
        target = len(self.steppers[0].records)
        for stepper in self.steppers[1:]:
            while len(stepper.records) < target and not stepper.done and not cancelled():
                with self.lock:
                    stepper.step()
                yield

    def round(self, cancelled: Callable[[], bool]) -> bool:
        """One lockstep round: the next step of every run at the common step; False when no run moved."""
        step = common_step(self.views())
        if step is None:
            return False
        moved = False
        for stepper in self.steppers:
            if cancelled():
                break
            with self.lock:
                if not stepper.done and len(stepper.records) == step:
                    stepper.step()
                    moved = True
        return moved
