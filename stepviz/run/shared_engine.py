"""One model for a whole class: many sessions, one queue of UNet calls, batched.

    engine = SharedEngine(pipe, max_batch_size=32, max_wait_ms=5)
    st = engine.stepper(prompt="a red circle on a black background", seed=1)   # the whole Stepper API
    st.step()

Each session keeps its own prompt, seed and generator, scheduler, guidance, position, history and
snapshots (it is a Stepper). Only step 3 of the loop, the UNet call, leaves the session: it goes to
the engine's queue, where a worker thread gathers the calls that arrive within `max_wait_ms` of the
first into batches of at most `max_batch_size` rows (a session's call is never split: its two CFG
rows travel together), each row with its own timestep. Calls that cannot share a batch run in one
of their own: another latent size or dtype, another UNet, another text width, attention capture
(its recording processors are installed on the UNet for that one call, which then has the UNet to itself).

`workers` batches run at once. On a GPU one (the device runs one call at a time anyway); on the CPU as
many as torch's threads leave cores idle (2 cores and 1 torch thread: 2), the cores that separate
processes would have used: one worker computing a batch on one core while the other stands idle lost
half the machine to the solo runs it was measured against.

On the CPU a batch runs as a TorchScript trace of the UNet (unet_trace.py): the same ops and the same bits as
the eager batch for less CPU, without the modules' Python; trace=False runs batches eagerly.

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

import os
import queue
import threading
import time
import weakref

import torch

from ..engine.checks import StepvizInputError
from .shared_requests import (TOLERANCE, EngineClosedError, EngineStats, UNetRequest, UNetUse, batched_unet_call,
                              group_into_batches)
from .shared_session import SharedSession
from .unet_trace import UNetTraces

COMING_PATIENCE = 10  # x max_wait_ms: how long a batch waits for a session that is stepping to send its call

__all__ = ["SharedEngine", "SharedSession", "EngineStats", "EngineClosedError", "UNetRequest", "TOLERANCE"]


def default_workers(pipe) -> int:
    """Batches run at once: 1 on a GPU; on the CPU the cores torch's own threads leave idle."""
    device = getattr(pipe, "device", torch.device("cpu")) if pipe is not None else torch.device("cpu")
    if device.type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // torch.get_num_threads())


class SharedEngine:
    """Holds one pipeline; its sessions' UNet calls are batched by `workers` worker threads (on the CPU as
    traces of the UNet, unless trace=False)."""

    batches_on = ""  # where the batches run, for a session's help line ("" here; RayEngine: " on Ray Serve")

    def __init__(self, pipe, max_batch_size: int = 32, max_wait_ms: float = 5, workers: int | None = None,
                 trace: bool = True):
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise StepvizInputError(f"max_batch_size={max_batch_size!r} is not allowed: it must be an integer >= 1 "
                                    "(1: every call alone, bit-exact with a plain Stepper)")
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, int | float) or not 0 <= max_wait_ms <= 1000:
            raise StepvizInputError(f"max_wait_ms={max_wait_ms!r} is not allowed: use a number of milliseconds "
                                    "in 0..1000")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise StepvizInputError(f"workers={workers!r} is not allowed: an integer >= 1 (batches run at once), "
                                    "or None (1 on a GPU, the idle cores on the CPU)")
        self.pipe, self.max_batch_size, self.max_wait_ms = pipe, max_batch_size, float(max_wait_ms)
        self.workers = default_workers(pipe) if workers is None else workers
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stats = EngineStats()
        self._stats_lock = threading.Lock()
        self._in_hand = 0  # requests taken from the queue by the workers and not yet answered
        self._coming = 0  # sessions inside step() that have yet to send its call
        self._unet_use = UNetUse()
        self.lms_coefficients: dict = {}  # LMS's integrals, shared by the sessions (shared_session.py)
        self._traces = UNetTraces(enabled=bool(trace))  # batches as TorchScript traces on the CPU
        self._gathering = threading.Lock()
        self._sessions: weakref.WeakSet = weakref.WeakSet()
        self._closed = False
        self._workers = [threading.Thread(target=self._serve, name=f"stepviz-shared-engine-{i}", daemon=True)
                         for i in range(self.workers)]
        for worker in self._workers:
            worker.start()

    # ------------------------------------------------------------ the public side
    def stepper(self, **kwargs):
        """A new session on this engine's pipeline: the Stepper API (kwargs as `Stepper`'s, without `pipe`)."""
        if "pipe" in kwargs:
            raise StepvizInputError("pipe= is not allowed here: a shared engine's sessions use the engine's pipeline")
        self._check_open()
        from ..engine.families import is_flow_class

        if is_flow_class(type(self.pipe).__name__):  # SD3, toy-flow, FLUX.1: the flow loop's session
            from .shared_flow_session import SharedFlowSession

            return SharedFlowSession(self, self.pipe, **kwargs)
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
        """Stop the workers; calls still queued, and any made later, raise EngineClosedError."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)  # each worker that takes it puts it back for the next one
        for worker in self._workers:
            worker.join()
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

    def submit(self, request: UNetRequest, first_of_step: bool = False):
        """Queue `request` and wait for its (output, maps). first_of_step: the first call of a session's step
        (counted as coming until it is queued)."""
        self._check_open()
        self._queue.put(request)
        if first_of_step:
            self.count_coming(-1)
        return request.wait()

    # ------------------------------------------------------------ the workers
    def _serve(self) -> None:
        while True:
            with self._gathering:  # one worker gathers at a time while the others compute: batches stay whole
                arrived = self._gather()
            for batch in group_into_batches([r for r in arrived if r is not None], self.max_batch_size):
                self._run(batch)
            if arrived[-1] is None:  # the engine closes: the next worker takes the stop too
                self._queue.put(None)
                return

    def count_coming(self, change: int) -> None:
        """A session entered `step()` (+1: its call is coming) or sent that call or left without one (-1)."""
        with self._stats_lock:
            self._coming += change

    def _take(self, count: int) -> None:
        with self._stats_lock:
            self._in_hand += count

    def _gather(self) -> list:
        """The next call in the queue and the calls that follow it, until max_batch_size rows are waiting or
        every live session's call is in the workers' hands (no one else can come: a lone session never waits).
        The window stays open while calls keep coming: max_wait_ms for the next one, or up to
        `COMING_PATIENCE` times that while a session is inside `step()` and has yet to send its call (at full
        speed the sessions of a batch come back one after another, their Python running one at a time)."""
        first = self._queue.get()
        if first is None:
            return [None]
        self._take(1)
        gathered, rows = [first], first.rows
        while rows < self.max_batch_size and self._in_hand < len(self._sessions):
            wait = self.max_wait_ms / 1000 * (COMING_PATIENCE if self._coming > 0 else 1)
            try:
                request = self._queue.get(timeout=wait) if wait else self._queue.get_nowait()
            except queue.Empty:
                break
            gathered.append(request)
            if request is None:
                break
            self._take(1)
            rows += request.rows
        return gathered

    def _run(self, batch: list[UNetRequest]) -> None:
        started = time.perf_counter()
        with torch.no_grad():
            if len(batch) == 1:
                outcomes = [self._alone(batch[0])]
            else:
                try:
                    with self._unet_use.shared():
                        outputs = batched_unet_call(batch[0].unet, [r.call for r in batch], self._traces)
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
            self._in_hand -= len(batch)
        for request, (result, error) in zip(batch, outcomes):
            request.finish(result, error)

    def _alone(self, request: UNetRequest):
        """The call as a plain Stepper makes it; one that hooks the UNet (no batch key) has it to itself."""
        try:
            with self._unet_use.alone() if request.batch_key() is None else self._unet_use.shared():
                return request.alone(), None
        except Exception as exc:  # noqa: BLE001 - handed to the session that asked, raised in its thread
            return None, exc
