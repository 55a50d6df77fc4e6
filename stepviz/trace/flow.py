"""`stepviz.trace` for a flow loop (SD3, FLUX.1): record a hand-written flow sampling loop and name its first
divergence from the pipeline's rules, with the classic flow mistakes as causes.

    with stepviz.trace(pipe) as tr:      # pipe: a StableDiffusion3Pipeline or FluxPipeline
        ...                              # the loop: pipe.transformer, a flow scheduler, pipe.vae.decode
    report = tr.compare()
    report.first_divergence              # None when the loop does what the pipeline does

The reference is the flow pipeline's loop applied to what the loop itself drew and computed: its starting
noise, its step count, the pipeline's scheduler config (the shift, FLUX.1's mu from the picture's token count)
and the loop's own velocities. In the loop's order: the starting latents x_T = eps (no init_noise_sigma), per
step the sigma scheduled and the t the transformer reads (SD3: 1000 sigma; FLUX.1: sigma, its pipeline divides
t by 1000), the scheduler's x_{t-1} = x_t + (sigma_next - sigma) v_hat; last, the latents decoded:
latents / scaling_factor + shift_factor.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field

import torch

from .causes import FLOW_CAUSES, Cause
from .compare import Divergence, Summary, differs



@dataclass
class FlowStepSeen:
    """One scheduler step of the loop, with the transformer calls made before it."""

    index: int
    timestep: float  # what scheduler.step got
    sigma: float  # the loop's scheduler's sigma at this step
    sigma_next: float
    model_timesteps: list[float] = field(default_factory=list)  # what the transformer got, per call
    model_input: torch.Tensor | None = None  # the first call's hidden_states
    model_output: torch.Tensor | None = None  # what scheduler.step got (v_hat)
    sample: torch.Tensor | None = None
    prev_sample: torch.Tensor | None = None
    model_calls: list[dict] = field(default_factory=list)  # the transformer calls: kwargs, hidden_states, output


@dataclass
class FlowTraceReport:
    """What compare() found, with the fields a lesson's `trace` claim reads as from compare.TraceReport:
    first_divergence (step, quantity, cause) and final_difference."""

    steps: list[FlowStepSeen]
    expected_sigmas: list[float]
    first_divergence: Divergence | None = None
    final_difference: float | None = None  # max abs difference of the final latents from the pipeline's loop

    def __str__(self) -> str:
        lines = ["flow loop against the pipeline's rules (its own noise and velocities):",
                 f"{'step':>4} {'sigma loop':>11} {'sigma pipe':>11} {'t model':>10}"]
        for s in self.steps:
            expected = self.expected_sigmas[s.index] if s.index < len(self.expected_sigmas) else float("nan")
            t = ", ".join(f"{x:g}" for x in s.model_timesteps[:1])
            lines.append(f"{s.index + 1:>4} {s.sigma:>11.4f} {expected:>11.4f} {t:>10}")
        if self.final_difference is not None:
            lines.append(f"final latents: max abs difference {self.final_difference:.3g} from the pipeline's loop "
                         "on the same noise")
        d = self.first_divergence
        if d is None:
            lines.append("no divergence: the loop does what the pipeline does")
        else:
            lines.append(f"first divergence at step {d.step + 1}, {d.quantity}: the loop {d.measured}; the pipeline "
                         f"{d.expected}")
            if d.cause is not None:
                lines.append(f"cause {d.cause}")
        return "\n".join(lines)


class FlowTrace:
    """What `stepviz.trace(pipe)` is for an SD3 or FLUX.1 pipeline."""

    def __init__(self, pipe):
        from ..engine.flow_text import is_flux

        self.pipe, self.flux = pipe, is_flux(pipe)
        self._base_config = dict(pipe.scheduler.config)
        self.calls: list[tuple[str, object, dict]] = []  # (kind, owner, values) in call order
        self._mu: float | None = None  # the pipeline's dynamic shift for this picture (FLUX.1)
        self._undo: list = []
        self._replaying = False  # compare()'s own transformer and scheduler calls are not the loop's

    # ------------------------------------------------------------ recording
    def __enter__(self) -> FlowTrace:
        import diffusers

        handle = self.pipe.transformer.register_forward_hook(self._on_transformer, with_kwargs=True)
        self._undo.append(handle.remove)
        for cls in {type(self.pipe.scheduler), diffusers.FlowMatchEulerDiscreteScheduler}:
            self._wrap(cls, "step", self._on_step)
        self._wrap(self.pipe.vae, "decode", lambda owner, args, kwargs, out: self.calls.append(
            ("decode", owner, {"z": (args[0] if args else kwargs.get("z")).detach().clone()})))
        self._wrap(torch, "randn", lambda owner, args, kwargs, out: self.calls.append(
            ("randn", owner, {"output": out.detach().clone()})))
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()

    def _wrap(self, owner, name: str, on_call) -> None:
        original = getattr(owner, name)
        had_own = name in vars(owner)
        bound = isinstance(owner, type)

        @functools.wraps(original)
        def recorded(*args, **kwargs):
            out = original(*args, **kwargs)
            on_call(args[0] if bound else owner, args[1:] if bound else args, kwargs, out)
            return out

        setattr(owner, name, recorded)
        self._undo.append(lambda: setattr(owner, name, original) if had_own else delattr(owner, name))

    def _on_transformer(self, module, args, kwargs, output) -> None:
        if self._replaying:
            return
        given = dict(inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments)
        hidden = given.pop("hidden_states").detach().clone()
        timestep = given["timestep"]
        output = output[0] if isinstance(output, tuple) else output.sample
        self.calls.append(("transformer", module, {"hidden_states": hidden, "kwargs": given,
                                                   "timestep": float(torch.as_tensor(timestep).flatten()[0]),
                                                   "output": output.detach().clone()}))

    def _on_step(self, scheduler, args, kwargs, out) -> None:
        if self._replaying:
            return
        names = ("model_output", "timestep", "sample")
        values = {**dict(zip(names, args)), **{k: kwargs[k] for k in names if k in kwargs}}
        index = scheduler.step_index - 1  # step() has advanced it
        prev = out[0] if isinstance(out, tuple) else out.prev_sample
        self.calls.append(("step", scheduler, {
            "model_output": values["model_output"].detach().clone(), "sample": values["sample"].detach().clone(),
            "timestep": float(torch.as_tensor(values["timestep"]).flatten()[0]), "prev_sample": prev.detach().clone(),
            "sigma": float(scheduler.sigmas[index]), "sigma_next": float(scheduler.sigmas[index + 1])}))

    # ------------------------------------------------------------ comparing
    def steps(self) -> list[FlowStepSeen]:
        steps, pending = [], []
        for kind, _, values in self.calls:
            if kind == "transformer":
                pending.append(values)
            elif kind == "step":
                seen = FlowStepSeen(len(steps), values["timestep"], values["sigma"], values["sigma_next"],
                                    [c["timestep"] for c in pending], pending[0]["hidden_states"] if pending else None,
                                    values["model_output"], values["sample"], values["prev_sample"], pending)
                steps.append(seen)
                pending = []
        return steps

    def expected_sigmas(self, steps: list[FlowStepSeen]) -> list[float]:
        """The sigmas the pipeline schedules for this many steps at this picture size (with its shift or mu)."""
        return [float(s) for s in self.pipeline_scheduler(steps).sigmas]

    def pipeline_scheduler(self, steps: list[FlowStepSeen]):
        """The pipeline's scheduler, set as the pipeline sets it for this many steps at this picture size."""
        from ..engine import flow_schedule
        from ..engine.schedulers import copy_of

        scheduler = copy_of(self.pipe.scheduler)
        scheduler.register_to_config(**{k: v for k, v in self._base_config.items() if not k.startswith("_")})
        x = steps[0].sample
        tokens = x.shape[1] if x.ndim == 3 else (x.shape[-2] // self._patch()) * (x.shape[-1] // self._patch())
        self._mu = flow_schedule.set_timesteps(scheduler, len(steps), "cpu", flux=self.flux, image_seq_len=tokens,
                                               txt2img=True)
        return scheduler

    def _patch(self) -> int:
        return 2 if self.flux else self.pipe.transformer.config.patch_size

    def compare(self) -> FlowTraceReport:
        steps = self.steps()
        if not steps:
            raise RuntimeError("the traced block made no scheduler step: nothing to compare")
        sigmas = self.expected_sigmas(steps)
        report = FlowTraceReport(steps, sigmas)
        report.first_divergence = self._first_divergence(steps, sigmas)
        report.final_difference = self._final_difference(steps)
        return report

    def _starting_noise(self, steps: list[FlowStepSeen]) -> torch.Tensor:
        """The loop's first torch.randn where it fits its x_T (FLUX.1: packed as the loop packed it), else x_T."""
        noise = next((v["output"] for kind, _, v in self.calls if kind == "randn"), None)
        start = steps[0].sample
        if noise is None or noise.numel() != start.numel():
            return start
        if noise.shape != start.shape:  # FLUX.1: the loop packed its noise into tokens
            from ..engine.flow_layout import pack

            noise = pack(noise)
        return noise

    def _final_difference(self, steps: list[FlowStepSeen]) -> float | None:
        """Max abs difference of the loop's final latents from the pipeline's loop on the same noise and
        conditioning (flow_reference.py); None where the loop's calls cannot be replayed."""
        from .flow_reference import reference_final_latents

        self._replaying = True
        try:
            reference = reference_final_latents(self.pipe.transformer, self.pipeline_scheduler(steps), steps,
                                                self._starting_noise(steps), self.flux)
        finally:
            self._replaying = False
        final = steps[-1].prev_sample
        if reference is None or reference.shape != final.shape:
            return None
        return float((final.double() - reference.double()).abs().max())

    def _first_divergence(self, steps: list[FlowStepSeen], sigmas: list[float]) -> Divergence | None:
        noise, start = self._starting_noise(steps), steps[0].sample
        if noise is not start:
            if differs(start, noise):
                scale = float((start * noise).sum() / (noise * noise).sum())
                cause = None
                if not differs(start, noise * scale) and abs(scale - 1.0) > 1e-3:
                    cause = Cause("flow-init-noise-sigma",
                                  f"x_T = {scale:.4g} eps: {FLOW_CAUSES['flow-init-noise-sigma']}")
                return Divergence(0, "starting latents", Summary.of(start, noise), Summary.of(noise, start), cause)
        for step in steps:
            i = step.index
            expected = sigmas[i] if i < len(sigmas) else float("nan")
            if abs(step.sigma - expected) > 1e-4:
                return Divergence(i, "timestep", f"scheduled sigma {step.sigma:.4g}", f"sigma {expected:.4g}",
                                  self._schedule_cause(step.sigma, expected))
            reads = expected if self.flux else 1000.0 * expected  # FLUX.1's pipeline gives t / 1000
            for got in step.model_timesteps:
                if abs(got - reads) > 1e-3 * max(1.0, abs(reads)):
                    return Divergence(i, "timestep", f"pipe.transformer got t = {got:g}", f"t = {reads:g}",
                                      self._timestep_cause(got, reads))
            expected_prev = step.sample + (step.sigma_next - step.sigma) * step.model_output
            if differs(step.prev_sample, expected_prev):
                return Divergence(i, "scheduler output", Summary.of(step.prev_sample, expected_prev),
                                  Summary.of(expected_prev, step.prev_sample), None)
        return self._decode_divergence(steps)

    def _schedule_cause(self, got: float, expected: float) -> Cause | None:
        """The shift missing or applied twice: the loop's sigma is the pipeline's with the shift undone or redone
        (s = the config's shift, or FLUX.1's e^mu)."""
        from ..engine.flow_schedule import shifted, unshifted_sigmas

        s = math.exp(self._mu) if self._mu is not None else float(self._base_config.get("shift", 1.0))
        if s == 1.0:
            return None
        how = f"shift e^mu = {s:.4g}" if self._mu is not None else f"shift {s:g}"
        near = 5e-3  # a loop's own even grid may end at 1/1000 where the pipeline's ends at the shifted sigma_min
        if abs(got - unshifted_sigmas([expected], s, None)[0]) < near:
            return Cause("flow-shift-missing", f"sigma {got:.4g} is the pipeline's {expected:.4g} unshifted: "
                         f"{FLOW_CAUSES['flow-shift-missing']} ({how})")
        if abs(got - shifted(expected, s)) < near:
            return Cause("flow-shift-twice", f"sigma {got:.4g} is the pipeline's {expected:.4g} shifted again: "
                         f"{FLOW_CAUSES['flow-shift-twice']} ({how})")
        return None

    @staticmethod
    def _timestep_cause(got: float, reads: float) -> Cause | None:
        if abs(got * 1000.0 - reads) <= 1e-3 * max(1.0, reads):
            return Cause("flow-timestep-as-sigma", f"t = {got:g} is sigma; {FLOW_CAUSES['flow-timestep-as-sigma']} "
                         f"= {reads:g}")
        if abs(got - reads * 1000.0) <= 1e-3 * max(1.0, reads * 1000.0):
            return Cause("flow-timestep-times-1000", f"t = {got:g}, not {reads:g}: "
                         f"{FLOW_CAUSES['flow-timestep-times-1000']}")
        return None

    def _decode_divergence(self, steps: list[FlowStepSeen]) -> Divergence | None:
        decoded = next((v["z"] for kind, _, v in reversed(self.calls) if kind == "decode"), None)
        if decoded is None:
            return None
        final = steps[-1].prev_sample
        if final.ndim == 3:  # FLUX.1: tokens back to [1, C, h, w] as the decode saw them
            from ..engine.flow_layout import unpack

            final = unpack(final, *decoded.shape[-2:])
        vae = self.pipe.vae.config
        expected = final / vae.scaling_factor + vae.shift_factor
        if not differs(decoded, expected):
            return None
        cause = None
        if not differs(decoded, final / vae.scaling_factor):
            cause = Cause("flow-decode-shift-factor", f"{FLOW_CAUSES['flow-decode-shift-factor']} "
                          f"({vae.shift_factor:g})")
        return Divergence(len(steps) - 1, "decode", Summary.of(decoded, expected), Summary.of(expected, decoded), cause)
