"""A session of a SharedEngine: a Stepper whose UNet calls go to the engine's queue (shared_engine.py).

Everything else is the Stepper's own: prompt, seed and generator, scheduler, guidance, position,
records, snapshots, rewind, fork. Its public methods take the session's lock, so two threads may
drive one session (a UI thread and a worker) without racing.
"""

from __future__ import annotations

import functools
import threading

import torch

from ..engine.attention import NoCapture
from ..engine.stepper import Stepper
from .shared_requests import TOLERANCE, UNetRequest

LMS_TABLE_SIZE = 100_000  # LMS coefficients the engine keeps (4 per step of a schedule); past it, it starts again


def _locked(method):
    @functools.wraps(method)
    def under_lock(self, *args, **kwargs):
        with self._session_lock:
            return method(self, *args, **kwargs)
    return under_lock


def announced_step(session, step):
    """`step(session)`, with the engine told a call is coming: its gathering waits longer for a call it knows of."""
    session._call_coming = True
    session.engine.count_coming(+1)
    try:
        return step(session)
    finally:
        if session._call_coming:  # the step stopped before its call (a finished run, an error)
            session._call_coming = False
            session.engine.count_coming(-1)


def _shared_lms_coefficient(table: dict, scheduler, integrate, order: int, t: int, current_order: int) -> float:
    """diffusers' LMSDiscreteScheduler.get_lms_coefficient, computed once per schedule and step for the engine."""
    key = (scheduler.sigmas.cpu().numpy().tobytes(), order, t, current_order)
    if key not in table:
        if len(table) > LMS_TABLE_SIZE:
            table.clear()
        table[key] = integrate(scheduler, order, t, current_order)
    return table[key]


class SharedSession(Stepper):
    """`engine.stepper(...)`: the Stepper API; step 3 is batched with the other sessions of the engine."""

    def __init__(self, engine, pipe, **kwargs):
        self.engine = engine
        self._session_lock = threading.RLock()
        self._call_coming = False  # inside step(), before its first UNet call
        self._prompt_row = None  # without CFG: (t, input, the prompt's output) from the negative prompt's call
        super().__init__(pipe, **kwargs)
        engine._adopt(self)

    def _unet(self, latent_model_input, t, rows, timestep_cond, x_t, capture=True):
        if (self.capture_attention and capture) or timestep_cond is not None:
            # the capture hooks the UNet for one call, and a guidance embedding (LCM) is one more input to line
            # up: such a call runs by itself
            alone = functools.partial(Stepper._unet, self, latent_model_input, t, rows, timestep_cond, x_t, capture)
            return self._send(UNetRequest(alone, rows=int(latent_model_input.shape[0])))
        prompt_row = self._prompt_row
        self._prompt_row = None
        if rows == slice(1, 2) and prompt_row is not None and prompt_row[0] is t \
                and torch.equal(prompt_row[1], latent_model_input):
            return prompt_row[2], NoCapture()
        if rows == slice(0, 1) and self.engine.max_batch_size > 1 and not self.capture_attention:
            # Without CFG the loop makes two one-row calls on the same input, the negative prompt's then the
            # prompt's (one row alone is what diffusers runs, bit-exact). Batched they are not bit-exact anyway:
            # they travel as one request of two rows, half the round trips, the prompt's row kept for the next.
            both = torch.cat([latent_model_input, latent_model_input])
            output = self._submit_batchable(both, t, slice(0, 2), x_t)
            self._prompt_row = (t, latent_model_input, output[1:])
            return output[:1], NoCapture()
        return self._submit_batchable(latent_model_input, t, rows, x_t), NoCapture()

    def _submit_batchable(self, latent_model_input, t, rows, x_t) -> torch.Tensor:
        alone = functools.partial(Stepper._unet, self, latent_model_input, t, rows, None, x_t, False)
        request = UNetRequest(alone, self.pipe.unet, latent_model_input, t, self.prompt_embeds[rows],
                              self.conditioning.added_cond_kwargs(rows))
        output, _ = self._send(request)  # batched: no capture was asked, so none was made
        return output

    @property
    def sharing(self) -> str:
        return self.batching_note()

    def batching_note(self) -> str:
        """One line for the help: how this session's results relate to a solo run."""
        others = max(0, self.engine.sessions - 1)
        if self.engine.max_batch_size == 1:
            device = " on the same kind of device" if self.engine.batches_on else ""
            return (f"shared engine{self.engine.batches_on}, {others} other sessions: every UNet call runs alone "
                    f"(bit-exact with a solo run{device})")
        return (f"batched{self.engine.batches_on} with {others} other sessions: final latents within "
                f"{TOLERANCE['toy']:.1e} of a solo run "
                f"on the toy ({TOLERANCE['sd-width']:.1e} on SD-width components); start with --solo for bit-exact")

    @_locked
    def step(self):
        return announced_step(self, Stepper.step)

    def _call_scheduler(self, noise_pred, t, x_t, kwargs):
        """LMS integrates its coefficients each step (scipy quad: several ms, most of a session's own Python);
        they depend on the schedule's sigmas and the step only, so the engine's sessions share them."""
        if type(self.scheduler).__name__ != "LMSDiscreteScheduler":
            return Stepper._call_scheduler(self, noise_pred, t, x_t, kwargs)
        scheduler = self.scheduler
        scheduler.get_lms_coefficient = functools.partial(_shared_lms_coefficient, self.engine.lms_coefficients,
                                                          scheduler, type(scheduler).get_lms_coefficient)
        try:  # for this call only: snapshots copy the scheduler's own state, not the engine's table
            return Stepper._call_scheduler(self, noise_pred, t, x_t, kwargs)
        finally:
            del scheduler.get_lms_coefficient

    def _send(self, request: UNetRequest):
        first, self._call_coming = self._call_coming, False
        return self.engine.submit(request, first_of_step=first)

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
