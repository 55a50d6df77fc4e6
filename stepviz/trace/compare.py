"""`stepviz.trace`: record a hand-written sampling loop and name its first divergence from the pipeline.

    with stepviz.trace(pipe) as tr:
        ...                       # the loop, calling pipe.unet, pipe.scheduler, pipe.vae as it likes
    report = tr.compare()
    print(report)                 # step by step against the reference, and the verdict
    report.first_divergence       # None when the loop does what the pipeline does

The reference is the engine's Stepper (bit-exact with diffusers' pipelines) run on what the loop used:
its scheduler class, step count, guidance scale, prompt embeddings and starting noise (reference.py).
Quantities are compared in the order the loop makes them (the numbered steps of engine/stepper.py): the
starting latents x_T, then per step t, the scaled model input (2), the UNet branches (3), the guidance
combination eps_hat (4), the scheduler's x_{t-1} (5) and the inpaint blend (6); last, the latents decoded.
The first one that differs beyond float rounding is the first divergence; causes.py says why, if it can.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .causes import Cause, diagnose
from .loop import LoopRecording, read_loop, split_loops
from .recorder import Recorder
from .reference import InferredRun, infer, run_reference

QUANTITIES = ("starting latents", "timestep", "scaled model input", "UNet branches", "guidance combination",
              "scheduler output", "blend", "decode")
RTOL, ATOL = 1e-4, 1e-5  # float32 rounding of equivalent formulas stays far below this over a whole run


@dataclass(frozen=True)
class Summary:
    shape: tuple[int, ...]
    mean: float
    std: float
    max_abs_diff: float  # against the other side

    @classmethod
    def of(cls, tensor: torch.Tensor, other: torch.Tensor) -> Summary:
        x = tensor.detach().double().cpu()
        diff = float((x - other.detach().double().cpu()).abs().max()) if x.shape == other.shape else float("nan")
        return cls(tuple(x.shape), float(x.mean()), float(x.std()) if x.numel() > 1 else 0.0, diff)

    def __str__(self) -> str:
        return (f"shape {list(self.shape)}, mean {self.mean:.4g}, std {self.std:.4g}, "
                f"max abs diff {self.max_abs_diff:.3g}")


@dataclass(frozen=True)
class Divergence:
    step: int  # 0-based loop index
    quantity: str  # one of QUANTITIES
    measured: Summary | str  # the loop's
    expected: Summary | str  # the pipeline's
    cause: Cause | None


@dataclass
class TraceReport:
    user: LoopRecording
    reference: LoopRecording
    run: InferredRun
    first_divergence: Divergence | None
    rows: list[tuple] = field(default_factory=list)  # (step, t loop, t pipeline, diffs per column)
    final_difference: float | None = None  # max abs difference of the final latents

    def __str__(self) -> str:
        from .report_text import report_text

        return report_text(self)


def differs(measured: torch.Tensor | None, expected: torch.Tensor | None) -> bool:
    if measured is None or expected is None:
        return (measured is None) != (expected is None)
    if measured.shape != expected.shape:
        return True
    a, b = measured.detach().double().cpu(), expected.detach().double().cpu()
    return float((a - b).abs().max()) > ATOL + RTOL * float(b.abs().max())


def _max_diff(a, b) -> float:
    if a is None or b is None or a.shape != b.shape:
        return float("nan")
    return float((a.detach().double().cpu() - b.detach().double().cpu()).abs().max())


class Trace:
    """The context manager `stepviz.trace(pipe)` returns."""

    def __init__(self, pipe):
        self.pipe = pipe
        self._recorder: Recorder | None = None
        self._base_config = None
        self.recording: LoopRecording | None = None

    def __enter__(self) -> Trace:
        from ..engine.checks import StepvizInputError
        from ..engine.families import is_sdxl

        if is_sdxl(self.pipe):
            raise StepvizInputError("stepviz.trace follows Stable Diffusion 1.x/2.x loops; an SDXL loop (two text "
                                    "encoders, added_cond_kwargs) is not traced yet")
        self._base_config = self.pipe.scheduler.config  # the pipeline's own configuration, before any swap
        self._recorder = Recorder(self.pipe).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._recorder.__exit__(*exc)
        self.recording = read_loop(self._recorder.events, self._recorder.schedulers, self.pipe.tokenizer)

    def loops(self) -> list[Trace]:
        """One Trace per loop recorded that called this pipeline's UNet (a script may run several loops, or
        build several pipelines whose schedulers every recorder sees)."""
        unet = id(self.pipe.unet)
        found = []
        for events in split_loops(self._recorder.events):
            if any(event.kind == "unet" and event.owner == unet for event in events):
                single = Trace(self.pipe)
                single._base_config = self._base_config
                single.recording = read_loop(events, self._recorder.schedulers, self.pipe.tokenizer)
                found.append(single)
        return found

    def compare(self) -> TraceReport:
        if self.recording is None:
            raise RuntimeError("compare() runs after the `with stepviz.trace(pipe)` block has ended")
        user = self.recording
        run = infer(user, self._base_config)
        reference, self.reference_stepper = run_reference(self.pipe, run, user)
        report = TraceReport(user, reference, run, None)
        self._run = run
        found = self._walk(user, reference, report)
        if found is not None:
            step, quantity, measured, expected = found
            cause = diagnose(quantity, step, user, reference, run, self.pipe, self._base_config)
            report.first_divergence = Divergence(step, quantity, measured, expected, cause)
        final = user.final_latents
        if run.mask is not None and user.decode_input is not None:  # the last blend is seen in the decode only
            final = user.decode_input * self.pipe.vae.config.scaling_factor
        if final is not None and reference.final_latents is not None:
            report.final_difference = _max_diff(final, reference.final_latents)
        return report

    def _walk(self, user: LoopRecording, reference: LoopRecording, report: TraceReport):
        """Fill the table; return the first (step, quantity, measured, expected) that differs, or None."""
        first = None
        inpaint, last, decoded = self._run.mask is not None, len(user.steps) - 1, user.decode_input

        def check(step, quantity, measured, expected):
            nonlocal first
            if first is None and differs(measured, expected):
                if isinstance(measured, torch.Tensor) and isinstance(expected, torch.Tensor):
                    first = (step, quantity, Summary.of(measured, expected), Summary.of(expected, measured))
                else:
                    first = (step, quantity, _describe(measured), _describe(expected))

        for u, r in zip(user.steps, reference.steps):
            i = u.index
            if i == 0:
                check(i, "starting latents", u.latents, r.latents)
            first = first or _timestep_divergence(u, r)
            ref_input, ref_branches = r.model_input, _branches(r)
            if u.eps_uncond is None and r.eps_uncond is not None:  # the prompt branch alone: diffusers at s <= 1
                ref_input, ref_branches = r.model_input[-1:], r.eps_text
            check(i, "scaled model input", u.model_input, ref_input)
            check(i, "UNet branches", _branches(u), ref_branches)
            check(i, "guidance combination", u.noise_pred, r.noise_pred)
            check(i, "scheduler output", u.prev_sample, r.prev_sample)
            if inpaint and not (i == last and decoded is not None):  # the last blend shows in the decode
                check(i, "blend", u.carried, r.carried)
            report.rows.append((i, _call_timesteps(u), r.timestep, _max_diff(u.model_input, ref_input),
                                _max_diff(u.noise_pred, r.noise_pred), _max_diff(u.carried, r.carried)))
        if first is None and len(user.steps) != len(reference.steps):
            at = min(len(user.steps), len(reference.steps))
            first = (at, "timestep", f"{len(user.steps)} steps", f"{len(reference.steps)} steps")
        if decoded is not None and reference.final_latents is not None:
            factor = self.pipe.vae.config.scaling_factor
            expected = reference.final_latents / factor
            if inpaint and differs(decoded, expected) and not differs(decoded * factor, user.steps[-1].prev_sample):
                check(last, "blend", decoded * factor, reference.final_latents)  # the loop skipped the last blend
            check(last, "decode", decoded, expected)
        return first


def _timestep_divergence(u, r) -> tuple | None:
    """(step, "timestep", measured, expected) when the loop's UNet or scheduler got another t than the pipeline's."""
    if None not in (u.unet_timestep, r.unet_timestep) and u.unet_timestep != r.unet_timestep:
        return u.index, "timestep", f"pipe.unet got t = {u.unet_timestep:g}", f"t = {r.unet_timestep:g}"
    if u.timestep != r.timestep:
        return u.index, "timestep", f"scheduler.step got t = {u.timestep:g}", f"t = {r.timestep:g}"
    return None


def _call_timesteps(step) -> str:
    """The t of a loop step as its calls got it: one number, or 'unet|step' when the UNet got another t."""
    if step.unet_timestep is None or step.unet_timestep == step.timestep:
        return f"{step.timestep:g}"
    return f"{step.unet_timestep:g}|{step.timestep:g}"


def _branches(step) -> torch.Tensor | None:
    parts = [x for x in (step.eps_uncond, step.eps_text) if x is not None]
    return torch.cat(parts) if parts else None


def _describe(value) -> str:
    return "missing" if value is None else f"shape {list(value.shape)}"
