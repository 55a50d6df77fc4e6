"""The queue's items and what the engine counts (shared_engine.py has the why)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

# The largest |latents batched - latents alone| over whole runs, float32 on CPU, measured by
# `python bench/p10_shared_engine.py --tolerance` (30 sessions of 30 steps on the toy: 2.03e-5; 4 sessions of
# 4 steps on random SD-width components at 64x64 pixels: 1.13e-4), rounded up.
TOLERANCE = {"toy": 2.1e-5, "sd-width": 1.2e-4}


class EngineClosedError(RuntimeError):
    """The shared engine was closed: its sessions can no longer call the UNet."""


@dataclass(frozen=True)
class EngineStats:
    """What the engine has done so far."""

    calls: int = 0  # UNet calls made
    rows: int = 0  # rows of all those calls together (a CFG step of one session: 2 rows)
    requests: int = 0  # sessions' UNet calls served
    wait_seconds: float = 0.0  # summed over requests: from arriving in the queue to their batch starting
    unet_seconds: float = 0.0  # the worker's time inside the UNet
    largest_batch: int = 0  # rows

    @property
    def rows_per_call(self) -> float:
        return self.rows / self.calls if self.calls else 0.0

    @property
    def mean_wait_ms(self) -> float:
        return 1000 * self.wait_seconds / self.requests if self.requests else 0.0


class UNetRequest:
    """One session's step-3 call, waiting in the queue for its result."""

    def __init__(self, alone, unet=None, sample=None, timestep=None, encoder_hidden_states=None,
                 added_cond_kwargs=None):
        self.alone = alone  # runs the call exactly as a plain Stepper would: () -> (output, maps)
        self.unet, self.sample, self.timestep = unet, sample, timestep
        self.encoder_hidden_states, self.added_cond_kwargs = encoder_hidden_states, added_cond_kwargs
        self.arrived = time.perf_counter()
        self.done = threading.Event()
        self.result = self.error = None

    @property
    def rows(self) -> int:
        return 1 if self.sample is None else int(self.sample.shape[0])

    def batch_key(self):
        """Calls with equal keys can share one UNet call; None: this call runs alone."""
        if self.sample is None:
            return None
        added = tuple(sorted((k, tuple(v.shape[1:]), v.dtype) for k, v in (self.added_cond_kwargs or {}).items()))
        ehs = self.encoder_hidden_states
        return (id(self.unet), tuple(self.sample.shape[1:]), self.sample.dtype, str(self.sample.device),
                tuple(ehs.shape[1:]), ehs.dtype, added)

    def finish(self, result=None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()

    def wait(self):
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result
