"""Record what a hand-written sampling loop asks of a pipeline's parts, without changing any result.

While a `Recorder` is active it keeps, in call order, a copy of the inputs and outputs of

    pipe.text_encoder(...)                      -> "text_encoder"  (input ids, embeddings)
    pipe.unet(...)                              -> "unet"          (sample, t, encoder_hidden_states, output)
    pipe.vae.decode(...)                        -> "vae_decode"    (z)
    scheduler.set_timesteps / scale_model_input / step / add_noise, and reads of a
    sigma-family scheduler's init_noise_sigma   -> one event each, on any scheduler instance
    torch.randn / torch.randn_like              -> "randn"         (the draw)

The hooks call the original functions with the original arguments and hand back the original
results; the copies are taken after the call, so the loop's own numbers are bit-for-bit the same.
Scheduler methods are wrapped on their classes, so a scheduler the loop builds itself
(`LMSDiscreteScheduler.from_config(...)`) is recorded too.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field

import torch

SCHEDULER_METHODS = ("set_timesteps", "scale_model_input", "step", "add_noise")


@dataclass
class Event:
    kind: str
    owner: int  # id() of the module or scheduler called
    values: dict = field(default_factory=dict)


def _copy(value):
    """A detached copy of a tensor (the loop may change its own tensor in place later: `latents *= s`)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return value


def _scheduler_classes(extra) -> set[type]:
    from diffusers import SchedulerMixin

    found, todo = set(), [SchedulerMixin, *extra]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.add(cls)
            todo.extend(cls.__subclasses__())
    found.discard(SchedulerMixin)
    return found


class Recorder:
    """Context manager: hooks on `pipe`'s parts and on every scheduler class while active."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.events: list[Event] = []
        self.schedulers: dict[int, object] = {}  # id -> scheduler instance seen (kept alive for the analysis)
        self._undo: list = []
        self._inside = 0  # > 0 while a recorded scheduler method runs (its inner calls are not the loop's)
        self._draws_inside = 0  # torch.randn calls made inside recorded scheduler methods

    # ------------------------------------------------------------ install / remove
    def __enter__(self) -> Recorder:
        pipe = self.pipe
        self._hook_module(pipe.unet, self._on_unet)
        if getattr(pipe, "text_encoder", None) is not None:
            self._hook_module(pipe.text_encoder, self._on_text_encoder)
        self._wrap_instance(pipe.vae, "decode", self._on_decode)
        for cls in _scheduler_classes([type(pipe.scheduler)]):
            if "__init__" in cls.__dict__:
                self._wrap_constructor(cls)
            for name in SCHEDULER_METHODS:
                if name in cls.__dict__:
                    self._wrap_class_method(cls, name)
            if isinstance(cls.__dict__.get("init_noise_sigma"), property):
                self._wrap_init_noise_sigma(cls)
        for name in ("randn", "randn_like"):
            self._wrap_instance(torch, name, self._on_randn)
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()

    def _hook_module(self, module, on_call) -> None:
        handle = module.register_forward_hook(
            lambda mod, args, kwargs, output: on_call(mod, args, kwargs, output), with_kwargs=True)
        self._undo.append(handle.remove)

    def _wrap_instance(self, owner, name: str, on_call) -> None:
        original = getattr(owner, name)
        had_own = name in vars(owner)

        @functools.wraps(original)
        def recorded(*args, **kwargs):
            out = original(*args, **kwargs)
            on_call(owner, args, kwargs, out)
            return out

        setattr(owner, name, recorded)
        self._undo.append(lambda: setattr(owner, name, original) if had_own else delattr(owner, name))

    def _wrap_class_method(self, cls, name: str) -> None:
        original = cls.__dict__[name]
        signature = inspect.signature(original)
        draws = name == "step" and "generator" in signature.parameters  # ancestral steps draw noise
        recorder = self

        @functools.wraps(original)
        def recorded(scheduler, *args, **kwargs):
            if recorder._inside:
                return original(scheduler, *args, **kwargs)
            values = signature.bind(scheduler, *args, **kwargs).arguments
            values.pop("self", None)
            generator = values.get("generator")
            rng_state = (generator.get_state() if isinstance(generator, torch.Generator)
                         else torch.get_rng_state()) if draws else None
            inputs = {k: _copy(v) for k, v in values.items()}
            recorder._inside += 1
            drawn_before = recorder._draws_inside
            try:
                out = original(scheduler, *args, **kwargs)
            finally:
                recorder._inside -= 1
            recorder._on_scheduler(name, scheduler, inputs, out, rng_state)
            if draws:  # noise drawn from torch's own generator: no seed can give this run again
                recorder.events[-1].values["unseeded_draw"] = (
                    recorder._draws_inside > drawn_before and not isinstance(generator, torch.Generator))
            return out

        setattr(cls, name, recorded)
        self._undo.append(lambda: setattr(cls, name, original))

    def _wrap_constructor(self, cls) -> None:
        """A constructor's own calls (LMS's __init__ calls set_timesteps) are not the loop's."""
        original = cls.__dict__["__init__"]
        recorder = self

        @functools.wraps(original)  # from_config reads the constructor's signature
        def __init__(scheduler, *args, **kwargs):
            recorder._inside += 1
            try:
                original(scheduler, *args, **kwargs)
            finally:
                recorder._inside -= 1

        cls.__init__ = __init__
        self._undo.append(lambda: setattr(cls, "__init__", original))

    def _wrap_init_noise_sigma(self, cls) -> None:
        original = cls.__dict__["init_noise_sigma"]
        recorder = self

        def read(scheduler):
            value = original.fget(scheduler)
            if not recorder._inside:
                recorder._add("init_noise_sigma", scheduler, value=float(value))
            return value

        cls.init_noise_sigma = property(read, doc=original.__doc__)
        self._undo.append(lambda: setattr(cls, "init_noise_sigma", original))

    # ------------------------------------------------------------ what each hook keeps
    def _add(self, kind: str, owner, **values) -> None:
        self.events.append(Event(kind, id(owner), values))

    def _on_unet(self, unet, args, kwargs, output) -> None:
        values = inspect.signature(unet.forward).bind_partial(*args, **kwargs).arguments
        sample = output[0] if isinstance(output, tuple) else output.sample
        timestep = values.get("timestep")
        self._add("unet", unet, sample=_copy(values.get("sample")), encoder_hidden_states=_copy(
            values.get("encoder_hidden_states")), timestep=float(torch.as_tensor(timestep).flatten()[0]),
            output=_copy(sample))

    def _on_text_encoder(self, encoder, args, kwargs, output) -> None:
        input_ids = args[0] if args else kwargs.get("input_ids")
        self._add("text_encoder", encoder, input_ids=_copy(input_ids), output=_copy(output[0]))

    def _on_decode(self, vae, args, kwargs, output) -> None:
        z = args[0] if args else kwargs.get("z")
        self._add("vae_decode", vae, z=_copy(z))

    def _on_randn(self, module, args, kwargs, output) -> None:
        if not self._inside:  # the draws of an ancestral step are replayed from the generator's state
            self._add("randn", module, output=_copy(output))
        else:
            self._draws_inside += 1

    def _on_scheduler(self, name: str, scheduler, inputs: dict, out, rng_state) -> None:
        self.schedulers[id(scheduler)] = scheduler
        values = dict(inputs)
        if name == "set_timesteps":
            values["timesteps"] = _copy(scheduler.timesteps)
        elif name == "step":
            values["prev_sample"] = _copy(out[0] if isinstance(out, tuple) else out.prev_sample)
            x0 = None if isinstance(out, tuple) else getattr(out, "pred_original_sample", None)
            values["pred_original_sample"] = _copy(x0)
            values["rng_state"] = rng_state
        else:
            values["output"] = _copy(out)
        self._add(name, scheduler, **values)
