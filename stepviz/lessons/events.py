"""A lesson's scripted events and [[compare]] branches, applied to a run: one rule for the TUI, the notebook,
the exporter and the checker.

An event applies once the run has taken `at_step` steps (0 = before the first). Its guidance and scheduler
changes go to the stepper; its note and pause are for the front end, which shows them. The other way round,
`events_from_edits` turns the edits made by hand (a Stepper's typed log) into the events that replay them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.edit_log import GuidanceChange, Rewind, SchedulerSwap


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


def events_from_edits(log: list, where: str) -> list[Event]:
    """The guidance and scheduler edits of a Stepper's `log` still part of the run, as the events that replay
    them: a rewind to k drops those made after step k; a swap to the scheduler in use changes nothing; FLUX.1's
    true CFG scale and forks have no event. `where` names where they were made ("the notebook", "the TUI")."""
    kept: list[Event] = []
    for edit in log:
        if isinstance(edit, Rewind):
            kept = [event for event in kept if event.at_step <= edit.to]
        elif isinstance(edit, GuidanceChange):
            kept.append(Event(edit.at_step, set_guidance_scale=edit.new,
                              note=f"guidance scale set to {edit.new:g} in {where}"))
        elif isinstance(edit, SchedulerSwap) and edit.changed:
            kept.append(Event(edit.at_step, set_scheduler=edit.new, note=f"scheduler set to {edit.new} in {where}"))
    return kept
