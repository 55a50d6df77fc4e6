"""Resumable training: atomic checkpoint files and a clock that says when to write one."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch


def begin_run(args) -> tuple[float, Path, Path]:
    """A trainer's first moves: torch threads and seed from `args`, the clock started, and (OUT, OUT/scratch),
    the scratch emptied unless `args.resume`."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    out = Path(args.out)
    return started, out, scratch_folder(out, args.resume)


def scratch_folder(out: Path, resume: bool) -> Path:
    """OUT/scratch, where a trainer keeps its checkpoint and caches: emptied unless the run resumes."""
    scratch = out / "scratch"
    if not resume and scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


def save_checkpoint(state: dict, path: Path) -> None:
    """Write `state` to `path` atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict | None:
    """The saved state, read with weights_only=True: tensors, numbers, lists and dicts only, never pickled code."""
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def resume(path: Path, modules: dict, optimizer) -> tuple[list[float], int, dict]:
    """Restore `modules` (checkpoint key -> module) and the optimizer from `path` if it exists.

    Returns (losses so far, the step to start at, the whole saved state or {} for extra entries).
    """
    state = load_checkpoint(path)
    if state is None:
        return [], 0, {}
    for key, module in modules.items():
        module.load_state_dict(state[key])
    optimizer.load_state_dict(state["optimizer"])
    return state["losses"], state["step"], state


class SaveClock:
    """True every `seconds` of wall time (and never for seconds <= 0)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.last = time.monotonic()

    def due(self) -> bool:
        if self.seconds <= 0 or time.monotonic() - self.last < self.seconds:
            return False
        self.last = time.monotonic()
        return True


def step_generator(seed: int, phase: int, step: int) -> torch.Generator:
    """The generator for one training step: a resumed run draws exactly the same batches."""
    return torch.Generator().manual_seed(seed * 1_000_003 + phase * 10_000_019 + step)


def warmup_cosine(step: int, total: int, peak: float, warmup: int, floor: float = 0.05) -> float:
    """Learning rate: linear warm-up to `peak`, cosine decay to `floor * peak`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item()))
