"""Classifier-free guidance: when it applies, the combine of the two branches, and how the branches compare.

    eps_hat = eps_uncond + s * (eps_text - eps_uncond)        (Ho & Salimans 2022, eq. 6)

diffusers' pipelines guide only when s > 1 and the UNet has no guidance embedding (`time_cond_proj_dim`, the
guidance-distilled LCM models): otherwise the prompt's prediction alone drives the step, eps_hat = eps_text,
and an LCM UNet gets s as an input instead, w = s - 1 embedded as Meng et al. 2023 (On Distillation of Guided
Diffusion Models) do.
"""

from __future__ import annotations

import torch


def uses_cfg(guidance_scale: float, unet_config) -> bool:
    """diffusers' `do_classifier_free_guidance`: s > 1 and a UNet without a guidance embedding."""
    return guidance_scale > 1 and unet_config.get("time_cond_proj_dim") is None


def scale_embedding(pipe, guidance_scale: float, latents_dtype) -> torch.Tensor | None:
    """An LCM UNet's `timestep_cond`: w = s - 1 through the pipeline's own get_guidance_scale_embedding, as its
    __call__ computes it (same ops, same bits); None for a UNet without `time_cond_proj_dim`."""
    dim = pipe.unet.config.get("time_cond_proj_dim")
    if dim is None:
        return None
    w = torch.tensor(guidance_scale - 1).repeat(1)
    return pipe.get_guidance_scale_embedding(w, embedding_dim=dim).to(device=pipe._execution_device,
                                                                       dtype=latents_dtype)


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
