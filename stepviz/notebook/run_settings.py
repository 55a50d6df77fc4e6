"""The RunSettings of a notebook run, so that `stepviz export` can replay it, the user's edits included.

A Stepper runs the same way every time for the same settings and seed, so the handout of a run
stepped by hand is the export of its settings with its edits as scripted events (export/replay.py).
"""

from __future__ import annotations

from pathlib import Path

from ..engine.edit_log import GuidanceChange, SchedulerSwap
from ..engine.pipeline_facts import facts_of
from ..run.settings import RunSettings

PICTURES = ("image", "mask_image", "depth_map", "strength")  # known only from the arguments given


def session_for(pipe_or_stepper, prompt: str | None, stepper_kwargs: dict) -> tuple:
    """(the RunSession of what `Debugger(...)` was given, why an export could not replay it or None).

    Given a RunSession (a lesson's, from `Debugger.from_lesson`), loads it; a Stepper is adopted as it is; a
    pipeline or a model name (loaded here) gets a Stepper built with `prompt` and `stepper_kwargs`.
    """
    from ..engine import Stepper
    from ..run.session import RunSession

    if isinstance(pipe_or_stepper, RunSession):
        pipe_or_stepper.load()
        return pipe_or_stepper, None
    if isinstance(pipe_or_stepper, Stepper):
        if prompt is not None or stepper_kwargs:
            raise TypeError("Debugger(stepper) takes no Stepper arguments: the stepper already has them")
        stepper = pipe_or_stepper
    else:
        pipe = pipe_or_stepper
        if isinstance(pipe, (str, Path)):
            from ..models import load_pipeline

            pipe = load_pipeline(str(pipe))
        if prompt is not None:
            stepper_kwargs["prompt"] = prompt
        stepper_kwargs.setdefault("capture_attention", True)  # as the TUI's runs: the attention panel
        stepper = Stepper(pipe, **stepper_kwargs)
    settings, export_problem = settings_for_stepper(stepper, stepper_kwargs)
    session = RunSession(settings, stepper.pipe)
    session.adopt(stepper)
    return session, export_problem


def settings_for_stepper(stepper, given: dict) -> tuple[RunSettings, str | None]:
    """(settings that rebuild `stepper` as it started, why an export could not replay it or None).

    `given`: the keyword arguments the Stepper was built with (empty for a Stepper built elsewhere: its
    scheduler is then rebuilt by name). No scheduler given: the pipeline's own, as the Stepper used.
    """
    # the values before the first edit are the run's own
    guidance_scale = next((edit.old for edit in stepper.log if isinstance(edit, GuidanceChange)),
                          stepper.guidance_scale)
    scheduler = next((edit.old for edit in stepper.log if isinstance(edit, SchedulerSwap)), stepper.scheduler_name)
    settings = RunSettings(
        model=str(facts_of(stepper.pipe).model_id or type(stepper.pipe).__name__), mode=stepper.mode,
        prompt=stepper.prompt, negative_prompt=stepper.negative_prompt, seed=stepper.seed,
        steps=stepper.num_inference_steps, guidance_scale=guidance_scale,
        scheduler=given.get("scheduler") if given else scheduler,
        height=stepper.height, width=stepper.width,
        **{key: given[key] for key in PICTURES if key in given})
    problem = None
    if stepper.seed is None:
        problem = "the run has no seed (seed=None), so it cannot be replayed: give seed=<an integer>"
    elif not isinstance(given.get("scheduler") or "", str):
        problem = "the run was given a scheduler object: give its name (see `stepviz schedulers`) to export"
    elif given.get("inpaint_noise", "fixed") != "fixed":
        problem = "export replays inpaint_noise='fixed' runs only"
    elif stepper.mode != "txt2img" and "image" not in given:
        problem = (f"the Stepper ({stepper.mode}) was built outside the Debugger, so its input pictures are not "
                   "known: build it with Debugger(pipe, image=..., ...) to export")
    return settings, problem
