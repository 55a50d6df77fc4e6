"""What the pipeline would have done with the loop's own inputs: infer them, then run the engine's Stepper.

Everything is read from the recording, nothing is passed in:

    scheduler            the class the loop stepped, built `from_config` on the pipeline's config (as diffusers'
                         pipelines and the course's `pipe.scheduler = LMSDiscreteScheduler.from_config(...)` do)
    num_inference_steps  the count whose schedule has as many steps as the loop ran (img2img: set_timesteps')
    guidance_scale       s of the least-squares fit eps_hat = a eps_uncond + b eps_text at the first step
    prompt embeddings    the UNet's encoder_hidden_states, per branch
    starting noise       the torch.randn draw that x_T is a multiple of (img2img: add_noise's noise)
    img2img              an add_noise before the loop: its image latents and noise; strength from the step count
    inpaint blend        add_noise after each step: the mask (1 = repaint) read from the blended latents

The reference uses the loop's own random numbers (starting noise, the blend's noise, an ancestral step's
generator state); only the rules are the pipeline's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .loop import LoopRecording, LoopStep, read_loop
from .recorder import Recorder


@dataclass
class GuidanceFit:
    """eps_hat ~ a eps_uncond + b eps_text. Classifier-free guidance is a + b = 1 with s = b."""

    a: float
    b: float
    residual: float  # max abs of what the fit leaves, relative to max |eps_hat|

    @property
    def is_cfg(self) -> bool:
        return abs(self.a + self.b - 1.0) < 1e-3 and self.residual < 1e-3

    @property
    def swapped(self) -> bool:
        """eps_text + s (eps_uncond - eps_text) = s eps_uncond + (1 - s) eps_text, with s > 1."""
        return self.is_cfg and self.b < 0 < self.a


@dataclass
class InferredRun:
    scheduler: object  # a fresh reference scheduler (not yet set)
    num_inference_steps: int
    guidance_scale: float
    guidance_fit: GuidanceFit | None
    mode: str  # "txt2img" or "img2img"
    noise: torch.Tensor
    noise_scale: float | None  # x_T = noise_scale * noise (txt2img)
    noise_source: str
    embeds_uncond: torch.Tensor
    embeds_text: torch.Tensor
    strength: float | None = None
    image_latents: torch.Tensor | None = None
    mask: torch.Tensor | None = None  # inpaint blend, [1, 1, h, w], 1 = repaint
    rng_state: torch.Tensor | None = None
    notes: list[str] = field(default_factory=list)


def fit_guidance(step: LoopStep) -> GuidanceFit | None:
    if step.eps_uncond is None or step.eps_text is None:
        return None
    u, c, e = (x.double().flatten().cpu() for x in (step.eps_uncond, step.eps_text, step.noise_pred))
    if torch.equal(u, c):
        return None
    solution = torch.linalg.lstsq(torch.stack([u, c], dim=1), e[:, None]).solution.flatten()
    a, b = float(solution[0]), float(solution[1])
    residual = float((e - a * u - b * c).abs().max() / e.abs().max().clamp_min(1e-12))
    return GuidanceFit(a, b, residual)


def reference_scheduler(loop: LoopRecording, base_config):
    """The loop's scheduler class, built from the pipeline's config as the pipeline's constructor would."""
    from ..engine.schedulers import SCHEDULERS, info_for, make_scheduler

    name = info_for(loop.scheduler).name
    if name in SCHEDULERS:
        return make_scheduler(name, base_config)
    return type(loop.scheduler).from_config(base_config)


def timesteps_for(scheduler_cls, base_config, num_inference_steps: int) -> torch.Tensor:
    probe = scheduler_cls.from_config(base_config)
    probe.set_timesteps(num_inference_steps)
    return probe.timesteps


def infer(loop: LoopRecording, base_config) -> InferredRun:
    if not loop.steps:
        raise ValueError("the traced code never called scheduler.step(): there is no loop to compare")
    first = loop.steps[0]
    if first.eps_text is None:
        raise ValueError("the traced code never called pipe.unet before scheduler.step(): nothing to compare")
    cls = type(loop.scheduler)
    asked = loop.set_timesteps.get(first.scheduler_id, {}).get("num_inference_steps")
    count, notes = len(loop.steps), []
    fit = fit_guidance(first)
    if fit is None:
        scale = 1.0
    else:
        scale = round(fit.a if fit.swapped else fit.b, 4)
    uncond = first.embeds_uncond if first.embeds_uncond is not None else first.embeds_text
    run = InferredRun(scheduler=reference_scheduler(loop, base_config), num_inference_steps=asked or count,
                      guidance_scale=scale, guidance_fit=fit, mode="txt2img", noise=first.latents, noise_scale=None,
                      noise_source="", embeds_uncond=uncond, embeds_text=first.embeds_text,
                      rng_state=first.rng_state, notes=notes)
    if loop.start_add_noise is not None:
        start = loop.start_add_noise
        run.mode, run.noise, run.image_latents = "img2img", start["noise"], start["original_samples"]
        run.noise_source = "add_noise's noise before the loop"
        order = max(1, int(getattr(run.scheduler, "order", 1)))
        taken = min(max(round(count / order), 1), run.num_inference_steps)
        run.strength = 1.0 if taken == run.num_inference_steps else (taken + 0.5) / run.num_inference_steps
    else:
        run.num_inference_steps = _steps_for_count(cls, base_config, count, asked)
        run.noise, run.noise_scale, run.noise_source = _starting_noise(loop, run)
    if any(step.blends for step in loop.steps):
        run.mask, run.image_latents = _blend_mask(loop), _blended_image(loop)
    return run


def _steps_for_count(cls, base_config, count: int, asked: int | None) -> int:
    """The num_inference_steps whose schedule has `count` scheduler steps (PNDM: N + 1, Heun: 2N - 1)."""
    for n in [asked, *range(1, count + 2)]:
        if n and len(timesteps_for(cls, base_config, n)) == count:
            return n
    return asked or count


def _starting_noise(loop: LoopRecording, run: InferredRun):
    """(eps, c, where it came from) with x_T = c eps."""
    x_t = loop.steps[0].latents
    flat_x = x_t.double().flatten()
    for k, draw in enumerate(loop.draws):
        if draw.shape != x_t.shape:
            continue
        flat_d = draw.double().flatten().to(flat_x.device)
        scale = float(flat_x @ flat_d / (flat_d @ flat_d).clamp_min(1e-30))
        if float((flat_x - scale * flat_d).abs().max()) <= 1e-5 * float(flat_x.abs().max()) + 1e-7:
            return draw, scale, f"torch.randn draw #{k + 1} x {scale:.4g}"
    # No draw seen (made before the trace): take the nearest of the two scales a loop uses.
    reference = run.scheduler
    reference.set_timesteps(run.num_inference_steps)
    fresh = type(reference).from_config(reference.config)
    candidates = [float(fresh.init_noise_sigma), float(reference.init_noise_sigma)]
    std = float(x_t.double().std())
    scale = min(candidates, key=lambda c: abs(c - std))
    run.scheduler = type(reference).from_config(reference.config)
    return x_t / scale, scale, f"x_T / {scale:.4g} (no torch.randn draw seen; std {std:.3g})"


def _blend_mask(loop: LoopRecording) -> torch.Tensor:
    """m in carried = m * prev_sample + (1 - m) * background, read where the two differ most."""
    step = next(s for s in loop.steps if s.blends and s.carried is not None and s.index + 1 < len(loop.steps))
    background = step.blends[-1]["output"]
    near_denoised = (step.carried - step.prev_sample).abs() <= (step.carried - background).abs()
    return near_denoised.float().mean(dim=1, keepdim=True).round().to(step.prev_sample.dtype)


def _blended_image(loop: LoopRecording) -> torch.Tensor:
    return next(s for s in loop.steps if s.blends).blends[-1]["original_samples"]


def run_reference(pipe, run: InferredRun, loop: LoopRecording):
    """The Stepper on the inferred inputs, recorded like the loop; (recording, stepper)."""
    from ..engine.stepper import Stepper

    image = dict(image=run.image_latents, strength=run.strength) if run.mode == "img2img" else {}
    with Recorder(pipe) as recorder:
        st = Stepper(pipe, prompt="", negative_prompt="", seed=None, num_inference_steps=run.num_inference_steps,
                     guidance_scale=run.guidance_scale, scheduler=run.scheduler, mode=run.mode, latents=run.noise,
                     prompt_embeds=run.embeds_text, negative_prompt_embeds=run.embeds_uncond, **image)
        if run.rng_state is not None:
            st.generator.set_state(run.rng_state)
        while not st.done:
            i = len(st.records)
            st.step()
            if run.mask is not None:
                _blend(st, run, loop.steps[i] if i < len(loop.steps) else None, last=st.done)
    reference = read_loop(recorder.events, recorder.schedulers)
    if run.mask is not None and reference.steps:
        reference.steps[-1].carried = st.latents
    return reference, st


def _blend(st, run: InferredRun, user_step: LoopStep | None, last: bool) -> None:
    """The inpaint blend as diffusers' inpaint pipeline does it: re-noise to the next t; the clean image at the end."""
    if last:
        background = run.image_latents
    else:
        noise = user_step.blends[-1]["noise"] if user_step is not None and user_step.blends else run.noise
        t_next = st.timesteps[len(st.records)]
        background = st.scheduler.add_noise(run.image_latents, noise, torch.tensor([t_next]))
    st.latents = (1 - run.mask) * background + run.mask * st.latents
