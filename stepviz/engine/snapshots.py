"""Rewind support: the state before each step, kept small.

A snapshot holds the latents, a copy of the scheduler's state and the torch Generator's state
(ancestral schedulers draw noise), so a rewound run draws exactly the same numbers again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch


def copy_sharing_tensors(scheduler):
    """A deep copy of a scheduler's state whose tensors are shared, not copied.

    Schedulers rebind their tensors (and append to history lists) but never write into them, so
    copying the containers is enough to restore the state exactly, at a fraction of the memory.
    """
    memo = {}
    pending = list(vars(scheduler).values())
    while pending:
        value = pending.pop()
        if isinstance(value, torch.Tensor):
            memo[id(value)] = value
        elif isinstance(value, (list, tuple)):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())
    return copy.deepcopy(scheduler, memo)


@dataclass(frozen=True)
class Snapshot:
    """Everything needed to resume exactly from the state before a step.

    Frozen: a fork shares its parent's snapshots, so an edit replaces a snapshot, never changes one.
    """

    latents: torch.Tensor
    scheduler: object
    scheduler_name: str
    timesteps: torch.Tensor
    loop_index: int
    steps_since_swap: int
    guidance_scale: float
    generator_state: torch.Tensor
    swapped: bool
    true_cfg_scale: float | None = None  # FLUX.1's two-call CFG scale (engine/flow_stepper.py)
