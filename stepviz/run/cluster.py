"""Beyond one machine: the batched UNet step as a Ray Serve deployment (`pip install 'stepviz[cluster]'`).

    engine = RayEngine(pipe, load={"model": "toy"})               # a local Ray instance (or $RAY_ADDRESS)
    engine = RayEngine(pipe, load={"model": "toy"}, address="ray://head:10001")     # a running cluster
    st = engine.stepper(prompt="a red circle on a black background", seed=1)        # the same sessions

A RayEngine is a SharedEngine whose batchable UNet calls leave the process: each session's step-3 call
goes to a Ray Serve deployment, whose replicas load the same model through the same `load_pipeline`
(the `load` keywords: model, dtype, variant, prediction_type; on every machine of the cluster the model
must sit at the same path, or be "toy") and gather the calls with `@serve.batch`: at most
`max_batch_size` rows per UNet call (a session's rows never split), `max_wait_ms` after the first call.
One replica per GPU of the cluster (none: one on the CPU). Everything else stays in this process, as in
a SharedEngine: text encoding, the scheduler, records, snapshots, VAE decodes, and the calls that cannot
share a batch (attention capture, a guidance embedding), which run here on this process's own model.

Only this module imports ray: the rest of stepviz imports without it.
"""

from __future__ import annotations

import asyncio
import threading

import torch

from ..engine.checks import StepvizInputError
from .shared_engine import SharedEngine
from .shared_requests import EngineStats, UNetCall, UNetRequest, batched_unet_call, group_into_batches

DEPLOYMENT = "stepviz-unet"
APPLICATION = "stepviz"


def import_ray():
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise StepvizInputError("--engine ray needs Ray Serve: pip install 'stepviz[cluster]'") from exc
    return ray, serve


def run_calls(unet, calls: list[UNetCall], max_rows: int) -> list:
    """The replica's side: group, batch, and per call its (output, rows of the UNet call it was in), or the
    exception it raised alone (a call that fails in a batch is retried alone, as in a SharedEngine)."""
    answers: dict[int, tuple | BaseException] = {}
    with torch.no_grad():
        for batch in group_into_batches(calls, max_rows):
            rows = sum(c.rows for c in batch)
            try:
                outputs = batched_unet_call(unet, batch)
                answers.update({id(c): (o.cpu(), rows) for c, o in zip(batch, outputs)})
            except Exception:  # noqa: BLE001 - one session's bad call must not fail the others: retry alone
                for call in batch:
                    try:
                        answers[id(call)] = (batched_unet_call(unet, [call])[0].cpu(), call.rows)
                    except Exception as exc:  # noqa: BLE001 - handed back to the session that asked
                        answers[id(call)] = exc
    return [answers[id(c)] for c in calls]


def unet_application(load: dict, max_batch_size: int, max_wait_ms: float, gpus: int):
    """The Ray Serve application: `max(1, gpus)` replicas of the batched UNet step."""
    _, serve = import_ray()

    @serve.deployment(name=DEPLOYMENT, num_replicas=max(1, gpus),
                      ray_actor_options={"num_gpus": 1 if gpus else 0, "num_cpus": 0 if gpus else 1},
                      # every session has at most one call waiting: room for a class's worth of them
                      max_ongoing_requests=max(100, 4 * max_batch_size))
    class BatchedUNet:
        def __init__(self):
            from stepviz.models import load_pipeline

            device = "cuda" if torch.cuda.is_available() else "cpu"
            self.unet = load_pipeline(**load, device=device).unet
            self.device = self.unet.device

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=max_wait_ms / 1000,
                     batch_size_fn=lambda calls: sum(c.rows for c in calls))
        async def __call__(self, calls: list[UNetCall]) -> list:
            calls = [UNetCall(c.sample.to(self.device), c.timestep,
                              c.encoder_hidden_states.to(self.device),
                              {k: v.to(self.device) for k, v in (c.added_cond_kwargs or {}).items()} or None)
                     for c in calls]
            return await asyncio.to_thread(run_calls, self.unet, calls, max_batch_size)

    return BatchedUNet.bind()


class RayEngine(SharedEngine):
    """A SharedEngine whose batched UNet calls run on a Ray Serve deployment (this module's docstring)."""

    batches_on = " on Ray Serve"

    def __init__(self, pipe, load: dict, address: str | None = None, max_batch_size: int = 32,
                 max_wait_ms: float = 5, num_cpus: int | None = None):
        """load: `load_pipeline` keywords for the replicas (model, dtype, variant, prediction_type).
        address: None starts a local Ray instance (or joins $RAY_ADDRESS), "auto" a running one on this
        machine, "ray://host:port" a cluster's head. num_cpus: for a local instance only."""
        from ..engine.families import is_flow_class

        if is_flow_class(type(pipe).__name__):
            raise StepvizInputError(f"a {type(pipe).__name__} is shared on one machine only (SharedEngine): the Ray "
                                    "deployment batches UNet calls, and a flow model runs a transformer")
        super().__init__(pipe, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, workers=1)
        ray, serve = import_ray()
        if address is not None and address != "auto" and not address.startswith("ray://"):
            raise StepvizInputError(f"--engine {address!r} is not allowed: use ray (a local Ray instance), "
                                    "ray://HOST:PORT (a running cluster's head) or auto")
        self._own_ray = not ray.is_initialized()  # started here: shut down on close
        if self._own_ray:
            options = dict(include_dashboard=False, log_to_driver=False) if address is None else {}
            ray.init(address=address, num_cpus=num_cpus if address is None else None, **options)
        serve.start(proxy_location="Disabled")  # sessions call the deployment's handle: no HTTP server
        gpus = int(ray.cluster_resources().get("GPU", 0))
        self._handle = serve.run(unet_application(load, max_batch_size, max_wait_ms, gpus), name=APPLICATION,
                                 route_prefix=None)
        self._remote_lock = threading.Lock()
        self._remote_calls = 0.0  # each answer's share of its UNet call: rows / rows of the call
        self._remote = EngineStats()
        self.replicas = max(1, gpus)

    def submit(self, request: UNetRequest, first_of_step: bool = False):
        """Batchable calls go to the deployment; the others run here, as in a SharedEngine."""
        self._check_open()
        if request.call is None:
            return super().submit(request, first_of_step)
        if first_of_step:
            self.count_coming(-1)
        call = request.call
        on_cpu = UNetCall(call.sample.cpu(), call.timestep.cpu() if torch.is_tensor(call.timestep) else call.timestep,
                          call.encoder_hidden_states.cpu(),
                          {k: v.cpu() for k, v in (call.added_cond_kwargs or {}).items()} or None)
        answer = self._handle.remote(on_cpu).result()
        if isinstance(answer, BaseException):
            raise answer
        output, rows_of_call = answer
        with self._remote_lock:
            self._remote_calls += call.rows / rows_of_call
            s = self._remote
            self._remote = EngineStats(rows=s.rows + call.rows, requests=s.requests + 1,
                                       largest_batch=max(s.largest_batch, rows_of_call))
        return output.to(call.sample.device), None

    @property
    def stats(self) -> EngineStats:
        here = super().stats
        with self._remote_lock:
            there, calls = self._remote, round(self._remote_calls)
        return EngineStats(calls=here.calls + calls, rows=here.rows + there.rows,
                           requests=here.requests + there.requests, wait_seconds=here.wait_seconds,
                           unet_seconds=here.unet_seconds, largest_batch=max(here.largest_batch, there.largest_batch))

    def close(self) -> None:
        """Stop the local worker and delete the deployment; a Ray instance this engine started stops too (one
        that was running before, or a cluster, stays up)."""
        if self.closed:
            return
        super().close()
        ray, serve = import_ray()
        serve.delete(APPLICATION)
        if self._own_ray:
            ray.shutdown()
