"""What each mode prepares for a flow run (SD3, FLUX.1): timesteps, x_T, and the inpaint inputs.

The random draws happen in the order diffusers' StableDiffusion3(Img2Img|Inpaint)Pipeline and
Flux(Img2Img|Inpaint)Pipeline make them, so the same seed gives the same bits.

    txt2img    x_T = eps                                   (no init_noise_sigma in the flow family)
    img2img    x_T = (1 - sigma_start) E(image) + sigma_start eps        scheduler.scale_noise
    inpaint    as img2img (SD3 at strength 1: x_T = eps); each step re-noises E(image) to the next sigma and
               keeps it outside the mask: x = m x + (1 - m) scale_noise(E(image), t_next, eps)
               SD3 inpainting transformer (33 input channels): no blend; [x_t, m, E(masked image)] is its input
               at every step, 16 + 1 + 16 channels, and E(image) is encoded only when strength < 1

E(image) = (z - shift_factor) * scaling_factor, z a sample of the VAE posterior. FLUX.1's latents are packed 2x2
into tokens for its transformer (flow_layout.py); the run keeps them unpacked [1, 16, h, w] like SD's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import checks, flow_schedule, schedulers
from .checks import load_image
from .modes import PreparedRun

FLOW_MODES = ("txt2img", "img2img", "inpaint")
# the pipelines' default strengths, diffusers 0.42: StableDiffusion3(Img2Img|Inpaint) and Flux(Img2Img|Inpaint)
FLOW_DEFAULT_STRENGTH = 0.6


@dataclass
class FlowRun(PreparedRun):
    mu: float | None = None  # the dynamic shift's exponent (FLUX.1), None for a fixed shift
    image_seq_len: int = 0  # the image's token count, which mu is computed from


def check_flow_run(pipe, model_family: str, *, height, width, steps, strength, seed, mode, image, mask_image,
                   depth_map, inpaint_noise, given_embeds: bool) -> None:
    """What a flow run (SD3, FLUX.1) refuses before anything is computed, each in one line."""
    checks.check_size("height", height)
    checks.check_size("width", width)
    checks.check_steps(steps)
    checks.check_strength(strength)
    checks.check_seed(seed)
    checks.check_choice("mode", mode, FLOW_MODES, f"modes of {model_family}")
    checks.check_mode_inputs(mode, image=image, mask_image=mask_image, strength=strength, depth_map=depth_map)
    if given_embeds:
        raise checks.StepvizInputError(f"prompt_embeds are not supported for {model_family} yet: give the prompt "
                                       "as text")
    if inpaint_noise != "fixed":
        raise checks.StepvizInputError(f"inpaint_noise={inpaint_noise!r} is not allowed for {model_family}: its "
                                       "pipelines re-noise with the noise drawn once ('fixed')")
    in_channels = pipe.transformer.config.in_channels
    latent_channels = pipe.vae.config.latent_channels
    if inpainting_transformer(pipe, model_family):
        if mode != "inpaint":
            raise checks.StepvizInputError(f"mode={mode!r} needs a transformer with {latent_channels} input channels, "
                                           f"but this {model_family} transformer takes {in_channels} (an inpainting "
                                           "model: latents, mask and masked image); modes that fit it: inpaint")
    elif in_channels // (4 if model_family == "FLUX.1" else 1) != latent_channels:  # FLUX.1: 2x2 packs
        allowed = f"{latent_channels} (or {2 * latent_channels + 1} for inpaint)" if model_family == "SD3" else \
            f"{4 * latent_channels} (its 2x2-packed latents)"
        raise checks.StepvizInputError(f"a transformer with {in_channels} input channels (a control or fill model) "
                                       f"cannot be stepped yet: {model_family} takes {allowed}")


def inpainting_transformer(pipe, model_family: str) -> bool:
    """An SD3 inpainting transformer: x_t, the mask and E(masked image) side by side, 16 + 1 + 16 = 33 channels
    (StableDiffusion3InpaintPipeline's num_channels_transformer == 33)."""
    return model_family == "SD3" and \
        pipe.transformer.config.in_channels == 2 * pipe.vae.config.latent_channels + 1


def scheduler_for(pipe, scheduler, model_family: str):
    """A flow run's scheduler. None: a copy of the pipeline's own; a flow name: made from its config; an instance:
    as given."""
    if scheduler is None:
        return schedulers.copy_of(pipe.scheduler)
    if isinstance(scheduler, str):
        schedulers.check_scheduler_name(scheduler)
        check_flow_family(scheduler, model_family)
        return flow_schedule.make_flow_scheduler(scheduler, pipe.scheduler.config)
    checks.check_scheduler_argument(scheduler, flow_schedule.FLOW_VARIANTS)
    return scheduler


def check_flow_family(name: str, model_family: str) -> None:
    """A VP/sigma scheduler cannot step a flow model: refused in one line that says why."""
    family = schedulers.ALL_SCHEDULERS[name].family
    if family != "flow":
        raise checks.StepvizInputError(
            f"scheduler {name!r} ({family} family) cannot run {model_family}: a flow model predicts "
            "v = eps - x0 on the straight path x_t = (1 - sigma) x0 + sigma eps, a different target and path; "
            f"use a flow scheduler: {', '.join(flow_schedule.FLOW_VARIANTS)}")


def vae_encode(pipe, pixels: torch.Tensor, generator) -> torch.Tensor:
    """E(x) = (z - shift_factor) * scaling_factor, z a sample of the VAE posterior (one generator draw)."""
    z = pipe.vae.encode(pixels).latent_dist.sample(generator)
    return (z - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor


def noised(scheduler, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
    """x_t = (1 - sigma) x0 + sigma eps at timestep t: FlowMatch's scale_noise, or the same line for a solver
    without one (diffusers' img2img pipelines would fail there), at the scheduler's current index."""
    if hasattr(scheduler, "scale_noise"):
        return scheduler.scale_noise(x0, t, noise)
    index = scheduler.step_index if scheduler.step_index is not None else (scheduler.begin_index or 0)
    sigma = scheduler.sigmas[index].to(device=x0.device, dtype=x0.dtype)
    return sigma * noise + (1.0 - sigma) * x0


def _processors(pipe, flux: bool):
    from diffusers.image_processor import VaeImageProcessor

    scale = pipe.vae_scale_factor * (2 if flux else 1)  # FLUX.1 packs 2x2: sizes divisible by twice the VAE's
    channels = pipe.vae.config.latent_channels
    image = VaeImageProcessor(vae_scale_factor=scale, vae_latent_channels=channels)
    mask = VaeImageProcessor(vae_scale_factor=scale, vae_latent_channels=channels, do_normalize=False,
                             do_binarize=True, do_convert_grayscale=True)
    return image, mask


def latent_size(pipe, height: int, width: int, flux: bool) -> tuple[int, int]:
    """The latents' h, w: FLUX.1 rounds to an even size (2x2 packing)."""
    scale = pipe.vae_scale_factor
    if flux:
        return 2 * (int(height) // (scale * 2)), 2 * (int(width) // (scale * 2))
    return int(height) // scale, int(width) // scale


def default_size(pipe, flux: bool) -> int:
    """The pipeline's default picture size: SD3 transformer.config.sample_size, FLUX.1 128, times the VAE's scale."""
    return (128 if flux else pipe.transformer.config.sample_size) * pipe.vae_scale_factor


def prepare(pipe, scheduler, mode: str, *, flux: bool, num_inference_steps: int, height, width, dtype, device,
            generator, image=None, mask_image=None, strength=None, noise=None) -> FlowRun:
    from diffusers.utils.torch_utils import randn_tensor

    height = height or default_size(pipe, flux)
    width = width or default_size(pipe, flux)
    h, w = latent_size(pipe, height, width, flux)
    channels = pipe.vae.config.latent_channels
    patch = 2 if flux else pipe.transformer.config.patch_size
    image_seq_len = (h // patch) * (w // patch)
    mu = flow_schedule.set_timesteps(scheduler, num_inference_steps, device, flux=flux, image_seq_len=image_seq_len,
                                     txt2img=mode == "txt2img")
    shape = (1, channels, h, w)

    if mode == "txt2img":
        if noise is None:
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            noise = noise.to(device=device, dtype=dtype)
            height, width = noise.shape[-2] * pipe.vae_scale_factor, noise.shape[-1] * pipe.vae_scale_factor
        if flux:
            scheduler.set_begin_index(0)  # FluxPipeline does
        return FlowRun(noise, scheduler.timesteps, 0, height, width, noise=noise, mu=mu, image_seq_len=image_seq_len)

    strength = FLOW_DEFAULT_STRENGTH if strength is None else strength
    timesteps, begin = flow_schedule.strength_timesteps(scheduler, num_inference_steps, strength)
    t_start = timesteps[:1].repeat(1)
    image_processor, mask_processor = _processors(pipe, flux)
    pixels = image_processor.preprocess(load_image("image", image, mode), height=height, width=width)

    if mode == "img2img":
        pixels = pixels.to(device=device, dtype=dtype)
        latent = pixels.shape[1] == channels
        image_latents = pixels if latent else vae_encode(pipe, pixels, generator)
        noise = randn_tensor(image_latents.shape, generator=generator, device=device, dtype=dtype)
        latents = noised(scheduler, image_latents, noise, t_start).to(device=device, dtype=dtype)
        return FlowRun(latents, timesteps, begin, height, width, image_latents=image_latents, noise=noise,
                       strength=strength, mu=mu, image_seq_len=image_seq_len)

    # inpaint: E(image), then eps, then the mask and E(masked image), in the pipelines' order; an inpainting
    # transformer needs E(image) only to start below pure noise (strength < 1), and draws it only then
    pixels = pixels.to(dtype=torch.float32)
    image_latents = None
    if not inpainting_transformer(pipe, "FLUX.1" if flux else "SD3") or strength < 1.0:
        image_latents = vae_encode(pipe, pixels.to(device=device, dtype=dtype), generator)
    noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    if strength == 1.0 and not flux:  # SD3 starts from pure noise at strength 1; FLUX.1 always re-noises
        latents = noise
    else:
        latents = noised(scheduler, image_latents, noise, t_start)
    mask_pixels = mask_processor.preprocess(load_image("mask_image", mask_image, mode), height=height, width=width)
    mask = torch.nn.functional.interpolate(mask_pixels, size=(h, w)).to(device=device, dtype=dtype)
    masked_pixels = (pixels * (mask_pixels < 0.5)).to(device=device, dtype=dtype)
    masked_image_latents = vae_encode(pipe, masked_pixels, generator).to(device=device, dtype=dtype)
    return FlowRun(latents, timesteps, begin, height, width, image_latents=image_latents, noise=noise, mask=mask,
                   masked_image_latents=masked_image_latents, strength=strength, mu=mu, image_seq_len=image_seq_len)
