"""One model for a whole class: many sessions, one queue of UNet calls, batched.

    engine = SharedEngine(pipe, max_batch_size=32, max_wait_ms=5)
    st = engine.stepper(prompt="a red circle on a black background", seed=1)   # the whole Stepper API
    st.step()

Each session keeps its own prompt, seed and generator, scheduler, guidance, position, history and
snapshots (it is a Stepper). Only step 3 of the loop, the UNet call, leaves the session: it goes to
the engine's queue, where one worker thread gathers the calls that arrive within `max_wait_ms` of the
first into batches of at most `max_batch_size` rows (a session's call is never split: its two CFG
rows travel together), each row with its own timestep. Calls that cannot share a batch run in one
of their own: another latent size or dtype, another UNet, another text width, attention capture
(its recording processors are installed on the UNet for that one call).

Batched is not bit-exact with alone: the time-embedding Linear and the convolutions pick other
kernels by batch size (oneDNN on CPU, cuDNN on GPU), so a batched session's latents move by a few
float32 ulps per step. `TOLERANCE` holds what bench/p10_shared_engine.py measured; `max_batch_size=1`
runs every call alone, exactly as a plain Stepper does (the same bits).

Text encoding and VAE decodes stay in the session's own thread, unbatched: they happen once per
session and once per full picture, not once per step, and batching them would cost the pictures
their bits for little gain. Rows of one batch never mix (the UNet's group norms and attention work
per sample), so a session whose latents went NaN stops alone; a call that raises in a batch is
retried alone for each session, so an error reaches only the session that caused it.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref

import torch

from ..engine.checks import StepvizInputError
from .shared_requests import TOLERANCE, EngineClosedError, EngineStats, UNetRequest
from .shared_session import SharedSession

__all__ = ["SharedEngine", "SharedSession", "EngineStats", "EngineClosedError", "UNetRequest", "TOLERANCE"]

class SharedEngine:
    """Holds one pipeline; its sessions' UNet calls are batched by one worker thread."""

    def __init__(self, pipe, max_batch_size: int = 32, max_wait_ms: float = 5):
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise StepvizInputError(f"max_batch_size={max_batch_size!r} is not allowed: it must be an integer >= 1 "
                                    "(1: every call alone, bit-exact with a plain Stepper)")
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, int | float) or not 0 <= max_wait_ms <= 1000:
            raise StepvizInputError(f"max_wait_ms={max_wait_ms!r} is not allowed: use a number of milliseconds "
                                    "in 0..1000")
        from ..engine.families import is_flow_class

        if is_flow_class(type(pipe).__name__):
            raise StepvizInputError(f"a {type(pipe).__name__} cannot be shared yet: the shared engine batches UNet "
                                    "calls, and SD3 / FLUX.1 run a transformer (step it with a plain Stepper)")
        self.pipe, self.max_batch_size, self.max_wait_ms = pipe, max_batch_size, float(max_wait_ms)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stats = EngineStats()
        self._stats_lock = threading.Lock()
        self._sessions: weakref.WeakSet = weakref.WeakSet()
        self._closed = False
        self._worker = threading.Thread(target=self._serve, name="stepviz-shared-engine", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------ the public side
    def stepper(self, **kwargs):
        """A new session on this engine's pipeline: the Stepper API (kwargs as `Stepper`'s, without `pipe`)."""
        if "pipe" in kwargs:
            raise StepvizInputError("pipe= is not allowed here: a shared engine's sessions use the engine's pipeline")
        self._check_open()
        return SharedSession(self, self.pipe, **kwargs)

    @property
    def stats(self) -> EngineStats:
        with self._stats_lock:
            return self._stats

    @property
    def sessions(self) -> int:
        """How many sessions (forks included) are alive on this engine."""
        return len(self._sessions)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the worker; calls still queued, and any made later, raise EngineClosedError."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._worker.join()
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is not None:
                request.finish(error=EngineClosedError("the shared engine was closed before this step ran"))

    def __enter__(self) -> SharedEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ the sessions' side
    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError("the shared engine is closed: start a new SharedEngine (or a plain Stepper)")

    def _adopt(self, session) -> None:
        self._sessions.add(session)

    def submit(self, request: UNetRequest):
        """Queue `request` and wait for its (output, maps)."""
        self._check_open()
        self._queue.put(request)
        return request.wait()

    # ------------------------------------------------------------ the worker
    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            arrived = self._gather(first)
            stop = arrived[-1] is None
            for batch in self._batches([r for r in arrived if r is not None]):
                self._run(batch)
            if stop:
                return

    def _gather(self, first: UNetRequest) -> list:
        """`first` and whatever arrives within max_wait_ms of it, until max_batch_size rows are waiting or
        every live session has a call waiting (no one else can come: a lone session never waits)."""
        gathered, rows = [first], first.rows
        deadline = time.perf_counter() + self.max_wait_ms / 1000
        while rows < self.max_batch_size and len(gathered) < len(self._sessions):
            left = deadline - time.perf_counter()
            try:
                request = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            gathered.append(request)
            if request is None:
                break
            rows += request.rows
        return gathered

    def _batches(self, requests: list[UNetRequest]) -> list[list[UNetRequest]]:
        """Requests that can share a call, in arrival order, in chunks of at most max_batch_size rows."""
        groups: dict = {}
        batches: list[list[UNetRequest]] = []
        for request in requests:
            key = request.batch_key()
            if key is None:
                batches.append([request])
                continue
            group = groups.setdefault(key, [[]])
            if group[-1] and sum(r.rows for r in group[-1]) + request.rows > self.max_batch_size:
                group.append([])
            group[-1].append(request)
        for group in groups.values():
            batches.extend(group)
        return batches

    def _run(self, batch: list[UNetRequest]) -> None:
        started = time.perf_counter()
        with torch.no_grad():
            if len(batch) == 1:
                outcomes = [self._alone(batch[0])]
            else:
                try:
                    outputs = self._batched(batch)
                    outcomes = [((output, None), None) for output in outputs]
                except Exception:  # noqa: BLE001 - one session's bad call must not fail the others: retry alone
                    outcomes = [self._alone(request) for request in batch]
        finished = time.perf_counter()
        with self._stats_lock:
            s = self._stats
            rows = sum(r.rows for r in batch)
            calls = 1 if len(batch) > 1 and all(error is None for _, error in outcomes) else len(batch)
            self._stats = EngineStats(
                calls=s.calls + calls, rows=s.rows + rows, requests=s.requests + len(batch),
                wait_seconds=s.wait_seconds + sum(started - r.arrived for r in batch),
                unet_seconds=s.unet_seconds + finished - started, largest_batch=max(s.largest_batch, rows))
        for request, (result, error) in zip(batch, outcomes):
            request.finish(result, error)

    @staticmethod
    def _alone(request: UNetRequest):
        try:
            return request.alone(), None
        except Exception as exc:  # noqa: BLE001 - handed to the session that asked, raised in its thread
            return None, exc

    @staticmethod
    def _batched(batch: list[UNetRequest]) -> list[torch.Tensor]:
        """One UNet call for all rows, each row at its own session's timestep; the output split back."""
        rows = [r.rows for r in batch]
        sample = torch.cat([r.sample for r in batch])
        timestep = torch.cat([torch.as_tensor(r.timestep, device=sample.device).float().reshape(1).expand(n)
                              for r, n in zip(batch, rows)])
        hidden = torch.cat([r.encoder_hidden_states for r in batch])
        added = None
        if batch[0].added_cond_kwargs:
            added = {k: torch.cat([r.added_cond_kwargs[k] for r in batch]) for k in batch[0].added_cond_kwargs}
        output = batch[0].unet(sample, timestep, encoder_hidden_states=hidden, timestep_cond=None,
                               cross_attention_kwargs=None, added_cond_kwargs=added, return_dict=False)[0]
        return list(output.split(rows))
