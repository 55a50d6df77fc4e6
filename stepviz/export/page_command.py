"""The `stepviz export` command line that makes an export again, and the lesson's claims measured on its runs.

The command names the lesson (by name when it is a ready one) and adds an option for every setting that differs
from what the lesson file says (or, without a lesson, from stepviz's defaults). Edits made by hand in the notebook
or the TUI are scripted events the command line cannot carry: the page says so, and the manifest lists them.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ..run.settings import RunSettings
from .manifest import describe_picture

# RunSettings field -> `stepviz export` option
OPTIONS = {"model": "--model", "mode": "--mode", "prompt": "--prompt", "negative_prompt": "--negative-prompt",
           "seed": "--seed", "steps": "--steps", "guidance_scale": "--guidance", "scheduler": "--scheduler",
           "strength": "--strength", "height": "--height", "width": "--width", "image": "--image",
           "mask_image": "--mask", "depth_map": "--depth-map"}
PICTURES = ("image", "mask_image", "depth_map")


def _same_events(a: list, b: list) -> bool:
    key = lambda e: (e.at_step, e.set_guidance_scale, e.set_scheduler, e.note)  # noqa: E731
    return sorted(map(key, a), key=str) == sorted(map(key, b), key=str)


def reproducing_command(settings, kind: str, every: int) -> tuple[str, str | None]:
    """(the command line, a sentence on what it cannot carry or None)."""
    from ..run.lesson_file import load_lesson
    from ..lessons.shipped import LESSONS_FOLDER

    words, caveat = ["stepviz", "export"], None
    base = RunSettings()
    if settings.source:
        path = Path(settings.source)
        words.append(path.stem if path.parent.resolve() == LESSONS_FOLDER else str(path))
        try:
            base = load_lesson(path)
        except Exception:  # the file changed or went since the run: name it, and give every setting
            caveat = f"{path} no longer reads as a lesson: the options below give the run's own settings"
        if caveat is None and not _same_events(base.events, settings.events):
            caveat = ("the run has edits made by hand (in the notebook or the TUI), kept as events in the manifest; "
                      "the command line replays the lesson's own events only")
    elif settings.events:
        caveat = "the run has edits made by hand, kept as events in the manifest; the command line cannot replay them"
    for field, option in OPTIONS.items():
        value, given = getattr(settings, field), getattr(base, field)
        if field in PICTURES:  # a path, a drawn toy scene or a tensor: compared by what the manifest calls it
            value, given = (None if v is None else v if isinstance(v, (str, Path)) else describe_picture(v)
                            for v in (value, given))
            if value is not None and value != given and not Path(str(value)).is_file():
                caveat = caveat or f"{field} is a picture made in code: the command line cannot name it"
                continue
        if value is None or value == given:
            continue
        words += [option, f"{value:g}" if isinstance(value, float) else str(value)]
    words += ["--preview", kind] + (["--every", str(every)] if every != 1 else []) + ["--out", "DIR"]
    return shlex.join(words), caveat


def measured_claims(settings, played: dict) -> dict[tuple, list[dict]]:
    """Each event's claims measured as `stepviz lessons check` measures them, on the runs the export played
    (`played`: "main" or a [[compare]] label -> its Stepper); keyed by (at_step, note). Counts over seeds are left
    to the check: they would play each run again at every seed."""
    from ..run.lesson_check import LessonRuns, measure

    runs = LessonRuns(settings)
    runs.played.update(played)
    found = {}
    for event in settings.events:
        results = []
        for claim in event.expect:
            if claim.kind == "seeds":  # plays the run at every seed it counts: `stepviz lessons check` does that
                continue
            try:
                result = measure(claim, runs)
                results.append({"claim": claim.describe(), "step": str(result.step), "passed": result.passed,
                                "measured": result.measured, "say": claim.say or ""})
            except Exception as exc:  # a claim that cannot be measured must not cost the class its page
                results.append({"claim": claim.describe(), "step": str(claim.step), "passed": False,
                                "measured": f"cannot measure: {exc}", "say": claim.say or ""})
        found[(event.at_step, event.note or "")] = results
    return found
