"""Claims about how a run is computed rather than what it shows: the latents' size, the memory one UNet call
needs with each of the course's memory options, and whether an option changes the picture.

    unet_peak_mb*               one UNet call on the CFG batch at the step (engine/peak_memory.py)
    *_picture_difference        the run replayed with the option, its picture (x_t, decoded) against the run's
"""

from __future__ import annotations

import functools

MEASURES = {
    "latent_height": "rows of the latents the loop carries (the picture's height / the VAE's factor)",
    "latent_width": "columns of the latents the loop carries (the picture's width / the VAE's factor)",
    "unet_peak_mb": "MiB of tensors one UNet call of the step holds at its peak, attention as the pipeline runs it "
                    "(torch's scaled_dot_product_attention)",
    "unet_peak_mb_full_attention": "the same with the whole attention score matrix held (diffusers' AttnProcessor)",
    "unet_peak_mb_sliced": "the same with attention slicing (pipe.enable_attention_slicing())",
    "unet_peak_mb_fp16": "the same with the UNet in float16",
    "sliced_picture_difference": "mean |pixel difference| (0..255) of x_t from the run replayed with attention slicing",
    "fp16_picture_difference": "mean |pixel difference| (0..255) of x_t from the run replayed in float16",
}
PEAK_OPTIONS = {"unet_peak_mb": "sdpa", "unet_peak_mb_full_attention": "full", "unet_peak_mb_sliced": "sliced",
                "unet_peak_mb_fp16": "fp16"}


def measure(name: str, runs, label: str, taken: int, mean_difference) -> float:
    """The value of one of MEASURES for the run `label` once `taken` steps are taken; `mean_difference(a, b)`
    compares two pictures as every picture claim does (check.py's)."""
    stepper = runs.stepper(label)
    if name == "latent_height":
        return float(stepper.latents.shape[-2])
    if name == "latent_width":
        return float(stepper.latents.shape[-1])
    if taken < 1:
        raise LookupError(f"{name} is measured on a step: use step >= 1")
    if name in PEAK_OPTIONS:
        return _peak_mib(stepper, taken, PEAK_OPTIONS[name])
    option = name.removesuffix("_picture_difference")
    return mean_difference(runs.picture(label, "x_t", taken), _replayed_picture(runs, label, taken, option))


def _peak_mib(stepper, taken: int, option: str) -> float:
    """One UNet call as step `taken` made it: the state before the step (the memory does not depend on its
    values, so it is not scaled), t and the prompts."""
    import torch

    from ..engine.peak_memory import unet_call

    before = stepper.records[taken - 2].latents if taken > 1 else stepper.run_inputs.latents
    t = stepper.timesteps[taken - 1]
    peak, _ = unet_call(stepper.pipe.unet, torch.cat([before] * 2), t, stepper.prompt_embeds, option)
    return peak / 2**20


def _replayed_picture(runs, label: str, taken: int, option: str):
    """x_t after `taken` steps of the run replayed with attention slicing (`sliced`) or in float16 (`fp16`)."""
    from ..engine.noise_scale import to_vp_scale
    from ..engine.peak_memory import attention_as
    from ..render.preview import decode_images

    settings = runs.settings_of(label).with_overrides(capture_attention=False)
    edits = [e for e in settings.events if e.set_guidance_scale is not None or e.set_scheduler is not None]
    if edits or settings.mode != "txt2img":
        raise LookupError(f"{option}_picture_difference replays a txt2img run without edits")
    pipe = runs.stepper(label).pipe
    if option == "fp16":
        pipe = _float16_pipeline(str(settings.model))
        stepper = settings.make_stepper(pipe)
        for _ in range(taken):
            stepper.step()
    else:
        with attention_as(pipe.unet, "sliced"):
            stepper = settings.make_stepper(pipe)
            for _ in range(taken):
                stepper.step()
    record = stepper.records[-1]
    latents = to_vp_scale(record.latents, record.family, record.sigma_next)
    return decode_images(pipe, latents)[0]


@functools.cache
def _float16_pipeline(model: str):
    from ..models import load_pipeline

    return load_pipeline(model, dtype="float16")
