"""stepviz.trace knows the flow loop: a learner's SD3 / FLUX.1 loop against the pipeline's rules, and the
classic flow mistakes named as causes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_flow_parity import SIZE, TOKENS, pipe_for

import stepviz
from stepviz.engine.flow_schedule import mu_for, shifted

STEPS = 4


def sd3_loop(pipe, *, t_scale=1.0, scheduler=None, sigmas=None, start_scale=1.0, shift_factor=True):
    """The SD3 pipeline's loop written by hand (CFG 7), with knobs for the classic mistakes."""
    pe, npe, pp, npp = pipe.encode_prompt("a red circle", None, None, negative_prompt="",
                                          max_sequence_length=TOKENS)
    embeds, pooled = torch.cat([npe, pe]), torch.cat([npp, pp])
    sched = scheduler or pipe.scheduler
    if sigmas is None:
        sched.set_timesteps(STEPS)
    else:
        sched.set_timesteps(sigmas=sigmas)
    latents = torch.randn((1, 16, SIZE // 4, SIZE // 4), generator=torch.Generator().manual_seed(0)) * start_scale
    with torch.no_grad():
        for t in sched.timesteps:
            v = pipe.transformer(hidden_states=torch.cat([latents] * 2), timestep=(t * t_scale).expand(2),
                                 encoder_hidden_states=embeds, pooled_projections=pooled, return_dict=False)[0]
            v_uncond, v_text = v.chunk(2)
            latents = sched.step(v_uncond + 7.0 * (v_text - v_uncond), t, latents, return_dict=False)[0]
        vae = pipe.vae.config
        pipe.vae.decode(latents / vae.scaling_factor + (vae.shift_factor if shift_factor else 0.0))


def flux_loop(pipe, *, t_scale=1 / 1000):
    pe, pp, text_ids = pipe.encode_prompt("a red circle", max_sequence_length=TOKENS)
    h = w = SIZE // 4
    noise = torch.randn((1, 16, h, w), generator=torch.Generator().manual_seed(0))
    latents = pipe._pack_latents(noise, 1, 16, h, w)
    img_ids = pipe._prepare_latent_image_ids(1, h // 2, w // 2, "cpu", torch.float32)
    sched = pipe.scheduler
    sched.set_timesteps(sigmas=np.linspace(1.0, 1 / STEPS, STEPS), mu=mu_for(sched.config, latents.shape[1], 1.15))
    with torch.no_grad():
        for t in sched.timesteps:
            v = pipe.transformer(hidden_states=latents, timestep=(t * t_scale).expand(1), guidance=torch.full([1], 3.5),
                                 pooled_projections=pp, encoder_hidden_states=pe, txt_ids=text_ids, img_ids=img_ids,
                                 return_dict=False)[0]
            latents = sched.step(v, t, latents, return_dict=False)[0]
        vae = pipe.vae.config
        z = pipe._unpack_latents(latents, SIZE, SIZE, pipe.vae_scale_factor)
        pipe.vae.decode(z / vae.scaling_factor + vae.shift_factor)


def traced(cls_name, loop, **knobs):
    pipe = pipe_for(cls_name)
    with stepviz.trace(pipe) as tr:
        loop(pipe, **knobs)
    return tr.compare()


@pytest.mark.parametrize(("cls_name", "loop"), [("StableDiffusion3Pipeline", sd3_loop), ("FluxPipeline", flux_loop)])
def test_a_right_flow_loop_has_no_divergence(cls_name, loop):
    report = traced(cls_name, loop)
    assert report.first_divergence is None, str(report)
    assert len(report.steps) == STEPS and "no divergence" in str(report)
    # the pipeline's loop replayed on the loop's noise and conditioning ends where the loop ends
    assert report.final_difference is not None and report.final_difference < 1e-5, str(report)
    assert "final latents: max abs difference" in str(report)


@pytest.mark.parametrize(("cls_name", "loop", "knobs"), [
    ("StableDiffusion3Pipeline", sd3_loop, dict(t_scale=1 / 1000)),
    ("StableDiffusion3Pipeline", sd3_loop, dict(start_scale=14.6146)),
    ("FluxPipeline", flux_loop, dict(t_scale=1.0)),
])
def test_a_flow_mistake_ends_away_from_the_pipeline(cls_name, loop, knobs):
    """final_difference, as compare.TraceReport's: the loop's final latents against the pipeline's loop run on the
    same noise, prompt and guidance (the transformer called again at the pipeline's t)."""
    report = traced(cls_name, loop, **knobs)
    assert report.first_divergence is not None and report.final_difference > 1e-3, str(report)


def test_the_guidance_line_is_read_back_from_the_loops_own_rows():
    from stepviz.trace.flow_reference import fitted_combination

    u, t = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    line = fitted_combination([u, t], u + 7.0 * (t - u))
    assert (line.uncond, line.text, line.scale) == (0, 1, 7.0)
    swapped = fitted_combination([t, u], u + 7.0 * (t - u))  # FLUX.1's true CFG calls the prompt first
    assert (swapped.uncond, swapped.text, swapped.scale) == (1, 0, 7.0)
    assert fitted_combination([u], u).uncond is None
    assert fitted_combination([u, t], u * t) is None  # not a guidance line: no reference, final_difference None


def cause_of(report) -> str:
    assert report.first_divergence is not None and report.first_divergence.cause is not None, str(report)
    return report.first_divergence.cause.id


def test_timesteps_passed_as_sigma():
    report = traced("StableDiffusion3Pipeline", sd3_loop, t_scale=1 / 1000)
    assert cause_of(report) == "flow-timestep-as-sigma" and report.first_divergence.step == 0


def test_flux_given_t_instead_of_t_over_1000():
    assert cause_of(traced("FluxPipeline", flux_loop, t_scale=1.0)) == "flow-timestep-times-1000"


def test_the_shift_not_applied():
    from diffusers import FlowMatchEulerDiscreteScheduler

    report = traced("StableDiffusion3Pipeline", sd3_loop, scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0))
    assert cause_of(report) == "flow-shift-missing" and "shift 3" in str(report.first_divergence.cause)


def test_the_shift_applied_twice():
    pipe = pipe_for("StableDiffusion3Pipeline")
    sigma_min = pipe.scheduler.sigma_min  # the pipeline's even grid runs from 1 to its shifted sigma_min
    already_shifted = [shifted(u, 3.0) for u in np.linspace(1.0, sigma_min, STEPS)]
    report = traced("StableDiffusion3Pipeline", sd3_loop, sigmas=already_shifted)
    assert cause_of(report) == "flow-shift-twice"


def test_decode_without_shift_factor():
    report = traced("StableDiffusion3Pipeline", sd3_loop, shift_factor=False)
    assert cause_of(report) == "flow-decode-shift-factor" and report.first_divergence.quantity == "decode"


def test_init_noise_sigma_on_a_flow_model():
    report = traced("StableDiffusion3Pipeline", sd3_loop, start_scale=14.6146)  # SD's sigma_max: a VP habit
    assert cause_of(report) == "flow-init-noise-sigma" and report.first_divergence.quantity == "starting latents"
