"""Latents -> pictures, three ways (pure functions; no UI).

    channels   the 4 latent channels as grey tiles (2 x 2), range [-3, 3] -> [0, 255]
    approx     the model's tiny preview decoder when its folder ships one (diffusers' AutoencoderTiny, as
               TAESD), else linear latent-to-RGB: rgb = x @ F + b, from [-1, 1] to [0, 255]  (~free)
    full       the VAE decoder: D(x / scaling_factor)

Sigma-family latents (x = x0 + sigma eps) are first brought to the VP scale by dividing by
sqrt(sigma^2 + 1), so pictures of x_t look alike whichever scheduler made them.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from ..engine.checks import check_choice
from ..engine.noise_scale import to_vp_scale
from ..engine.pipeline_facts import NOT_LOOKED_UP, facts_of
from ..engine.sdxl import is_sdxl
from ..models.folder_check import pipeline_part
from . import PREVIEW_KINDS


# Linear latent-to-RGB factors for SD 1.x/2.x latents (after scaling_factor), rows = latent channels.
# Source: the public factors in ComfyUI's comfy/latent_formats.py (class SD15), also used by AUTOMATIC1111.
SD_LATENT_RGB_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
# The same for SDXL's VAE (its latents differ), with a bias; same source (class SDXL).
SDXL_LATENT_RGB_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_LATENT_RGB_BIAS = (0.1084, -0.0175, -0.0011)
LATENT_RGB_FILE = "latent_rgb.json"
PREVIEW_DECODER_DIR = "preview_decoder"  # a tiny decoder in diffusers' AutoencoderTiny format, used when present


def latent_rgb_factors(pipe) -> tuple[torch.Tensor, torch.Tensor]:
    """(factors [C, 3], bias [3]) for this pipeline: the model's own file if it ships one, else SDXL's or SD's."""
    facts = facts_of(pipe)
    if facts.latent_rgb is not NOT_LOOKED_UP:
        return facts.latent_rgb
    path = pipeline_part(pipe, LATENT_RGB_FILE)
    if path is not None and path.is_file():
        data = json.loads(path.read_text())
        factors, bias = torch.tensor(data["factors"]), torch.tensor(data.get("bias", [0.0, 0.0, 0.0]))
    elif is_sdxl(pipe):
        factors, bias = torch.tensor(SDXL_LATENT_RGB_FACTORS), torch.tensor(SDXL_LATENT_RGB_BIAS)
    else:
        factors, bias = torch.tensor(SD_LATENT_RGB_FACTORS), torch.zeros(3)
    facts.latent_rgb = (factors, bias)
    return factors, bias


def preview_decoder(pipe):
    """The model folder's tiny preview decoder (an AutoencoderTiny, safetensors), or None when it ships none."""
    facts = facts_of(pipe)
    if facts.preview_decoder is not NOT_LOOKED_UP:
        return facts.preview_decoder
    path = pipeline_part(pipe, PREVIEW_DECODER_DIR)
    decoder = None
    if path is not None and (path / "config.json").is_file():
        from diffusers import AutoencoderTiny

        decoder = AutoencoderTiny.from_pretrained(str(path), use_safetensors=True).eval()
    facts.preview_decoder = decoder
    return decoder


def _to_uint8(values: torch.Tensor, low: float, high: float) -> np.ndarray:
    scaled = (values.float().clamp(low, high) - low) * (255.0 / (high - low))
    return scaled.round().to(torch.uint8).cpu().numpy()


def channels_image(latents: torch.Tensor, scale: int = 8) -> Image.Image:
    """The latent channels as grey tiles in a grid (2 x 2 for 4 channels), each upscaled `scale` times."""
    x = latents[0]
    tiles = _to_uint8(x, -3.0, 3.0)
    c, h, w = tiles.shape
    cols = 2 if c == 4 else c
    rows = (c + cols - 1) // cols
    grid = np.full((rows * h + rows - 1, cols * w + cols - 1), 64, dtype=np.uint8)
    for i in range(c):
        r, q = divmod(i, cols)
        grid[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = tiles[i]
    image = Image.fromarray(grid, mode="L").convert("RGB")
    return image.resize((image.width * scale // 2, image.height * scale // 2), Image.NEAREST)


def approx_rgb_image(latents: torch.Tensor, factors: torch.Tensor, bias: torch.Tensor, scale: int = 8) -> Image.Image:
    """rgb = x @ F + b (one small matrix product), upscaled `scale` times."""
    x = latents[0].float()
    rgb = torch.einsum("chw,cr->hwr", x, factors.to(x.device)) + bias.to(x.device)
    image = Image.fromarray(_to_uint8(rgb, -1.0, 1.0), mode="RGB")
    return image.resize((image.width * scale, image.height * scale), Image.BILINEAR)


# A full decode by SD's VAE (83.7M parameters) at 512 x 512 took about 50 s on 2 CPU cores (issue 19's
# measurement); the time grows with the pixels and the decoder's size. Slower than this per picture: say so.
SLOW_DECODE_SECONDS = 2.0
SD_VAE_CPU_SECONDS_512 = 50.0
SD_VAE_PARAMETERS = 83.7e6


def decode_seconds(pipe, height: int, width: int) -> tuple[float, bool]:
    """(seconds per full decode at height x width, measured?): the last decode's time, else a CPU estimate."""
    measured = facts_of(pipe).decode_seconds  # (seconds per picture, pixels)
    if measured is not None:
        seconds, pixels = measured
        return seconds * (height * width) / pixels, True
    if pipe.vae.device.type != "cpu":
        return 0.0, False
    size = sum(p.numel() for p in pipe.vae.parameters()) / SD_VAE_PARAMETERS
    return SD_VAE_CPU_SECONDS_512 * size * (height * width) / (512 * 512), False


def slow_preview_notice(pipe, height: int, width: int, instead: str = "the approx preview is instant") -> str | None:
    """One line when full previews will be slow on this machine, with what to do about it; else None."""
    seconds, measured = decode_seconds(pipe, height, width)
    if seconds < SLOW_DECODE_SECONDS:
        return None
    how = "measured" if measured else "estimated"
    tiling = "" if getattr(pipe.vae, "use_tiling", False) else "; --vae-tiling decodes in tiles (less memory)"
    return (f"full previews run the VAE decoder at {width}x{height} on {pipe.vae.device.type}: about "
            f"{seconds:.0f} s per picture ({how}); {instead}{tiling}")


def uint8_pictures(pixels: torch.Tensor) -> np.ndarray:
    """Decoder output N x 3 x H x W in [-1, 1] -> uint8 N x H x W x 3."""
    return ((pixels / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def tiny_decoder_images(latents: torch.Tensor, decoder, scale: int = 8) -> list[Image.Image]:
    """The tiny decoder's pictures of latents [B, C, h, w] (as the UNet sees them), resized to `scale` x (w, h)."""
    x = latents.float() / decoder.config.scaling_factor
    if decoder.device != x.device:  # Module.to() walks every parameter: only when needed
        decoder.to(x.device)
    pixels = uint8_pictures(decoder.decode(x).sample)
    size = (latents.shape[-1] * scale, latents.shape[-2] * scale)
    return [Image.fromarray(p, mode="RGB").resize(size, Image.BILINEAR) for p in pixels]


@torch.no_grad()
def decode_images(pipe, latents: torch.Tensor) -> list[Image.Image]:
    """Full VAE decode of a batch of latents [B, C, h, w] (one decoder call for the batch; one per picture
    with --vae-tiling, which also turns on diffusers' sliced decode). The time taken is kept for the notice."""
    import time

    from ..engine.sdxl import vae_upcast

    vae = pipe.vae
    started = time.perf_counter()
    with vae_upcast(pipe):  # SDXL's fp16 VAE decodes in float32, as its pipeline does
        pixels = vae.decode(latents.to(dtype=vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    facts_of(pipe).decode_seconds = ((time.perf_counter() - started) / len(latents),
                                     pixels.shape[-2] * pixels.shape[-1])
    return [Image.fromarray(a, mode="RGB") for a in uint8_pictures(torch.nan_to_num(pixels.float(), nan=0.0))]


def preview(pipe, latents: torch.Tensor, kind: str, family: str = "vp", sigma: float = 0.0) -> Image.Image:
    """One picture of latents by kind ('full', 'approx' or 'channels')."""
    x = to_vp_scale(latents, family, sigma)
    if kind == "full":
        return decode_images(pipe, x)[0]
    if kind == "approx":
        decoder = preview_decoder(pipe)
        if decoder is not None:
            return tiny_decoder_images(x, decoder)[0]
        return approx_rgb_image(x, *latent_rgb_factors(pipe))
    if kind == "channels":
        return channels_image(x)
    check_choice("kind", kind, PREVIEW_KINDS, "preview kinds")  # raises: no branch above took it
    raise AssertionError(f"preview kind {kind!r} has no picture")


def record_previews(pipe, record, kind: str) -> tuple[Image.Image, Image.Image]:
    """(x_t after the step, x0-hat) of a StepRecord as pictures of one kind."""
    decoder = preview_decoder(pipe) if kind == "approx" else None
    if decoder is not None:  # one decoder call for both pictures
        x_t = to_vp_scale(record.latents, record.family, record.sigma_next)
        pictures = tiny_decoder_images(torch.cat([x_t, record.pred_original_sample.to(x_t.dtype)]), decoder)
        return pictures[0], pictures[1]
    x_t = preview(pipe, record.latents, kind, record.family, record.sigma_next)
    x0 = preview(pipe, record.pred_original_sample, kind)
    return x_t, x0
