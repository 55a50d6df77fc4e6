"""What the training script writes beside the weights: latent -> RGB factors, the loss curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def fit_latent_rgb(latents: torch.Tensor, images: torch.Tensor) -> tuple[list[list[float]], list[float], float]:
    """Least-squares rgb = z @ factors + bias, per latent pixel.

    latents: N x 4 x h x w scaled latents; images: N x 3 x H x W in [-1, 1], average-pooled
    down to h x w. Returns factors [4][3], bias [3] and the fit's RMS error.
    """
    factor = images.shape[-1] // latents.shape[-1]
    pooled = torch.nn.functional.avg_pool2d(images, factor)
    z = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]).double().numpy()
    rgb = pooled.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    design = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    solution, *_ = np.linalg.lstsq(design, rgb, rcond=None)
    rms = float(np.sqrt(np.mean((design @ solution - rgb) ** 2)))
    return solution[:-1].round(6).tolist(), solution[-1].round(6).tolist(), rms


def plot_losses(vae_losses: list[float], unet_losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def smooth(values: list[float]) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        window = max(1, len(values) // 100)
        return np.convolve(values, np.ones(window) / window, mode="valid") if len(values) else values

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for axis, losses, title in ((axes[0], vae_losses, "VAE (weighted MSE + L1 + KL)"),
                                (axes[1], unet_losses, "UNet + text encoder (eps MSE)")):
        axis.plot(losses, alpha=0.25, lw=0.5, color="tab:blue")
        axis.plot(np.arange(len(smooth(losses))) + (len(losses) - len(smooth(losses))) // 2, smooth(losses),
                  color="tab:blue")
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.set_yscale("log")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
