"""What each mode prepares before the loop: timesteps, the starting latents x_T, and the extra inputs.

The random draws happen in exactly the order diffusers' matching pipeline makes them
(VAE posterior samples, then the starting noise), so the same seed gives the same bits.

    txt2img    x_T = eps * init_noise_sigma
               (eps given: diffusers' `latents=`; an img2img image with the VAE's latent channels is E(image))
    img2img    x_T = add_noise(E(image), eps, t_start)        t_start from strength
    inpaint    4-channel UNet: DIY blend each step with add_noise(E(image), eps, t_next)
               9-channel UNet: mask and E(masked image) concatenated to the model input
    depth2img  x_T as img2img; the depth map (estimated or given), at latent size in [-1, 1],
               concatenated to the model input (5-channel UNet)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import (StepvizInputError, check_mode_name, check_strength_leaves_a_step, check_timesteps_trained,
                     load_image)
from .families import is_sdxl
from .vae import vae_upcast


@dataclass
class PreparedRun:
    latents: torch.Tensor
    timesteps: torch.Tensor  # what the loop iterates, from the begin index on
    begin_index: int
    height: int
    width: int
    image_latents: torch.Tensor | None = None  # E(image) * scaling_factor
    noise: torch.Tensor | None = None  # the eps drawn for x_T (the DIY blend re-noises with it)
    mask: torch.Tensor | None = None  # [1, 1, h, w] at latent size, 1 = repaint
    masked_image_latents: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    notice: str | None = None  # something the user should know about the inputs as prepared
    strength: float | None = None  # the strength the run uses (the pipeline's default when none was given)


# diffusers' pipelines' defaults: StableDiffusion(Img2Img|Inpaint) 0.8 / 1.0, StableDiffusionXL(...) 0.3 / 0.9999
DEFAULT_STRENGTH = {("img2img", False): 0.8, ("inpaint", False): 1.0, ("depth2img", False): 0.8,
                    ("img2img", True): 0.3, ("inpaint", True): 0.9999}


def default_strength(pipe, mode: str) -> float:
    return DEFAULT_STRENGTH[mode, is_sdxl(pipe)]


def _encode_image(pipe, pixels: torch.Tensor, generator) -> torch.Tensor:
    """E(x) = a sample of the VAE posterior, times the model's scaling factor.

    SDXL's pipelines encode in float32 when the VAE says `force_upcast` (its fp16 overflows), and so does this.
    """
    dtype = pixels.dtype
    with vae_upcast(pipe) as upcast:
        posterior = pipe.vae.encode(pixels.float() if upcast else pixels).latent_dist
        latents = posterior.sample(generator)
    return pipe.vae.config.scaling_factor * latents.to(dtype)


def _noised_image(pipe, scheduler, pixels, timesteps, dtype, device, generator, noise=None):
    """img2img's start: E(image), then eps, then x_T = add_noise(E(image), eps, t_start) (in that draw order).

    Pixels with the VAE's latent channels are E(image) already, as diffusers' img2img takes them.
    """
    from diffusers.utils.torch_utils import randn_tensor

    pixels = pixels.to(device=device, dtype=dtype)
    latent = pixels.shape[1] == pipe.vae.config.latent_channels
    image_latents = pixels if latent else _encode_image(pipe, pixels, generator)
    if noise is None:
        noise = randn_tensor(image_latents.shape, generator=generator, device=device, dtype=dtype)
    return image_latents, noise, scheduler.add_noise(image_latents, noise, timesteps[:1])


def _strength_timesteps(scheduler, num_inference_steps: int, strength: float):
    """Skip the first (1 - strength) of the schedule, as diffusers' img2img get_timesteps does."""
    init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
    t_start = max(num_inference_steps - init_timestep, 0)
    begin = t_start * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    check_strength_leaves_a_step(strength, num_inference_steps)
    return scheduler.timesteps[begin:], begin


def prepare(pipe, scheduler, mode: str, *, num_inference_steps: int, height, width, dtype, device,
            generator, image=None, mask_image=None, strength=None, depth_map=None, noise=None) -> PreparedRun:
    from diffusers.image_processor import VaeImageProcessor
    from diffusers.utils.torch_utils import randn_tensor

    scale = pipe.vae_scale_factor
    channels = pipe.vae.config.latent_channels
    scheduler.set_timesteps(num_inference_steps, device=device)
    check_timesteps_trained(scheduler.timesteps, num_inference_steps, scheduler.config)

    if mode == "txt2img":
        height = height or pipe.unet.config.sample_size * scale
        width = width or pipe.unet.config.sample_size * scale
        shape = (1, pipe.unet.config.in_channels, height // scale, width // scale)
        if noise is None:
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            height, width = noise.shape[-2] * scale, noise.shape[-1] * scale
        latents = noise * scheduler.init_noise_sigma
        return PreparedRun(latents, scheduler.timesteps, 0, height, width, noise=noise)

    if mode == "img2img":
        strength = default_strength(pipe, mode) if strength is None else strength
        pixels = pipe.image_processor.preprocess(load_image("image", image, mode), height=height, width=width)
        height, width = pixels.shape[-2:]
        if pixels.shape[1] == channels:  # latents: the picture is vae_scale_factor times larger
            height, width = height * scale, width * scale
        timesteps, begin = _strength_timesteps(scheduler, num_inference_steps, strength)
        image_latents, noise, latents = _noised_image(pipe, scheduler, pixels, timesteps, dtype, device, generator,
                                                      noise)
        return PreparedRun(latents, timesteps, begin, height, width, image_latents=image_latents, noise=noise,
                           strength=strength)

    if mode == "inpaint":
        strength = default_strength(pipe, mode) if strength is None else strength
        height = height or pipe.unet.config.sample_size * scale
        width = width or pipe.unet.config.sample_size * scale
        timesteps, begin = _strength_timesteps(scheduler, num_inference_steps, strength)
        pixels = pipe.image_processor.preprocess(load_image("image", image, mode), height=height, width=width)
        pixels = pixels.to(dtype=torch.float32)
        mask_processor = VaeImageProcessor(
            vae_scale_factor=scale, do_normalize=False, do_binarize=True, do_convert_grayscale=True
        )
        mask_pixels = mask_processor.preprocess(load_image("mask_image", mask_image, mode), height=height, width=width)
        shape = (1, channels, height // scale, width // scale)
        # 1. the original's latents (4-channel UNet only), then the starting noise
        image_latents = None
        if pipe.unet.config.in_channels == 4 or strength < 1.0:
            # contiguous like diffusers' .repeat(): the blend's memory layout decides the UNet's bits
            image_latents = _encode_image(pipe, pixels.to(device=device, dtype=dtype), generator).contiguous()
        noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        if strength == 1.0:
            latents = noise * scheduler.init_noise_sigma
        else:
            latents = scheduler.add_noise(image_latents, noise, timesteps[:1])
        # 2. the mask at latent size and the masked image's latents (drawn even for 4 channels, like diffusers)
        mask = torch.nn.functional.interpolate(mask_pixels, size=(height // scale, width // scale))
        mask = mask.to(device=device, dtype=dtype)
        masked_pixels = (pixels * (mask_pixels < 0.5)).to(device=device, dtype=dtype)
        masked_image_latents = _encode_image(pipe, masked_pixels, generator).to(device=device, dtype=dtype)
        return PreparedRun(latents, timesteps, begin, height, width, image_latents=image_latents, noise=noise,
                           mask=mask, masked_image_latents=masked_image_latents, strength=strength)

    if mode == "depth2img":
        strength = 0.8 if strength is None else strength  # StableDiffusionDepth2ImgPipeline's default
        picture = load_image("image", image, mode)
        depth, notice = _depth_at_latent_size(pipe, picture, depth_map, dtype, device)
        pixels = pipe.image_processor.preprocess(picture)
        height, width = pixels.shape[-2:]
        timesteps, begin = _strength_timesteps(scheduler, num_inference_steps, strength)
        image_latents, noise, latents = _noised_image(pipe, scheduler, pixels, timesteps, dtype, device, generator)
        return PreparedRun(latents, timesteps, begin, height, width, image_latents=image_latents, noise=noise,
                           depth=depth, notice=notice, strength=strength)

    check_mode_name(mode)  # raises: a mode without a branch above is not one of MODES
    raise AssertionError(f"mode {mode!r} is in MODES but has no preparation")


UNIFORM_DEPTH_NOTICE = ("the depth map has one value everywhere, so it says nothing about depth: it is used as a "
                        "flat map (0 at every point) instead of being scaled to [-1, 1]")


def _depth_at_latent_size(pipe, picture, depth_map, dtype, device) -> tuple[torch.Tensor, str | None]:
    """The depth map [1, 1, h, w] at latent size, scaled to [-1, 1] (near = high), as Depth2Img does;
    a uniform map (which Depth2Img would turn into NaN) becomes a flat 0 map, with a notice saying so."""
    import contextlib

    if hasattr(picture, "size") and not hasattr(picture, "shape"):
        width, height = picture.size
    else:
        height, width = picture.shape[-2:]
    if depth_map is None:
        if getattr(pipe, "depth_estimator", None) is None:
            raise StepvizInputError("mode='depth2img' needs depth_map= or a pipeline with a depth estimator")
        pixel_values = pipe.feature_extractor(images=[picture], return_tensors="pt").pixel_values
        pixel_values = pixel_values.to(device=device, dtype=dtype)
        # diffusers runs the estimator under autocast (its batch norms dislike fp16); autocast only acts on
        # half types, so in float32 it is skipped here rather than entered and disabled with a warning
        half = dtype in (torch.float16, torch.bfloat16) and not torch.backends.mps.is_available()
        autocast = torch.autocast(torch.device(device).type, dtype=dtype) if half else contextlib.nullcontext()
        with autocast:
            depth_map = pipe.depth_estimator(pixel_values).predicted_depth
    else:
        depth_map = torch.as_tensor(depth_map)
        depth_map = (depth_map[None] if depth_map.ndim == 2 else depth_map).to(device=device, dtype=dtype)
    scale = pipe.vae_scale_factor
    depth = torch.nn.functional.interpolate(depth_map.unsqueeze(1), size=(height // scale, width // scale),
                                            mode="bicubic", align_corners=False)
    low = torch.amin(depth, dim=[1, 2, 3], keepdim=True)
    high = torch.amax(depth, dim=[1, 2, 3], keepdim=True)
    if not bool((high > low).all()):  # one value everywhere: 0/0 in the scaling below
        return torch.zeros_like(depth).to(dtype), UNIFORM_DEPTH_NOTICE
    return (2.0 * (depth - low) / (high - low) - 1.0).to(dtype), None
