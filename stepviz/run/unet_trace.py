"""A shared engine's batched UNet call as a TorchScript trace: the same ops, without the modules' Python.

Eagerly, one UNet call is hundreds of small ops, each reached through the Python of diffusers' modules (about
1,200 nodes on the toy); on the CPU that Python is a fixed cost of every call, paid while holding the GIL that
the sessions' own Python (scheduler step, CFG, records) needs too. A trace of the same forward runs the same ops
from TorchScript's interpreter: about 14% less CPU per batch on the toy (32 rows: 86 ms instead of 100; a call's
fixed cost about 7 ms instead of 12-17). Whether it also lets go of the GIL for the whole call was not
settled here (a loaded 2-core machine): two threads running traced batches did not use more CPU than one.
Same ops on the same shapes pick the same kernels: a traced batch gives the bits of the eager batch
(tests/test_shared_engine.py checks), so the tolerance of batching stays what it was.

One trace per kind of batch (the batch key: UNet, latent and text shapes, dtypes, SDXL's inputs); the batch size
is free. The kind's first batch is traced (about 2 s on the toy), once per UNet: the engines of one process that
share a UNet share its traces, which live as long as it does. A UNet that cannot be traced, a
device other than the CPU (a GPU launches its kernels without waiting for them anyway), or an engine made with
trace=False runs eagerly. The trace holds the UNet's own parameters (no copy) and the attention processors it
had when traced: a call that hooks the UNet (attention capture) runs eagerly, alone.
"""

from __future__ import annotations

import threading
import warnings
import weakref

import torch


class _Forward(torch.nn.Module):
    """The UNet's forward with plain tensor inputs (SDXL's added conditioning in the order of `names`)."""

    def __init__(self, unet, names: tuple[str, ...]):
        super().__init__()
        self.unet, self.names = unet, names

    def forward(self, sample, timestep, encoder_hidden_states, *added):
        added_cond_kwargs = dict(zip(self.names, added)) if self.names else None
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, timestep_cond=None,
                         cross_attention_kwargs=None, added_cond_kwargs=added_cond_kwargs, return_dict=False)[0]


_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # UNet -> {batch key: trace, or None: eager}
_TRACING = threading.Lock()  # one trace at a time; a worker that finds it taken runs its batch eagerly


class UNetTraces:
    """How an engine runs its batches: traced (`enabled`, on the CPU) or eagerly."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __call__(self, unet, key, sample, timestep, encoder_hidden_states, added: dict | None) -> torch.Tensor:
        names = tuple(sorted(added)) if added else ()
        inputs = (sample, timestep, encoder_hidden_states, *(added[name] for name in names))
        traceable = self.enabled and sample.device.type == "cpu"
        traces = _TRACES.setdefault(unet, {}) if traceable else {}
        trace = traces.get(key, False)  # False: not traced yet; None: runs eagerly
        if trace is False and traceable and _TRACING.acquire(blocking=False):
            try:
                if key not in traces:  # another worker may have traced it meanwhile
                    traces[key] = self._trace(unet, names, inputs)
                trace = traces[key]
            finally:
                _TRACING.release()
        if trace is None or trace is False:
            return _Forward(unet, names)(*inputs)
        with torch.jit.optimized_execution(False):  # the plain interpreter: no fusion, no re-optimizing per shape
            return trace(*inputs)

    @staticmethod
    def _trace(unet, names: tuple[str, ...], inputs: tuple):
        try:
            with warnings.catch_warnings(), torch.jit.optimized_execution(False):
                # the tracer warns about each Python `if` on a shape; the key fixes every shape but the batch's
                warnings.simplefilter("ignore")
                return torch.jit.trace(_Forward(unet, names), inputs, check_trace=False)
        except Exception:  # noqa: BLE001 - a UNet the tracer cannot follow runs eagerly, as before
            return None


def traced_kinds(unet) -> int:
    """How many kinds of batch run traced on `unet`."""
    return sum(1 for trace in _TRACES.get(unet, {}).values() if trace is not None)
