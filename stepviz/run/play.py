"""The one loop that plays a run: step, then the lesson events due at the new step, until it ends.

    for played in play(stepper, settings.events):
        played.record      # the step just taken (None for the events due before the first step)
        played.events      # the lesson events due once the run has taken this many steps
        played.pause       # one of them asks the front end to pause
        played.stopped     # the NaN/Inf watchdog stopped the run at this step (a NonFiniteError)

Every front end iterates over it: `stepviz export`, `stepviz lessons check`, the TUI's jobs, its compare
grid and the notebook. Each decides what a pause means (the TUI and the notebook stop iterating; the
exporter and the checker go on) and when to stop (a front end's worker is cancelled between two steps,
since the generator steps only when asked for the next item).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..lessons.events import apply_events


@dataclass(frozen=True)
class Played:
    """One moment of a played run: after a step (or before the first, `record` None)."""

    steps_taken: int
    record: object | None
    events: tuple = ()  # the lesson events due now, in file order
    applied: bool = True  # their guidance and scheduler changes went to the stepper (False: the run had ended)
    stopped: Exception | None = None  # the watchdog's NonFiniteError when NaN/Inf stopped the run here

    @property
    def pause(self) -> bool:
        return any(event.pause for event in self.events)

    @property
    def notes(self) -> list[str]:
        return [event.note for event in self.events if event.note]


def play(stepper, events=(), *, steps: int | None = None, from_start: bool = False,
         lock=None) -> Iterator[Played]:
    """Take the steps left (at most `steps` of them), yielding after each the record and the events due.

    from_start: first yield the events due before the next step (at the run's current step count), as when a
    run begins. lock: held around each step and its events (a session's lock, so edits wait for the step).
    """
    from ..engine import NonFiniteError

    lock = lock or contextlib.nullcontext()
    if from_start:
        with lock:
            played = _events_due(stepper, events)
        yield played  # never yield holding the lock: the consumer may stop iterating on another thread
    taken = 0
    while (steps is None or taken < steps) and not stepper.done:
        with lock:
            try:
                stepper.step()
                played = _events_due(stepper, events, stepper.records[-1])
            except NonFiniteError as exc:
                played = Played(len(stepper.records), stepper.records[-1] if stepper.records else None, stopped=exc)
        taken += 1
        yield played
        if played.stopped is not None:
            return


def _events_due(stepper, events, record=None) -> Played:
    applied = not stepper.done
    return Played(len(stepper.records), record, tuple(apply_events(stepper, events)), applied)
