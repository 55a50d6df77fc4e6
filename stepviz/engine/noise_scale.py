"""A noise level in its two spellings, and latents moved between the two scales they live on.

Two families (Karras et al. 2022 relate them; diffusers implements both):

    VP     x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps           DDPM, DDIM, PNDM, DPM-Solver++, UniPC, DEIS
    sigma  x   = x_0 + sigma eps,  sigma = sqrt((1 - abar) / abar)   Euler, Euler ancestral, LMS, Heun

    flow   x_t = (1 - sigma) x_0 + sigma eps,  sigma in [0, 1]      FlowMatchEuler (SD3, FLUX.1); DPM-Solver++,
                                                                   UniPC with use_flow_sigmas

so at one noise level x_sigma = x_vp * sqrt(1 + sigma^2). Dividing by sqrt(1 + sigma^2) is what a sigma
scheduler's scale_model_input does before the UNet, what a preview does before the VAE, and what a
scheduler swap across families does to the running latents. Every one of them uses the helpers here.

A flow latent at sigma_f is the same mixture as a VP latent at abar = (1 - sigma_f)^2 / ((1 - sigma_f)^2 +
sigma_f^2), scaled by sqrt((1 - sigma_f)^2 + sigma_f^2): previews divide by that so x_t looks alike in all three
families. The running latents of a flow run are never converted: a flow model was trained on the straight path
and predicts v, a VP or sigma model on its own path and predicts eps, so a swap between them is refused.
"""

from __future__ import annotations


def sigma_of(abar: float) -> float:
    """sigma = sqrt((1 - abar) / abar): the same noise level as alpha_cumprod `abar`."""
    return ((1.0 - abar) / abar) ** 0.5


def abar_of(sigma: float) -> float:
    """abar = 1 / (1 + sigma^2): the same noise level as `sigma`."""
    return 1.0 / (1.0 + sigma * sigma)


class FamilyMismatchError(ValueError):
    """Latents of the flow family asked for on the VP/sigma scale of a run, or the reverse."""


def convert_latents(latents, sigma: float, from_family: str, to_family: str):
    """Latents of one family ("vp" or "sigma") at noise level sigma, on the other family's scale."""
    if from_family == to_family:
        return latents
    if "flow" in (from_family, to_family):
        raise FamilyMismatchError(family_mismatch(from_family, to_family))
    factor = (sigma * sigma + 1.0) ** 0.5
    return latents * factor if to_family == "sigma" else latents / factor


def to_vp_scale(latents, family: str, sigma: float):
    """x_vp = x_sigma / sqrt(1 + sigma^2) for sigma-family latents, x_flow / sqrt((1 - sigma)^2 + sigma^2) for
    flow latents (the same mixture of x0 and eps at unit scale); VP latents as they are."""
    if family == "flow":
        return latents / flow_scale(sigma)
    return convert_latents(latents, sigma, family, "vp")


def flow_sigma_of(sigma: float) -> float:
    """The flow sigma of the same x0 : eps mix as the VP/sigma noise level `sigma` (x = x0 + sigma eps, the ratio
    sigma_f / (1 - sigma_f) = sigma): sigma / (1 + sigma). Plots put VP/sigma runs beside flow runs with it."""
    return sigma / (1.0 + sigma)


def flow_scale(sigma: float) -> float:
    """sqrt((1 - sigma)^2 + sigma^2): the length of a flow latent's (x0, eps) mix, 1 at both ends."""
    return ((1.0 - sigma) ** 2 + sigma * sigma) ** 0.5


def family_mismatch(from_family: str, to_family: str, name: str | None = None) -> str:
    """The one line that refuses a swap between the flow family and the VP/sigma ones, saying why."""
    what = f"scheduler {name!r} ({to_family} family)" if name else f"the {to_family} family"
    return (f"{what} cannot continue a {from_family} run: a flow model predicts v = eps - x0 on the straight path "
            "x_t = (1 - sigma) x0 + sigma eps, a VP/sigma model eps (or v) on the path x_t = sqrt(abar) x0 + "
            "sqrt(1 - abar) eps: a different target and path")
