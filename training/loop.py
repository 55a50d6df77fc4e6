"""The one training loop of every trainer (VAE, UNet + text encoder, variants, decoder, depth estimator).

A trainer gives the loss of one batch; the loop does the rest, the same way for all:
1. the learning rate: linear warm-up, then cosine decay (each optimizer group may scale it, `lr_scale`);
2. the batch's randomness from a generator seeded by (seed, phase, step), so a resumed run draws the
   batches an uninterrupted one would;
3. backward, gradients clipped to norm 1, the optimizer's step;
4. exponential moving averages of the weights, where asked (decay warming up as (1 + step) / (10 + step));
5. a checkpoint every `save_every_s` seconds and at the end, from which `resume` continues.
`plot_losses` draws the loss curves every trainer writes beside its weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import SaveClock, resume, save_checkpoint, step_generator, warmup_cosine


@dataclass(frozen=True)
class Schedule:
    """How long and how fast one training phase runs, and where it keeps its checkpoint."""

    name: str  # the progress bar's label
    steps: int
    lr: float  # peak learning rate
    warmup: int  # warm-up steps (at most a tenth of the run, plus one)
    seed: int
    phase: int  # step_generator phase, distinct per trainer
    checkpoint: Path
    save_every_s: float = 180
    ema_decay: float = 0.0  # used when the loop keeps averages
    report_every: int = 0  # print the mean loss every N steps (0: never)
    until: int = 0  # stop after this many steps, a checkpoint written (0: at `steps`); the LR stays that of `steps`


def update_ema(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for kept, current in zip(average.parameters(), model.parameters()):
            kept.lerp_(current, 1.0 - decay)


def train_steps(schedule: Schedule, modules: dict[str, torch.nn.Module], optimizer,
                batch_loss: Callable[[int, torch.Generator], torch.Tensor],
                averages: dict[str, tuple[torch.nn.Module, torch.nn.Module]] | None = None,
                logs: dict[str, list] | None = None, report: Callable[[int], str] | None = None) -> list[float]:
    """Train `modules` (checkpoint key -> module) in place from where the checkpoint left them; the losses.

    batch_loss(step, generator): the loss of that step's batch. averages: checkpoint key -> (average,
    module) kept as EMAs. logs: lists saved with the checkpoint and restored on resume (filled by report).
    report(step): a line to print beside the mean loss every `report_every` steps and at the last.
    """
    averages, logs = averages or {}, logs if logs is not None else {}
    saved = {**modules, **{key: average for key, (average, _) in averages.items()}}
    losses, start, state = resume(schedule.checkpoint, saved, optimizer)
    for key, values in logs.items():
        values[:] = state.get(key, [])
    parameters = [p for module in modules.values() for p in module.parameters()]
    warmup = min(schedule.warmup, schedule.steps // 10 + 1)
    clock = SaveClock(schedule.save_every_s)
    for module in modules.values():
        module.train()
    end = min(schedule.until or schedule.steps, schedule.steps)
    progress = tqdm(range(start, end), initial=start, total=schedule.steps, desc=schedule.name, mininterval=5)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = group.get("lr_scale", 1.0) * warmup_cosine(step, schedule.steps, schedule.lr, warmup)
        loss = batch_loss(step, step_generator(schedule.seed, schedule.phase, step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        decay = min(schedule.ema_decay, (1 + step) / (10 + step))
        for average, module in averages.values():
            update_ema(average, module, decay)
        losses.append(loss.item())
        last = step + 1 == end
        if step % 25 == 0:
            progress.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if schedule.report_every and (step % schedule.report_every == 0 or last):
            progress.write(f"step {step}: loss {np.mean(losses[-200:]):.4f}" + (f", {report(step)}" if report else ""))
        if clock.due() or last:
            save_checkpoint({**{key: module.state_dict() for key, module in saved.items()},
                             "optimizer": optimizer.state_dict(), "losses": losses, "step": step + 1, **logs},
                            schedule.checkpoint)
    return losses


def plot_losses(curves: dict[str, list[float]], path: Path) -> None:
    """One panel per curve (title -> loss per step): the raw losses faint, a moving mean over 1% of the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5), squeeze=False)
    for axis, (title, losses) in zip(axes[0], curves.items()):
        values = np.asarray(losses, dtype=float)
        window = max(1, len(values) // 100)
        axis.plot(values, alpha=0.25, lw=0.5, color="tab:blue")
        if len(values) >= window:
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            axis.plot(np.arange(len(smooth)) + (len(values) - len(smooth)) // 2, smooth, color="tab:blue")
        axis.set(title=title, xlabel="step", yscale="log")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
