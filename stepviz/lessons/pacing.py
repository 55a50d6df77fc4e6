"""A lesson's pace in class: how long each note stays when the lesson plays itself, and the total.

`stepviz tui LESSON --auto` plays the lesson: it steps on its own, holds at every event with a note (or a
pause) for the lesson's pace in seconds, then goes on to the next event. `--pace S` sets the hold.
"""

from __future__ import annotations

DEFAULT_PACE = 15.0  # seconds a note stays on screen, unless the lesson says `pace = N`
STEP_SECONDS = 0.3  # a toy step as the class sees it while playing (one repaint per step, at most)
MAX_CLASS_SECONDS = 180.0  # a lesson fits in three minutes of class at its default pace


def holds(settings) -> list[int]:
    """The steps (at_step) where a playing lesson holds: events with a note or a pause, once per step."""
    return sorted({e.at_step for e in settings.events if e.note or e.pause})


def class_seconds(settings, pace: float | None = None) -> float:
    """Seconds the lesson takes when it plays itself: a hold per note, plus the steps of the main run."""
    pace = pace or settings.pace or DEFAULT_PACE
    return len(holds(settings)) * pace + settings.steps * STEP_SECONDS


def describe_seconds(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
