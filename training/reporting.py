"""What trainers write beside the weights: linear latent -> RGB preview factors, the command that ran, a run's
record."""

from __future__ import annotations

import sys
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


def command_line(module: str, argv: list[str] | None) -> str:
    """The command a report records: `python -m training.<module>` and its arguments (sys.argv's by default)."""
    return f"python -m training.{module} " + " ".join(argv if argv is not None else sys.argv[1:])


def write_run_record(folder: Path, what: str, module: str, argv: list[str] | None, steps: int, batch: int,
                     losses: list[float], minutes: float) -> None:
    """folder/TRAINING.md: the command that made `what` (e.g. "toy v3 model"), its steps and batch, the final
    loss (mean of the last 200 steps) and this run's minutes."""
    (folder / "TRAINING.md").write_text(
        f"# How this {what} was made\n\n"
        f"```\n{command_line(module, argv)}\n```\n\n"
        f"{steps} steps at batch {batch}; final loss (mean of the last 200 steps) "
        f"{np.mean(losses[-200:]):.4f}; {minutes:.1f} min this run.\n")
