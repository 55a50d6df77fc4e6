"""A lesson's scripted events and [[compare]] branches, applied to a run: one rule for the TUI, the notebook,
the exporter and the checker.

An event applies once the run has taken `at_step` steps (0 = before the first). Its guidance and scheduler
changes go to the stepper; its note and pause are for the front end, which shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Event:
    """A scripted change: applied once the run has taken `at_step` steps (0 = before the first)."""

    at_step: int
    set_guidance_scale: float | None = None
    set_scheduler: str | None = None
    note: str | None = None
    pause: bool = False
    expect: list = field(default_factory=list)  # claims.Claim: what the note says the screen shows, checked


@dataclass
class CompareBranch:
    """Another run to set beside the main one, e.g. the same prompt at another guidance scale."""

    label: str
    overrides: dict = field(default_factory=dict)
    where: str = ""  # "FILE: [[compare]] #N (line L)" when read from a lesson, for error messages


def due_events(events: list, steps_taken: int) -> list:
    """The events due once the run has taken `steps_taken` steps, in file order."""
    return [event for event in events if event.at_step == steps_taken]


def apply_events(stepper, events: list) -> list:
    """Apply the guidance and scheduler changes of the events due now; returns those events.

    Once the run is done there is no step left to change: the changes are skipped, but the due events are
    still returned, so their notes show (a lesson's note is never lost). The stepper's own log records
    what changed.
    """
    due = due_events(events, len(stepper.records))
    if not stepper.done:
        for event in due:
            if event.set_guidance_scale is not None:
                stepper.set_guidance_scale(event.set_guidance_scale)
            if event.set_scheduler is not None:
                stepper.set_scheduler(event.set_scheduler)
    return due
