"""Latents -> pictures, three ways (pure functions; no UI).

    channels   the latent channels as grey tiles (2 x 2 for SD's 4, 4 x 4 for SD3's and FLUX.1's 16),
               range [-3, 3] -> [0, 255]
    approx     the model's tiny preview decoder when its folder ships one (diffusers' AutoencoderTiny, as
               TAESD), else linear latent-to-RGB: rgb = x @ F + b, from [-1, 1] to [0, 255]  (~free)
    full       the VAE decoder: D(x / scaling_factor + shift_factor) (shift_factor: SD3 and FLUX.1's VAEs)

Sigma-family latents (x = x0 + sigma eps) are first brought to the VP scale by dividing by
sqrt(sigma^2 + 1), flow latents (x = (1 - sigma) x0 + sigma eps) by sqrt((1 - sigma)^2 + sigma^2), so
pictures of x_t look alike whichever scheduler made them.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from PIL import Image

from ..engine.checks import check_choice
from ..engine.noise_scale import to_vp_scale
from ..engine.families import model_family
from ..engine.pipeline_facts import NOT_LOOKED_UP, facts_of
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
# SD3's 16-channel latents (after shift_factor and scaling_factor), with a bias; same source (class SD3).
SD3_LATENT_RGB_FACTORS = (
    (-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458), (0.0856, 0.0339, 0.0902),
    (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309), (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358),
    (-0.0194, 0.0020, 0.0669), (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
    (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810), (-0.0596, -0.0465, -0.0293), (-0.1448, -0.1463, -0.1189),
)
SD3_LATENT_RGB_BIAS = (0.2394, 0.2135, 0.1925)
# FLUX.1's 16-channel latents, with a bias; same source (class Flux).
FLUX_LATENT_RGB_FACTORS = (
    (-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433), (-0.0174, 0.0160, 0.0617),
    (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115), (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259),
    (-0.0245, 0.0250, 0.1180), (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
    (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499), (-0.1262, -0.0982, -0.0778),
)
FLUX_LATENT_RGB_BIAS = (-0.0329, -0.0718, -0.0851)
FAMILY_LATENT_RGB = {"SDXL": (SDXL_LATENT_RGB_FACTORS, SDXL_LATENT_RGB_BIAS),
                     "SD3": (SD3_LATENT_RGB_FACTORS, SD3_LATENT_RGB_BIAS),
                     "FLUX.1": (FLUX_LATENT_RGB_FACTORS, FLUX_LATENT_RGB_BIAS),
                     "SD": (SD_LATENT_RGB_FACTORS, (0.0, 0.0, 0.0))}
LATENT_RGB_FILE = "latent_rgb.json"
PREVIEW_DECODER_DIR = "preview_decoder"  # a tiny decoder in diffusers' AutoencoderTiny format, used when present


def latent_rgb_factors(pipe) -> tuple[torch.Tensor, torch.Tensor]:
    """(factors [C, 3], bias [3]) for this pipeline: the model's own file if it ships one, else its family's."""
    facts = facts_of(pipe)
    if facts.latent_rgb is not NOT_LOOKED_UP:
        return facts.latent_rgb
    path = pipeline_part(pipe, LATENT_RGB_FILE)
    if path is not None and path.is_file():
        data = json.loads(path.read_text())
        factors, bias = torch.tensor(data["factors"]), torch.tensor(data.get("bias", [0.0, 0.0, 0.0]))
    else:
        factors, bias = (torch.tensor(v) for v in FAMILY_LATENT_RGB[model_family(type(pipe).__name__)])
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
    """The latent channels as grey tiles in a square grid (2 x 2 for 4 channels, 4 x 4 for 16), each upscaled
    `scale` times."""
    x = latents[0]
    tiles = _to_uint8(x, -3.0, 3.0)
    c, h, w = tiles.shape
    cols = math.isqrt(c - 1) + 1 if c > 1 else 1
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

    from ..engine.vae import vae_upcast

    vae = pipe.vae
    started = time.perf_counter()
    with vae_upcast(pipe):  # SDXL's fp16 VAE decodes in float32, as its pipeline does
        x = latents.to(dtype=vae.dtype) / vae.config.scaling_factor
        if vae.config.get("shift_factor") is not None:  # SD3 and FLUX.1's VAEs: latents were (z - shift) * scale
            x = x + vae.config.shift_factor
        pixels = vae.decode(x, return_dict=False)[0]
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
