"""Phase 1: train the AutoencoderKL, then fold a per-channel normalisation into it.

Loss = shape-weighted (MSE + L1) + a small KL. Background pixels dominate a toy picture,
so the shape's pixels weigh `shape_weight` times more; otherwise the decoder gets
colours wrong (green and yellow came back orange in a trial run).

After training, the latents' per-channel mean and std are folded into the 1x1
convolutions around the latent space: with
z' = a (z - m), a = 1/std per channel,
  quant_conv mean rows:   W <- a W,  b <- a (b - m);  log-variance bias += 2 log a
  post_quant_conv:        columns W[:, c] <- W[:, c] / a_c,  b <- b + W m
so the decoder sees exactly what it saw before, the latents have zero mean and
unit std per channel, and `scaling_factor` is 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from stepviz.toy.checker import classify
from stepviz.toy.world import BACKGROUNDS, COLOURS, SHAPES, draw_scene

from .dataset import SceneSet
from .loop import Schedule, train_steps

VAE_PHASE = 1


def shape_weighted_pixel_loss(reconstruction: torch.Tensor, x: torch.Tensor, mask: torch.Tensor,
                              shape_weight: float = 5.0) -> torch.Tensor:
    """MSE + L1 per pixel, the shapes' pixels (mask N x 1 x H x W) weighing 1 + shape_weight."""
    weight = 1.0 + shape_weight * mask
    error = reconstruction - x
    # MSE keeps colours right on average, L1 keeps edges sharp
    return (weight * (error**2 + error.abs())).sum() / (3 * weight.sum())


def train_vae(
    vae: AutoencoderKL, scenes: SceneSet, steps: int, batch: int, lr: float, seed: int,
    checkpoint_path: Path, shape_weight: float = 5.0, kl_weight: float = 1e-6, save_every_s: float = 180,
    balance_weight: float = 0.0, linear_rgb_weight: float = 0.0,
) -> list[float]:
    """Train in place; returns the loss per step (resumes from checkpoint_path). Version 3's terms, off at 0:
    `balance_weight` adds latent_balance_loss (its latents are scaled by a fitted scaling_factor, not folded),
    `linear_rgb_weight` adds linear_rgb_loss (colour coded linearly, as in SD's latents)."""
    # built only when used: its initialisation draws from torch's global generator, which the UNet's init then uses
    rgb_head = torch.nn.Conv2d(vae.config.latent_channels, 3, 1) if linear_rgb_weight else None
    modules = {"vae": vae, **({"linear_rgb": rgb_head} if rgb_head is not None else {})}

    def batch_loss(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(scenes), (batch,), generator=generator).numpy()
        x, mask = scenes.image_tensor(index), scenes.mask_tensor(index)
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        pixel = shape_weighted_pixel_loss(vae.decode(z).sample, x, mask, shape_weight)
        loss = pixel + kl_weight * posterior.kl().mean() / z[0].numel()
        if balance_weight:
            loss = loss + balance_weight * latent_balance_loss(posterior.mean)
        if linear_rgb_weight:
            loss = loss + linear_rgb_weight * linear_rgb_loss(rgb_head, posterior.mean, x)
        return loss

    parameters = [p for module in modules.values() for p in module.parameters()]
    schedule = Schedule("vae", steps, lr, warmup=100, seed=seed, phase=VAE_PHASE, checkpoint=checkpoint_path,
                        save_every_s=save_every_s)
    losses = train_steps(schedule, modules, torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0), batch_loss)
    vae.eval()
    return losses


def linear_rgb_loss(rgb_head: torch.nn.Conv2d, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """How far a linear map of the latents (a 1x1 convolution, trained alongside) is from the picture averaged
    over each latent cell.

    SD's latents are close to a linear function of the downsampled picture (its preview is a 4 x 3 matrix), so
    a mean of latents (a mid-noise x0-hat, a multistep solver's blend) decodes to a mean colour. The version
    1/2 toy VAE coded colour non-linearly: the mean of 16 red squares' latents decodes blue
    (training/models/toy/TRAINING.md, "Why v2 fails under LMS and PNDM").
    """
    target = torch.nn.functional.avg_pool2d(x, x.shape[-1] // z.shape[-1])
    return (rgb_head(z) - target).pow(2).mean()


def latent_balance_loss(z: torch.Tensor) -> torch.Tensor:
    """How unequal the latent channels' spreads are, plus how far their means sit from 0 (in their stds).

    The spread of the latents is free for the VAE (the decoder undoes any scale), so this costs it nothing to
    meet; it makes one scaling_factor put every channel near unit std, as SD's 0.18215 roughly does for SD's
    channels, instead of a per-channel normalisation folded into the VAE.
    """
    std = z.std(dim=(0, 2, 3)) + 1e-6
    log_std = std.log()
    return (log_std - log_std.mean()).pow(2).mean() + 0.1 * (z.mean(dim=(0, 2, 3)) / std).pow(2).mean()


@torch.no_grad()
def raw_latent_samples(vae, scenes, count: int, seed: int, batch: int = 128) -> torch.Tensor:
    """Posterior samples z ~ E(x) of the first `count` scenes, unscaled (N x C x h x w), drawn `batch` at a time."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for start in range(0, min(count, len(scenes)), batch):
        index = np.arange(start, min(start + batch, count, len(scenes)))
        posterior = vae.encode(scenes.image_tensor(index)).latent_dist
        samples.append(posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator))
    return torch.cat(samples)


@torch.no_grad()
def latent_statistics(vae: AutoencoderKL, scenes: SceneSet, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of posterior samples over `count` training pictures."""
    z = raw_latent_samples(vae, scenes, count, seed)
    return z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3))


@torch.no_grad()
def fold_latent_normalisation(vae: AutoencoderKL, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Make the latents zero-mean, unit-std per channel without changing any decoded picture."""
    channels = mean.numel()
    scale = 1.0 / std
    quant_w, quant_b = vae.quant_conv.weight, vae.quant_conv.bias  # [2C, 2C, 1, 1]: mean rows, then log-variance rows
    quant_w[:channels] *= scale[:, None, None, None]
    quant_b[:channels] = scale * (quant_b[:channels] - mean)
    quant_b[channels:] += 2.0 * torch.log(scale)
    post_w, post_b = vae.post_quant_conv.weight, vae.post_quant_conv.bias  # [C, C, 1, 1]: out x in
    post_b += post_w[:, :, 0, 0] @ mean
    post_w /= scale[None, :, None, None]
    vae.register_to_config(scaling_factor=1.0)


@torch.no_grad()
def reconstruction_report(vae: AutoencoderKL, size: int, per_cell: int = 4) -> tuple[str, dict]:
    """Reconstruct fresh scenes and judge them with the checker, colour by colour."""
    rows, totals = [], {}
    for colour in COLOURS:
        scenes = [draw_scene(colour, s, b, seed=10_000 + i, size=size)
                  for s in SHAPES for b in BACKGROUNDS for i in range(per_cell)]
        x = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        pictures = ((y + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        found = [classify(p) for p in pictures]
        masks = torch.from_numpy(np.stack([s.mask for s in scenes]))[:, None].float()
        shape_mse = float((((y - x) ** 2) * masks).sum() / (3 * masks.sum()))
        colour_ok = np.mean([f[0] == s.colour for f, s in zip(found, scenes)])
        shape_ok = np.mean([f[1] == s.shape for f, s in zip(found, scenes)])
        totals[colour] = float(colour_ok)
        rows.append(f"| {colour} | {colour_ok:.0%} | {shape_ok:.0%} | {shape_mse:.4f} |")
    table = "| colour | colour right | shape right | MSE on shape pixels |\n|---|---|---|---|\n" + "\n".join(rows)
    return table, totals
