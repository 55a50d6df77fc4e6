"""The VAE's precision: the block where SDXL's pipelines run a float16 VAE in float32."""

from __future__ import annotations

import contextlib

import torch

from .families import is_sdxl


@contextlib.contextmanager
def vae_upcast(pipe):
    """The VAE in float32 for the block where SDXL's pipelines use it so: a float16 VAE whose config says
    `force_upcast` (SDXL's overflows in float16 and gives NaN). Yields whether it upcast."""
    vae = pipe.vae
    upcast = is_sdxl(pipe) and vae.dtype == torch.float16 and vae.config.get("force_upcast", False)
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        yield upcast
    finally:
        if upcast:
            vae.to(dtype=torch.float16)
