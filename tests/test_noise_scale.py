"""The VP <-> sigma conversion lives once (stepviz.engine.noise_scale); every caller agrees with it."""

from __future__ import annotations

import pytest
import torch

from stepviz.engine.noise_scale import abar_of, convert_latents, sigma_of, to_vp_scale


def test_x_vp_is_x_sigma_over_the_root_of_one_plus_sigma_squared():
    x = torch.randn(1, 4, 8, 8)
    assert torch.allclose(to_vp_scale(x, "sigma", 3.0), x / 10**0.5)
    assert to_vp_scale(x, "vp", 3.0) is x
    assert torch.allclose(convert_latents(convert_latents(x, 2.0, "vp", "sigma"), 2.0, "sigma", "vp"), x)
    assert sigma_of(abar_of(0.7)) == pytest.approx(0.7) and abar_of(sigma_of(0.2)) == pytest.approx(0.2)


def test_the_preview_scales_sigma_latents_with_the_helper(tiny_pipe):
    from stepviz.render.preview import channels_image, preview

    x = torch.randn(1, 4, 8, 8) * 5
    shown = preview(tiny_pipe, x, "channels", family="sigma", sigma=4.0)
    assert shown.tobytes() == channels_image(to_vp_scale(x, "sigma", 4.0)).tobytes()
    assert shown.tobytes() != channels_image(x).tobytes()


@pytest.mark.parametrize("scheduler", ["euler", "ddim"])
def test_the_start_on_the_vp_scale_is_the_same_before_and_after_steps(tiny_pipe, scheduler):
    """Before a step the start's noise level is the scheduler's at the loop's start; after, the first
    record's: both must give the same picture of the start (the TUI, the notebook and the lesson checker
    all show it)."""
    from stepviz.engine import Stepper
    from stepviz.engine.schedulers import start_on_vp_scale

    stepper = Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=3, height=32, width=32,
                      scheduler=scheduler)
    before = start_on_vp_scale(stepper)
    stepper.step()
    record = stepper.records[0]
    assert torch.allclose(start_on_vp_scale(stepper), before)
    assert torch.allclose(before, to_vp_scale(stepper.run_inputs.latents, record.family, record.sigma))
    if scheduler == "euler":  # a sigma-family start is noise of std ~ sqrt(1 + sigma^2): ~1 on the VP scale
        assert record.family == "sigma" and record.sigma > 1
        assert float(before.std()) == pytest.approx(1.0, abs=0.25)


def test_a_scheduler_swap_across_families_moves_the_latents_with_the_helper(tiny_pipe):
    from stepviz.engine import Stepper

    stepper = Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=4, height=32, width=32, scheduler="ddim")
    stepper.step()
    sigma = stepper.records[-1].sigma_next
    latents = stepper.latents.clone()
    stepper.set_scheduler("euler")
    assert torch.allclose(stepper.latents, convert_latents(latents, sigma, "vp", "sigma"), rtol=1e-4)


def test_a_recorded_loop_starts_on_the_vp_scale_as_its_first_record_says(tiny_pipe):
    """`stepviz trace --open` shows a recorded loop's start before its first step: through the training
    schedule at its first timestep, which must agree with the first record's sigma."""
    from diy_loops import txt2img_loop

    import stepviz
    from stepviz.trace.replay import replays

    with stepviz.trace(tiny_pipe) as tr:
        txt2img_loop(tiny_pipe, "euler")
    loop, _ = replays(tr.compare(), tiny_pipe)
    before = loop.start_on_vp_scale()
    loop.step()
    assert loop.records[0].family == "sigma"
    assert torch.allclose(before, loop.start_on_vp_scale(), rtol=1e-3)
