"""Pictures and words for the model's conditioning channels: the inpaint mask (SD's 9-channel UNet, SD3's
33-channel transformer) and Depth2Img's depth.

Shared by the TUI's panels and `stepviz export`. Latent-size maps are enlarged `scale` times
with nearest-neighbour, so each latent cell stays one visible square.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Stepper.extra_channels' names, in input order, with their symbol and channel count on SD (4 latent channels)
EXTRA_CHANNELS = {"mask": ("m", 1), "masked_image_latents": ("E(masked image)", 4), "depth": ("depth", 1)}
SD_LATENT_CHANNELS = 4


def _grey(values: np.ndarray, scale: int) -> Image.Image:
    image = Image.fromarray(values.astype(np.uint8), mode="L").convert("RGB")
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def mask_picture(mask, scale: int = 8) -> Image.Image:
    """The latent-size mask [1, 1, h, w] (1 = repaint) as a picture: white is repainted."""
    return _grey((mask[0, 0].float().clamp(0, 1) * 255).round().cpu().numpy(), scale)


def depth_picture(depth, scale: int = 8) -> Image.Image:
    """The latent-size depth channel [1, 1, h, w] in [-1, 1] (near = high) as grey: near is light."""
    return _grey(((depth[0, 0].float().clamp(-1, 1) + 1) * 127.5).round().cpu().numpy(), scale)


def denoiser_of(model_family: str) -> str:
    """What the family's denoising network is called: SD3 and FLUX.1 run a transformer, SD and SDXL a UNet."""
    return "transformer" if model_family in ("SD3", "FLUX.1") else "UNet"


def channel_count(extra_channels, name: str) -> int:
    """A conditioning input's channels: the tensor's (Stepper.extra_channels), or SD's for a bare name."""
    tensor = extra_channels.get(name) if isinstance(extra_channels, dict) else None
    return int(tensor.shape[1]) if tensor is not None else EXTRA_CHANNELS[name][1]


def model_input_formula(extra_channels, denoiser: str = "UNet") -> str:
    """The model's input as channels, e.g. 'UNet input [x_t, m, E(masked image)]: 4 + 1 + 4 = 9 channels', or SD3's
    inpainting transformer's 16 + 1 + 16 = 33. `extra_channels`: Stepper.extra_channels (x_t has as many
    channels as E(masked image)), or its names alone (SD's counts)."""
    names = [name for name in EXTRA_CHANNELS if name in extra_channels]
    symbols = ", ".join(["x_t"] + [EXTRA_CHANNELS[name][0] for name in names])
    latent = channel_count(extra_channels, "masked_image_latents") if "masked_image_latents" in names \
        else SD_LATENT_CHANNELS
    counts = [latent] + [channel_count(extra_channels, name) for name in names]
    return f"{denoiser} input [{symbols}]: {' + '.join(map(str, counts))} = {sum(counts)} channels"


def extra_channel_pictures(pipe, extra_channels: dict, kind: str, scale: int = 8) -> dict[str, Image.Image]:
    """One picture per extra model input (Stepper.extra_channels): the masked image's latents in the
    preview `kind` (a VAE decode for "full"), the mask and the depth as grey maps."""
    pictures = {}
    if extra_channels.get("mask") is not None:
        pictures["mask"] = mask_picture(extra_channels["mask"], scale)
    if extra_channels.get("masked_image_latents") is not None:
        from .preview import preview

        pictures["masked_image_latents"] = preview(pipe, extra_channels["masked_image_latents"], kind)
    if extra_channels.get("depth") is not None:
        pictures["depth"] = depth_picture(extra_channels["depth"], scale)
    return pictures
