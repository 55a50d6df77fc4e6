"""FLUX.1's latent layout: its transformer reads the 16-channel latents as tokens, 2 x 2 patches packed into one
token of 64 numbers, with (0, row, column) position ids for the rotary embedding (FluxPipeline's _pack_latents,
_unpack_latents and _prepare_latent_image_ids do the same). Packing only moves numbers: a run keeps its latents
unpacked, [1, 16, h, w] like SD's, and packs them at the transformer and the scheduler.
"""

from __future__ import annotations

import torch


def pack(latents: torch.Tensor) -> torch.Tensor:
    """FLUX.1's 2x2 packing: [1, C, h, w] -> [1, (h/2)(w/2), 4C] tokens (FluxPipeline._pack_latents)."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of `pack`: [1, (h/2)(w/2), 4C] -> [1, C, h, w] (a permutation: the same numbers)."""
    b, _, channels = tokens.shape
    x = tokens.view(b, h // 2, w // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels // 4, h, w)


def image_ids(h: int, w: int, device, dtype) -> torch.Tensor:
    """FLUX.1's position ids of the image tokens: (0, row, column) per 2x2 patch, [(h/2)(w/2), 3]."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = ids[..., 1] + torch.arange(h // 2)[:, None]
    ids[..., 2] = ids[..., 2] + torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)
