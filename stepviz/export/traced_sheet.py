"""sheet-traced-<example>.png: a hand-written loop that a lesson traces (its `trace` claims, e.g. the course's own
loop with LMS), on one slide like the run's sheet.png, so that the lesson's "vs" has both sides to point at."""

from __future__ import annotations

from pathlib import Path

from ..render.sheet import sheet_image
from ..render.strip import strip_pictures
from ..run.lesson_check import traced_run
from ..trace.flow import FlowTraceReport
from ..trace.replay import flow_loop_replay, replays
from .strip import save_atomically


def traced_commands(settings) -> list[str]:
    """The shipped example loops (with their arguments) the lesson's claims run under stepviz.trace, in order."""
    commands: list[str] = []
    for event in settings.events:
        for claim in event.expect:
            if claim.trace and claim.trace not in commands:
                commands.append(claim.trace)
    return commands


def write_traced_sheets(settings, folder: Path, kind: str, progress: bool) -> list[str]:
    """One sheet per traced example loop: its own recorded steps (x_t over x0-hat) and its result."""
    written = []
    for command in traced_commands(settings):
        trace, report = traced_run(command)
        loop = flow_loop_replay(trace, report) if isinstance(report, FlowTraceReport) else \
            replays(report, trace.pipe)[0]
        records = loop.run()
        pictures = strip_pictures(loop.pipe, records, kind, progress)
        first = report.first_divergence  # worded as the trace report words it (report_text.py)
        verdict = ("matches the pipeline" if first is None
                   else f"first divergence at step {first.step}, {first.quantity}")
        subtitle = f"stepviz trace {command} · {len(records)} steps · {verdict} · {kind} pictures"
        name = f"sheet-traced-{'-'.join(command.split())}.png"
        save_atomically(sheet_image(f"the loop as written: {command}", subtitle, records, pictures, {}),
                        folder / name)
        written.append(name)
    return written
