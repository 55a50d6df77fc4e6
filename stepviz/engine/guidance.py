"""Classifier-free guidance: the combine of the two branches, and how the branches compare.

    eps_hat = eps_uncond + s * (eps_text - eps_uncond)        (Ho & Salimans 2022, eq. 6)
"""

from __future__ import annotations

import torch


def combine(noise_pred_uncond: torch.Tensor, noise_pred_text: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """The CFG line, written exactly as diffusers' pipelines write it (same bits)."""
    return noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)


def branch_metrics(
    noise_pred_uncond: torch.Tensor,
    noise_pred_text: torch.Tensor,
    noise_pred: torch.Tensor,
    latents: torch.Tensor,
    pred_original_sample: torch.Tensor,
) -> dict[str, float]:
    """Norms and cosine of the two branches, in one pass and one transfer to the host."""
    u = noise_pred_uncond.float().flatten()
    c = noise_pred_text.float().flatten()
    values = torch.stack(
        [
            u.norm(),
            c.norm(),
            (c - u).norm(),
            noise_pred.float().norm(),
            torch.nn.functional.cosine_similarity(u, c, dim=0, eps=1e-12),
            latents.float().std(),
            pred_original_sample.float().std(),
        ]
    ).tolist()
    keys = ("norm_uncond", "norm_text", "norm_guidance", "norm_noise_pred", "cos_uncond_text", "latents_std",
            "pred_original_std")
    return dict(zip(keys, values))
