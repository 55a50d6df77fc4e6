"""The extra UNet input channels of the variants, made exactly as diffusers' pipelines make them.

- inpaint (9 channels): [x_t, mask, E(masked image)]. StableDiffusionInpaintPipeline
  binarises the mask at 0.5, masks the picture as image * (mask < 0.5) in [-1, 1],
  shrinks the mask to latent size with `interpolate(..., mode="nearest")` and encodes
  the masked picture with the VAE (a posterior sample times scaling_factor).
- depth (5 channels): [x_t, depth]. StableDiffusionDepth2ImgPipeline.prepare_depth_map
  shrinks the depth map to latent size (bicubic, align_corners=False) and min-max
  scales each map to [-1, 1].

`widen_conv_in` turns the base UNet into a variant's UNet the way SD's inpainting and
depth models were initialised: the base weights for the 4 latent channels, zeros for
the new ones, so training starts from exactly the base model's predictions.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from .components import LATENT_CHANNELS

EXTRA_CHANNELS = {"inpaint": 5, "depth": 1}  # mask (1) + masked-image latents (4); depth (1)


def widen_conv_in(unet: UNet2DConditionModel, extra: int) -> UNet2DConditionModel:
    """A copy of `unet` with `extra` zero-initialised input channels appended to conv_in."""
    config = dict(unet.config)
    config["in_channels"] = unet.config.in_channels + extra
    wide = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    weight = state["conv_in.weight"]
    padding = torch.zeros(weight.shape[0], extra, *weight.shape[2:], dtype=weight.dtype)
    state["conv_in.weight"] = torch.cat([weight, padding], dim=1)
    wide.load_state_dict(state)
    return wide


def pixels_from_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [-1, 1], as VaeImageProcessor.preprocess gives."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def mask_at_latent_size(holes: torch.Tensor, latent_size: int) -> torch.Tensor:
    """Binary holes N x 1 x H x W -> N x 1 x h x w, nearest, as prepare_mask_latents does."""
    return torch.nn.functional.interpolate(holes.float(), size=(latent_size, latent_size))


def masked_pixels(pixels: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """The picture with its hole blanked to 0 (mid grey in [-1, 1]): image * (mask < 0.5)."""
    return pixels * (holes.float() < 0.5)


def depth_at_latent_size(depth: torch.Tensor, latent_size: int) -> torch.Tensor:
    """Depth N x H x W (larger = nearer) -> N x 1 x h x w in [-1, 1], exactly as prepare_depth_map."""
    small = torch.nn.functional.interpolate(depth.unsqueeze(1), size=(latent_size, latent_size), mode="bicubic",
                                            align_corners=False)
    low = torch.amin(small, dim=[1, 2, 3], keepdim=True)
    high = torch.amax(small, dim=[1, 2, 3], keepdim=True)
    return 2.0 * (small - low) / (high - low) - 1.0


@torch.no_grad()
def encode_posterior(vae: AutoencoderKL, pixels: torch.Tensor, batch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of each picture, times scaling_factor (the UNet's latent space)."""
    means, stds = [], []
    for start in range(0, len(pixels), batch):
        posterior = vae.encode(pixels[start:start + batch]).latent_dist
        means.append(posterior.mean * vae.config.scaling_factor)
        stds.append(posterior.std * vae.config.scaling_factor)
    return torch.cat(means), torch.cat(stds)


def sample_posterior(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return mean + std * torch.randn(mean.shape, generator=generator)


__all__ = ["EXTRA_CHANNELS", "LATENT_CHANNELS", "depth_at_latent_size", "encode_posterior", "mask_at_latent_size",
           "masked_pixels", "pixels_from_uint8", "sample_posterior", "widen_conv_in"]
