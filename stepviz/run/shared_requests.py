"""The queue's items, how they are grouped and run as one UNet call, and what the engine counts
(shared_engine.py has the why). The Ray Serve deployment (cluster.py) batches with the same functions."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

# The largest |latents batched - latents alone| over whole runs, float32 on CPU, measured by
# `python bench/p10_shared_engine.py --tolerance` (30 sessions of 30 steps on the toy: 2.03e-5, 2.34e-5 and
# 2.03e-5 in three runs, batches made up differently each time, then 1.93e-5 with traced batches (unet_trace.py:
# the bits of the eager batch); 4 sessions of 4 steps on random SD-width components at 64x64 pixels: 1.13e-4
# in each, traced too), rounded up. The toy flow model's SD3 transformer, batched (tests/test_shared_flow.py's
# settings: 8 sessions of 20 steps, 9.28e-6 in two runs; 6 sessions of 6 steps, 1.41e-5, 1.51e-5 and 2.76e-5
# in three, the batches made up differently each time), with room.
TOLERANCE = {"toy": 2.5e-5, "sd-width": 1.2e-4, "toy-flow": 4e-5}


class EngineClosedError(RuntimeError):
    """The shared engine was closed: its sessions can no longer call the UNet."""


@dataclass(frozen=True)
class EngineStats:
    """What the engine has done so far."""

    calls: int = 0  # UNet calls made
    rows: int = 0  # rows of all those calls together (a CFG step of one session: 2 rows)
    requests: int = 0  # sessions' UNet calls served
    wait_seconds: float = 0.0  # summed over requests: from arriving in the queue to their batch starting
    unet_seconds: float = 0.0  # the workers' time inside the UNet, summed over workers
    largest_batch: int = 0  # rows

    @property
    def rows_per_call(self) -> float:
        return self.rows / self.calls if self.calls else 0.0

    @property
    def mean_wait_ms(self) -> float:
        return 1000 * self.wait_seconds / self.requests if self.requests else 0.0


@dataclass
class UNetCall:
    """The tensors of one session's step-3 call: what travels to a batch (here, or to a Ray Serve replica)."""

    sample: torch.Tensor
    timestep: torch.Tensor | float
    encoder_hidden_states: torch.Tensor
    added_cond_kwargs: dict | None = None
    pooled_projections: torch.Tensor | None = None  # an SD3 transformer's call (the flow family): its pooled text

    @property
    def rows(self) -> int:
        return int(self.sample.shape[0])

    def batch_key(self, unet=None):
        """Calls with equal keys can share one UNet call."""
        added = tuple(sorted((k, tuple(v.shape[1:]), v.dtype) for k, v in (self.added_cond_kwargs or {}).items()))
        ehs = self.encoder_hidden_states
        pooled = None if self.pooled_projections is None else tuple(self.pooled_projections.shape[1:])
        return (id(unet), tuple(self.sample.shape[1:]), self.sample.dtype, str(self.sample.device),
                tuple(ehs.shape[1:]), ehs.dtype, added, pooled)


class UNetRequest:
    """One session's step-3 call, waiting in the queue for its result."""

    def __init__(self, alone, unet=None, sample=None, timestep=None, encoder_hidden_states=None,
                 added_cond_kwargs=None, rows: int = 1, pooled_projections=None):
        self.alone = alone  # runs the call exactly as a plain Stepper would: () -> (output, maps)
        self.unet, self._rows = unet, rows  # rows: of a call that runs alone (unet: an SD3 transformer too)
        # None: a call that cannot share a batch (attention capture hooks the UNet; a guidance embedding)
        self.call = None if sample is None else UNetCall(sample, timestep, encoder_hidden_states, added_cond_kwargs,
                                                         pooled_projections)
        self.arrived = time.perf_counter()
        self.done = threading.Event()
        self.result = self.error = None

    @property
    def rows(self) -> int:
        return self._rows if self.call is None else self.call.rows

    def batch_key(self):
        """Calls with equal keys can share one UNet call; None: this call runs alone."""
        return None if self.call is None else self.call.batch_key(self.unet)

    def finish(self, result=None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()

    def wait(self):
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


def group_into_batches(requests: list, max_rows: int) -> list[list]:
    """Requests (UNetRequest or UNetCall) that can share a call, in arrival order, in chunks of at most
    `max_rows` rows; a request whose key is None gets a batch of its own."""
    groups: dict = {}
    batches: list[list] = []
    for request in requests:
        key = request.batch_key()
        if key is None:
            batches.append([request])
            continue
        group = groups.setdefault(key, [[]])
        if group[-1] and sum(r.rows for r in group[-1]) + request.rows > max_rows:
            group.append([])
        group[-1].append(request)
    for group in groups.values():
        batches.extend(group)
    return batches


def batched_unet_call(unet, calls: list[UNetCall], traces=None) -> list[torch.Tensor]:
    """One UNet (or SD3 transformer) call for all rows, each row at its own session's timestep; the output split
    back. traces: a UNetTraces (unet_trace.py) runs a UNet's call as a trace (same bits, less CPU); None, and an
    SD3 transformer's call always: eagerly."""
    rows = [c.rows for c in calls]
    sample = torch.cat([c.sample for c in calls])
    timestep = torch.cat([torch.as_tensor(c.timestep, device=sample.device).float().reshape(1).expand(n)
                          for c, n in zip(calls, rows)])
    hidden = torch.cat([c.encoder_hidden_states for c in calls])
    if calls[0].pooled_projections is not None:  # an SD3 transformer (the flow family): t = 1000 sigma per row
        pooled = torch.cat([c.pooled_projections for c in calls])
        output = unet(hidden_states=sample, timestep=timestep, encoder_hidden_states=hidden, pooled_projections=pooled,
                      joint_attention_kwargs=None, return_dict=False)[0]
        return list(output.split(rows))
    added = None
    if calls[0].added_cond_kwargs:
        added = {k: torch.cat([c.added_cond_kwargs[k] for c in calls]) for k in calls[0].added_cond_kwargs}
    if traces is not None:
        output = traces(unet, calls[0].batch_key(unet), sample, timestep, hidden, added)
    else:
        output = unet(sample, timestep, encoder_hidden_states=hidden, timestep_cond=None,
                      cross_attention_kwargs=None, added_cond_kwargs=added, return_dict=False)[0]
    return list(output.split(rows))


class UNetUse:
    """Batched calls may run on the UNet at once (one per worker); a call that hooks the UNet (attention
    capture installs its recording processors for that call) has it to itself. A waiting hook goes first."""

    def __init__(self):
        self._changed = threading.Condition()
        self._sharing, self._hooked, self._hooks_waiting = 0, False, 0

    @contextmanager
    def shared(self):
        with self._changed:
            self._changed.wait_for(lambda: not self._hooked and not self._hooks_waiting)
            self._sharing += 1
        try:
            yield
        finally:
            with self._changed:
                self._sharing -= 1
                self._changed.notify_all()

    @contextmanager
    def alone(self):
        with self._changed:
            self._hooks_waiting += 1
            self._changed.wait_for(lambda: not self._hooked and not self._sharing)
            self._hooks_waiting -= 1
            self._hooked = True
        try:
            yield
        finally:
            with self._changed:
                self._hooked = False
                self._changed.notify_all()
