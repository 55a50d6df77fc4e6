"""A live Stepper and a recorded loop (LoopReplay) are shown by the same code: run_view reads a run through
run/shown_run.py's ShownRun only, and both kinds answer it."""

import math

import pytest
import torch
from diy_loops import txt2img_loop

import stepviz
from stepviz import Stepper
from stepviz.run.session import run_view
from stepviz.run.shown_run import ShownRun
from stepviz.trace.replay import replays

NAMES = set(ShownRun.__annotations__) | {
    name for name, value in vars(ShownRun).items()
    if not name.startswith("_") and (callable(value) or isinstance(value, property))}


class OnlyTheProtocol:
    """A run seen through ShownRun's names alone: reading anything else fails."""

    def __init__(self, run):
        object.__setattr__(self, "_run", run)

    def __getattr__(self, name):
        if name not in NAMES:
            raise AssertionError(f"a front end read {name!r}, which ShownRun does not name")
        return getattr(self._run, name)


def the_same_view(run):
    direct, through = run_view("main", run, "m"), run_view("main", OnlyTheProtocol(run), "m")
    for field in ("scheduler", "family", "total_steps", "guidance_scale", "done", "records", "grid", "height",
                  "added_conditioning", "strength", "sharing", "model_family", "history_fill", "prediction_type"):
        assert getattr(direct, field) == getattr(through, field), field
    assert torch.equal(direct.initial_latents, through.initial_latents)
    return direct


def test_a_stepper_and_a_recorded_loop_answer_the_same_names(tiny_pipe):
    stepper = Stepper(tiny_pipe, prompt="a red circle", seed=1, num_inference_steps=3, height=32, width=32)
    with stepviz.trace(tiny_pipe) as tr:
        txt2img_loop(tiny_pipe, "euler")
    loop, reference = replays(tr.compare(), tiny_pipe)
    for run in (stepper, loop, reference):
        assert isinstance(run, ShownRun)
        run.step()
        view = the_same_view(run)
        assert view.steps_taken == 1 and view.model_family == "SD" and view.sharing is None
    assert not hasattr(loop, "conditioning")  # no Stepper part it does not use


def test_a_flow_run_is_shown_through_the_same_names():
    """SD3 and FLUX.1 runs too: the schedule panel's shift (FLUX.1: e^mu) comes through ShownRun."""
    from test_flow_views import finished

    sd3, flux = finished("StableDiffusion3Pipeline"), finished("FluxPipeline")
    for run, shift in ((sd3, 3.0), (flux, math.exp(flux.records[0].mu))):
        assert isinstance(run, ShownRun)
        view = the_same_view(run)
        assert view.schedule_shift == run_view("main", OnlyTheProtocol(run), "m").schedule_shift
        assert view.schedule_shift == pytest.approx(shift)
