"""A session of a SharedEngine: a Stepper whose UNet calls go to the engine's queue (shared_engine.py).

Everything else is the Stepper's own: prompt, seed and generator, scheduler, guidance, position,
records, snapshots, rewind, fork. Its public methods take the session's lock, so two threads may
drive one session (a UI thread and a worker) without racing.
"""

from __future__ import annotations

import functools
import threading

from ..engine.stepper import Stepper
from .shared_requests import TOLERANCE, UNetRequest


def _locked(method):
    @functools.wraps(method)
    def under_lock(self, *args, **kwargs):
        with self._session_lock:
            return method(self, *args, **kwargs)
    return under_lock


class SharedSession(Stepper):
    """`engine.stepper(...)`: the Stepper API; step 3 is batched with the other sessions of the engine."""

    def __init__(self, engine, pipe, **kwargs):
        self.engine = engine
        self._session_lock = threading.RLock()
        super().__init__(pipe, **kwargs)
        engine._adopt(self)

    def _unet(self, latent_model_input, t, rows, timestep_cond, x_t, capture=True):
        alone = functools.partial(Stepper._unet, self, latent_model_input, t, rows, timestep_cond, x_t, capture)
        if (self.capture_attention and capture) or timestep_cond is not None:
            # the capture hooks the UNet for one call, and a guidance embedding (LCM) is one more input to line
            # up: such a call runs by itself
            return self.engine.submit(UNetRequest(alone))
        request = UNetRequest(alone, self.pipe.unet, latent_model_input, t, self.prompt_embeds[rows],
                              self.conditioning.added_cond_kwargs(rows))
        output, maps = self.engine.submit(request)
        if maps is None:  # batched: no capture was asked, so none was made
            from ..engine.attention import NoCapture

            maps = NoCapture()
        return output, maps

    @property
    def sharing(self) -> str:
        return self.batching_note()

    def batching_note(self) -> str:
        """One line for the help: how this session's results relate to a solo run."""
        others = max(0, self.engine.sessions - 1)
        if self.engine.max_batch_size == 1:
            return f"shared engine, {others} other sessions: every UNet call runs alone (bit-exact with a solo run)"
        return (f"batched with {others} other sessions: final latents within {TOLERANCE['toy']:.1e} of a solo run "
                f"on the toy ({TOLERANCE['sd-width']:.1e} on SD-width components); start with --solo for bit-exact")

    step = _locked(Stepper.step)
    run = _locked(Stepper.run)
    image = _locked(Stepper.image)
    rewind = _locked(Stepper.rewind)
    set_guidance_scale = _locked(Stepper.set_guidance_scale)
    set_scheduler = _locked(Stepper.set_scheduler)

    @_locked
    def fork(self) -> SharedSession:
        twin = Stepper.fork(self)
        twin._session_lock = threading.RLock()
        self.engine._adopt(twin)
        return twin
