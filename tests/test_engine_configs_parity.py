"""Parity on the configs people have (tests/parity_cases.py): old scheduler configs and each mode's constructor
fixes, guidance <= 1 and guidance-embedding (LCM) models, the turbo models, the family's default guidance."""

import pytest
import torch
from parity_cases import (ALL_CASES, DEFAULT_CASES, GUIDANCE_CASES, OLD, SD_CLASSES, Case, built, max_abs_diff,
                          mode_inputs)

from stepviz import Stepper
from stepviz.engine import defaults


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_bit_exact_with_the_modes_diffusers_pipeline(case: Case):
    ours, theirs, _ = case.run()
    assert max_abs_diff(ours, theirs) == 0.0


def test_own_scheduler_keeps_the_constructors_fixes_every_value_explicit():
    pipe = built("StableDiffusionPipeline", "DDIMScheduler", OLD)
    assert {"clip_sample", "steps_offset"} <= set(pipe.scheduler.config["_use_default_values"])
    st = Stepper(pipe, prompt="x", num_inference_steps=3, height=32, width=32)
    assert st.scheduler.config.clip_sample is False and st.scheduler.config.steps_offset == 1
    assert "_use_default_values" not in st.scheduler.config  # the config that runs, every value explicit


@pytest.mark.parametrize("name", ["ddim", "pndm"])
def test_inpaint_builds_its_named_scheduler_as_the_inpaint_constructor_does(name):
    pipe = built("StableDiffusionPipeline", "PNDMScheduler", OLD)
    st = Stepper(pipe, prompt="x", scheduler=name, mode="inpaint", num_inference_steps=5, **mode_inputs("inpaint"))
    if name == "ddim":
        assert st.scheduler.config.clip_sample is True  # StableDiffusionInpaintPipeline leaves it on
    else:
        # PLMS repeats its second timestep once; with the PRK warm-up diffusers skips, 5 steps were 14 UNet calls
        assert st.scheduler.config.skip_prk_steps is True and len(st.timesteps) == 6


def test_guidance_zero_follows_the_prompt_as_diffusers_does():
    """At s = 0 diffusers runs the prompt's prediction alone (two prompts differ); the negative branch is still
    computed for the panels, and each record says which drove the step."""
    pipe = built("StableDiffusionPipeline", "PNDMScheduler", {**OLD, "steps_offset": 1, "skip_prk_steps": True})
    runs = [Stepper(pipe, prompt=prompt, guidance_scale=0.0, seed=3, num_inference_steps=3, height=32, width=32)
            for prompt in ("a red circle", "a blue square")]
    for st in runs:
        st.run()
    assert not torch.equal(runs[0].latents, runs[1].latents)
    record = runs[0].records[0]
    assert record.noise_pred_from == "text" and torch.equal(record.noise_pred, record.noise_pred_text)
    assert not torch.equal(record.noise_pred_uncond, record.noise_pred_text)  # the negative branch, computed
    st = runs[0]
    st.rewind(1)
    st.set_guidance_scale(7.5)  # raising the scale mid-run: CFG from the next step on, and the log says so
    assert st.log[-1].detail["noise_pred_from"] == "cfg" and st.step().noise_pred_from == "cfg"


def test_lcm_is_driven_by_the_prompt_at_every_scale():
    lcm = next(case for case in GUIDANCE_CASES if case.layout.startswith("LCM"))
    pipe = lcm.make()
    st = Stepper(pipe, prompt="x", guidance_scale=8.5, num_inference_steps=2, height=32, width=32)
    assert st.step().noise_pred_from == "text"


def test_guidance_default_is_the_familys_pipeline_default():
    sd = built(SD_CLASSES["txt2img"], "PNDMScheduler", {**OLD, "steps_offset": 1, "skip_prk_steps": True})
    assert Stepper(sd, prompt="x", num_inference_steps=2, height=32, width=32).guidance_scale == 7.5
    xl = next(case for case in DEFAULT_CASES if case.layout == "SDXL base").make()
    assert Stepper(xl, prompt="x", num_inference_steps=2, height=32, width=32).guidance_scale == 5.0
    assert defaults.guidance_scale_for(sdxl=True) == 5.0 and defaults.guidance_scale_for(sdxl=False) == 7.5


def test_stepper_with_defaults_is_the_sdxl_pipeline_with_defaults():
    """No guidance scale and no negative prompt on either side: SDXL's 5.0 and its zeroed negative branch."""
    xl = next(case for case in DEFAULT_CASES if case.layout == "SDXL base").make()
    size = dict(num_inference_steps=4, height=32, width=32)  # stepviz's default is 25 steps, diffusers' 50
    st = Stepper(xl, prompt="a red circle", seed=7, **size)
    st.run()
    expected = xl(prompt="a red circle", output_type="latent", generator=torch.Generator("cpu").manual_seed(7),
                  **size).images
    assert st.guidance_scale == 5.0 and max_abs_diff(st.latents, expected) == 0.0
