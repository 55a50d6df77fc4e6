"""A noise level in its two spellings, and latents moved between the two scales they live on.

Two families (Karras et al. 2022 relate them; diffusers implements both):

    VP     x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps           DDPM, DDIM, PNDM, DPM-Solver++, UniPC, DEIS
    sigma  x   = x_0 + sigma eps,  sigma = sqrt((1 - abar) / abar)   Euler, Euler ancestral, LMS, Heun

so at one noise level x_sigma = x_vp * sqrt(1 + sigma^2). Dividing by sqrt(1 + sigma^2) is what a sigma
scheduler's scale_model_input does before the UNet, what a preview does before the VAE, and what a
scheduler swap across families does to the running latents. Every one of them uses the helpers here.
"""

from __future__ import annotations


def sigma_of(abar: float) -> float:
    """sigma = sqrt((1 - abar) / abar): the same noise level as alpha_cumprod `abar`."""
    return ((1.0 - abar) / abar) ** 0.5


def abar_of(sigma: float) -> float:
    """abar = 1 / (1 + sigma^2): the same noise level as `sigma`."""
    return 1.0 / (1.0 + sigma * sigma)


def convert_latents(latents, sigma: float, from_family: str, to_family: str):
    """Latents of one family ("vp" or "sigma") at noise level sigma, on the other family's scale."""
    if from_family == to_family:
        return latents
    factor = (sigma * sigma + 1.0) ** 0.5
    return latents * factor if to_family == "sigma" else latents / factor


def to_vp_scale(latents, family: str, sigma: float):
    """x_vp = x_sigma / sqrt(1 + sigma^2) for sigma-family latents; VP latents as they are."""
    return convert_latents(latents, sigma, family, "vp")
