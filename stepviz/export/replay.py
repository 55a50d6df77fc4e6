"""A run stepped by hand, as settings `stepviz export` can replay: its edits become scripted events.

A Stepper runs the same way every time for the same settings and seed, so the export of a run stepped by hand
(in the notebook or the TUI) is the export of its settings with each edit that is still part of the run
(guidance or scheduler changes, read from `Stepper.log` by lessons/events.py's `events_from_edits`) as a
scripted event at its step.
"""

from __future__ import annotations

from ..engine.checks import StepvizInputError
from ..lessons.events import Event, events_from_edits
from ..run.settings import RunSettings


def settings_with_edits(settings: RunSettings, stepper, problem: str | None = None,
                        where: str = "the notebook") -> RunSettings:
    """`settings` plus the edits made by hand (a lesson's own events, applied too, are not repeated)."""
    if problem:
        raise StepvizInputError(f"export: {problem}")
    scripted = {change for e in settings.events for change in _changes(e)}
    edits = [e for e in events_from_edits(stepper.log, where) if not set(_changes(e)) <= scripted]
    return settings.with_overrides(events=sorted(settings.events + edits, key=lambda e: e.at_step))


def _changes(event: Event) -> list[tuple]:
    return [(event.at_step, name, value) for name, value in (("guidance", event.set_guidance_scale),
                                                             ("scheduler", event.set_scheduler)) if value is not None]
