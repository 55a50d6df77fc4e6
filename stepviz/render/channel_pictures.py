"""Pictures and words for the UNet's conditioning channels: the inpaint mask and Depth2Img's depth.

Shared by the TUI's panels and `stepviz export`. Latent-size maps are enlarged `scale` times
with nearest-neighbour, so each latent cell stays one visible square.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Stepper.extra_channels' names, in input order, with their symbol and channel count
EXTRA_CHANNELS = {"mask": ("m", 1), "masked_image_latents": ("E(masked image)", 4), "depth": ("depth", 1)}


def _grey(values: np.ndarray, scale: int) -> Image.Image:
    image = Image.fromarray(values.astype(np.uint8), mode="L").convert("RGB")
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def mask_picture(mask, scale: int = 8) -> Image.Image:
    """The latent-size mask [1, 1, h, w] (1 = repaint) as a picture: white is repainted."""
    return _grey((mask[0, 0].float().clamp(0, 1) * 255).round().cpu().numpy(), scale)


def depth_picture(depth, scale: int = 8) -> Image.Image:
    """The latent-size depth channel [1, 1, h, w] in [-1, 1] (near = high) as grey: near is light."""
    return _grey(((depth[0, 0].float().clamp(-1, 1) + 1) * 127.5).round().cpu().numpy(), scale)


def unet_input_formula(names) -> str:
    """The UNet input as channels, e.g. 'UNet input [x_t, m, E(masked image)]: 4 + 1 + 4 = 9 channels'."""
    chosen = [EXTRA_CHANNELS[name] for name in EXTRA_CHANNELS if name in names]
    symbols = ", ".join(["x_t"] + [symbol for symbol, _ in chosen])
    counts = [4] + [count for _, count in chosen]
    return f"UNet input [{symbols}]: {' + '.join(map(str, counts))} = {sum(counts)} channels"


def extra_channel_pictures(pipe, extra_channels: dict, kind: str, scale: int = 8) -> dict[str, Image.Image]:
    """One picture per extra UNet input (Stepper.extra_channels): the masked image's latents in the
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
