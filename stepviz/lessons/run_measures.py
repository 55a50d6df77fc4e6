"""Claims about how a run is computed rather than what it shows: the latents' size and spread, the guidance the
scheduler was given, the inpaint border, the memory one UNet call needs with each of the course's memory options,
and whether an option changes the picture.

    x_t_std                     x_t on the VP scale, so the families compare
    guidance_gain               eps_hat read back from x_t and x0-hat (what the scheduler stepped with), not the
                                record's own CFG line: a loop that drops or misapplies s fails it
    border_vs_renoised          x_t against E(image) noised by hand to x_t's level with the run's eps
    unet_peak_mb*               one UNet call on the CFG batch at the step (engine/peak_memory.py)
    *_picture_difference        the run replayed with the option, its picture (x_t, decoded) against the run's
"""

from __future__ import annotations

import functools

MEASURES = {
    "x_t_std": "std of x_t on the VP scale once the steps are taken (step 0: x_T)",
    "guidance_gain": "||eps_hat - eps_uncond|| / ||eps_text - eps_uncond|| at the step, eps_hat read back from x_t "
                     "and x0-hat: the guidance scale the scheduler's step was given (1 without guidance)",
    "border_vs_renoised": "mean |x_t - (sqrt(abar) E(image) + sqrt(1 - abar) eps)| over the latent cells the mask "
                          "keeps, abar x_t's noise level and eps the run's starting noise (0: the border is the "
                          "original re-noised with that eps)",
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
    if name in ANY_STEP:
        return ANY_STEP[name](runs, label, taken)
    if taken < 1:
        raise LookupError(f"{name} is measured on a step: use step >= 1")
    if name == "guidance_gain":
        return _guidance_gain(runs, label, taken)
    if name in PEAK_OPTIONS:
        return _peak_mib(stepper, taken, PEAK_OPTIONS[name])
    option = name.removesuffix("_picture_difference")
    return mean_difference(runs.picture(label, "x_t", taken), _replayed_picture(runs, label, taken, option))


def _guidance_gain(runs, label: str, taken: int) -> float:
    """eps_hat = (x_t - sqrt(abar) x0_hat) / sqrt(1 - abar) from the x_t the step started from (VP scale) and the
    x0-hat it produced, then its distance from eps_uncond over eps_text's."""
    record = runs.stepper(label).records[taken - 1]
    if record.family == "flow" or record.prediction_type != "epsilon":
        raise LookupError("guidance_gain reads eps back from a VP or sigma step of an epsilon model")
    abar = 1.0 / (1.0 + record.sigma ** 2)
    x_t = runs.latents(label, "x_t", taken - 1)
    eps_hat = (x_t - abar ** 0.5 * record.pred_original_sample) / (1.0 - abar) ** 0.5
    uncond, text = record.noise_pred_uncond.float(), record.noise_pred_text.float()
    return float((eps_hat.float() - uncond).norm() / (text - uncond).norm())


def _border_vs_renoised(runs, label: str, taken: int) -> float:
    """The blend's own E(image) where the run has one (the 4-channel UNet); the inpainting model's run has none,
    so the input picture is encoded here (the posterior's mean)."""
    stepper = runs.stepper(label)
    inputs = stepper.run_inputs
    if inputs.mask is None or not stepper.records:
        raise LookupError("border_vs_renoised needs an inpaint run that took a step")
    image_latents = inputs.image_latents if inputs.image_latents is not None else _encoded_input(runs, label)
    sigma = stepper.records[taken - 1].sigma_next if taken else stepper.records[0].sigma
    abar = 1.0 / (1.0 + sigma ** 2)
    renoised = abar ** 0.5 * image_latents + (1.0 - abar) ** 0.5 * inputs.noise
    x_t = runs.latents(label, "x_t", taken)
    keep = (inputs.mask < 0.5).expand_as(x_t)
    return float((x_t - renoised).abs()[keep].mean())


def _encoded_input(runs, label: str):
    import torch

    pipe = runs.stepper(label).pipe
    pixels = pipe.image_processor.preprocess(runs.input_picture(label)).to(pipe.device, pipe.vae.dtype)
    with torch.no_grad():
        return pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor


ANY_STEP = {  # measures that hold before the first step too
    "latent_height": lambda runs, label, taken: float(runs.stepper(label).latents.shape[-2]),
    "latent_width": lambda runs, label, taken: float(runs.stepper(label).latents.shape[-1]),
    "x_t_std": lambda runs, label, taken: float(runs.latents(label, "x_t", taken).float().std()),
    "border_vs_renoised": _border_vs_renoised,
}


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
