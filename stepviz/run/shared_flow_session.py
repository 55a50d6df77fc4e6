"""A flow session of a SharedEngine (SD3, toy-flow; FLUX.1): a FlowStepper whose transformer calls go to the
engine's queue, as SharedSession's UNet calls do (shared_session.py).

SD3's transformer call batches like the UNet's: rows of several sessions in one call, each at its own
t = 1000 sigma, with its own prompt embeddings and pooled projections (shared_requests.batched_unet_call).
A FLUX.1 call (packed tokens, image and text ids, an embedded guidance) runs alone, as a plain FlowStepper
makes it: bit-exact, one call at a time. Calls of another latent size, dtype or model never share a batch.
"""

from __future__ import annotations

import functools
import threading

from ..engine.stepper import FlowStepper
from .shared_requests import TOLERANCE, UNetRequest
from .shared_session import SharedSession, _locked, announced_step


class SharedFlowSession(FlowStepper):
    """`engine.stepper(...)` on a flow pipeline: the Stepper API; step 3 is batched with the other sessions."""

    def __init__(self, engine, pipe, **kwargs):
        self.engine = engine
        self._session_lock = threading.RLock()
        self._call_coming = False  # inside step(), before its first transformer call
        super().__init__(pipe, **kwargs)
        engine._adopt(self)

    def _transformer(self, x, t, rows):
        alone = functools.partial(self._transformer_alone, x, t, rows)
        if self.flux:  # packed tokens, ids and the guidance embedding: one call as the plain stepper makes it
            output, _ = self._send(UNetRequest(alone, rows=int(x.shape[0])))
            return output
        cond = self.conditioning
        request = UNetRequest(alone, self.pipe.transformer, x, t, cond.prompt_embeds[rows],
                              pooled_projections=cond.pooled[rows])
        output, _ = self._send(request)
        return output

    def _transformer_alone(self, x, t, rows):
        return FlowStepper._transformer(self, x, t, rows), None

    _send = SharedSession._send
    sharing = SharedSession.sharing

    def batching_note(self) -> str:
        """One line for the help: how this session's results relate to a solo run."""
        if self.engine.max_batch_size == 1 or self.flux:
            return SharedSession.batching_note(self) if not self.flux else (
                f"shared engine{self.engine.batches_on}: FLUX.1's transformer calls run one at a time (bit-exact "
                "with a solo run)")
        others = max(0, self.engine.sessions - 1)
        return (f"batched{self.engine.batches_on} with {others} other sessions: final latents within "
                f"{TOLERANCE['toy-flow']:.1e} of a solo run on the toy flow model; start with --solo for bit-exact")

    @_locked
    def step(self):
        return announced_step(self, FlowStepper.step)

    run = _locked(FlowStepper.run)
    image = _locked(FlowStepper.image)
    rewind = _locked(FlowStepper.rewind)
    set_guidance_scale = _locked(FlowStepper.set_guidance_scale)
    set_true_cfg_scale = _locked(FlowStepper.set_true_cfg_scale)
    set_scheduler = _locked(FlowStepper.set_scheduler)

    @_locked
    def fork(self) -> SharedFlowSession:
        twin = FlowStepper.fork(self)
        twin._session_lock = threading.RLock()
        self.engine._adopt(twin)
        return twin
