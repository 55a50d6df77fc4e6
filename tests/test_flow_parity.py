"""The flow family stepped bit for bit: SD3 and FLUX.1 against diffusers' own pipelines, same seed (CPU
generator), max abs difference 0.0 on the final latents, x0-hat on every record."""

from __future__ import annotations

import functools

import pytest
import torch
from tiny import scene_image, square_mask
from tiny_flow import SIZE, tiny_flow_pipeline

from stepviz import Stepper

SEED, STEPS, TOKENS = 3, 4, 16  # T5 tokens: the pipelines' max_sequence_length, kept small


@functools.cache
def pipe_for(cls_name: str, **kwargs):
    return tiny_flow_pipeline(cls_name, **kwargs)


def mode_of(cls_name: str) -> str:
    return "img2img" if "Img2Img" in cls_name else "inpaint" if "Inpaint" in cls_name else "txt2img"


def mode_inputs(mode: str) -> dict:
    if mode == "img2img":
        return dict(image=scene_image(SIZE), strength=0.75)
    if mode == "inpaint":
        return dict(image=scene_image(SIZE), mask_image=square_mask(SIZE), strength=0.75)
    return {}


def reference(pipe, call: dict) -> torch.Tensor:
    latents = pipe(prompt="a red circle", num_inference_steps=STEPS, generator=torch.Generator("cpu").manual_seed(SEED),
                   output_type="latent", height=SIZE, width=SIZE, max_sequence_length=TOKENS, **call).images
    if type(pipe).__name__.startswith("Flux"):  # FLUX.1 returns packed tokens
        latents = pipe._unpack_latents(latents, SIZE, SIZE, pipe.vae_scale_factor)
    return latents


def stepped(pipe, call: dict, **extra) -> Stepper:
    st = Stepper(pipe, prompt="a red circle", seed=SEED, num_inference_steps=STEPS, height=SIZE, width=SIZE,
                 mode=mode_of(type(pipe).__name__), max_sequence_length=TOKENS, **call, **extra)
    st.run()
    return st


CASES = [
    ("StableDiffusion3Pipeline", {}, dict(guidance_scale=7.0)),
    ("StableDiffusion3Pipeline", {}, dict(guidance_scale=1.0)),  # no CFG: the prompt's call alone
    ("StableDiffusion3Pipeline", {"t5": False}, dict(guidance_scale=5.0)),  # text_encoder_3=None
    ("FluxPipeline", {}, dict(guidance_scale=3.5)),  # guidance embedded: one call per step
    ("FluxPipeline", {}, dict(guidance_scale=3.5, true_cfg_scale=4.0, negative_prompt="blurry")),  # two calls
    ("FluxPipeline", {"guidance_embeds": False}, dict(true_cfg_scale=2.0, negative_prompt="")),  # schnell-like
    ("StableDiffusion3Img2ImgPipeline", {}, dict(guidance_scale=7.0)),
    ("StableDiffusion3InpaintPipeline", {}, dict(guidance_scale=7.0)),
    ("StableDiffusion3InpaintPipeline", {"inpainting": True}, dict(guidance_scale=7.0)),  # 33 channels
    ("StableDiffusion3InpaintPipeline", {"inpainting": True}, dict(guidance_scale=1.0)),  # 33, no CFG
    ("FluxImg2ImgPipeline", {}, dict(guidance_scale=3.5, true_cfg_scale=3.0, negative_prompt="blurry")),
    ("FluxInpaintPipeline", {}, dict(guidance_scale=3.5)),
]


@pytest.mark.parametrize(("cls_name", "build", "call"), CASES,
                         ids=[f"{c}-{'-'.join(map(str, b.values())) or 'default'}-{'-'.join(k for k in a)}"
                              for c, b, a in CASES])
def test_flow_pipelines_bit_exact(cls_name, build, call):
    pipe = pipe_for(cls_name, **build)
    call = {**call, **mode_inputs(mode_of(cls_name))}
    st = stepped(pipe, call)
    assert (st.latents - reference(pipe, call)).abs().max().item() == 0.0
    assert all(r.pred_original_sample is not None and r.family == "flow" for r in st.records)
    assert all(r.pred_original_sample.shape == st.latents.shape for r in st.records)
    # x0-hat = x_t - sigma v_hat, and 1 - sigma beside sigma
    first = st.records[0]
    x_t = st._snapshots[0].latents
    torch.testing.assert_close(first.pred_original_sample, x_t - first.sigma * first.noise_pred, rtol=0, atol=0)
    assert first.alpha_cumprod == pytest.approx(1.0 - first.sigma)


@pytest.mark.parametrize("inpainting", [False, True], ids=["16-channels", "33-channels"])
def test_sd3_strength_one_inpaint_starts_from_noise(inpainting):
    pipe = pipe_for("StableDiffusion3InpaintPipeline", inpainting=inpainting)
    call = dict(guidance_scale=7.0, image=scene_image(SIZE), mask_image=square_mask(SIZE), strength=1.0)
    st = stepped(pipe, call)
    assert len(st.records) == STEPS
    assert (st.latents - reference(pipe, call)).abs().max().item() == 0.0
    assert st.run_inputs.image_latents is None if inpainting else st.run_inputs.image_latents is not None


def test_sd3_inpainting_transformer_gets_the_mask_and_no_blend():
    """33 channels: [x_t, m, E(masked image)] each step, as SD's 9-channel UNet; the blend is not made."""
    pipe = pipe_for("StableDiffusion3InpaintPipeline", inpainting=True)
    st = stepped(pipe, dict(guidance_scale=7.0, image=scene_image(SIZE), mask_image=square_mask(SIZE),
                            strength=0.75))
    assert list(st.extra_channels) == ["mask", "masked_image_latents"]
    assert st.extra_channels["masked_image_latents"].shape == st.latents.shape
    for record in st.records:
        assert record.background is None and record.latents_before_blend is None
        assert record.mask is not None and record.masked_image_latents is not None
        assert record.pred_original_sample is not None
    # the 16-channel model blends, and says nothing of extra channels
    plain = stepped(pipe_for("StableDiffusion3InpaintPipeline"),
                    dict(guidance_scale=7.0, image=scene_image(SIZE), mask_image=square_mask(SIZE), strength=0.75))
    assert plain.extra_channels == {} and plain.records[0].background is not None


def flow_solver(name: str, **config):
    import diffusers

    return getattr(diffusers, name)(prediction_type="flow_prediction", use_flow_sigmas=True, **config)


@pytest.mark.parametrize("solver", ["DPMSolverMultistepScheduler", "UniPCMultistepScheduler"])
def test_sd3_with_a_flow_solver_bit_exact(solver):
    pipe = tiny_flow_pipeline("StableDiffusion3Pipeline", scheduler=flow_solver(solver, flow_shift=3.0))
    st = stepped(pipe, dict(guidance_scale=7.0))
    assert st.records[0].scheduler == {"DPMSolverMultistepScheduler": "flow_dpmpp_2m",
                                       "UniPCMultistepScheduler": "flow_unipc"}[solver]
    assert (st.latents - reference(pipe, dict(guidance_scale=7.0))).abs().max().item() == 0.0


def test_flux_with_dynamic_dpm_solver_bit_exact():
    pipe = tiny_flow_pipeline("FluxPipeline", scheduler=flow_solver("DPMSolverMultistepScheduler",
                                                                     use_dynamic_shifting=True))
    st = stepped(pipe, dict(guidance_scale=3.5))
    assert st.records[0].mu is not None
    assert (st.latents - reference(pipe, dict(guidance_scale=3.5))).abs().max().item() == 0.0


def test_records_carry_shift_and_mu():
    sd3 = stepped(pipe_for("StableDiffusion3Pipeline"), dict(guidance_scale=7.0))
    assert sd3.records[0].shift == 3.0 and sd3.records[0].mu is None
    flux = stepped(pipe_for("FluxPipeline"), dict(guidance_scale=3.5))
    record = flux.records[0]
    assert record.shift is None
    # diffusers' calculate_shift at 16 image tokens: 0.5 + (16 - 256) * (1.15 - 0.5) / (4096 - 256)
    assert record.mu == pytest.approx(0.5 + (16 - 256) * 0.65 / 3840)
    assert record.sigma == 1.0 and record.sigma_next < 1.0
    assert flux.records[-1].sigma_next == 0.0
