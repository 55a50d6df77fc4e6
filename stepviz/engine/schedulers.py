"""The schedulers stepviz lists, their family (VP, sigma or flow: noise_scale.py), making and swapping them,
and the noise level of a run's steps (x0-hat per family: prediction.py).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

from .checks import check_choice
from .constructor_fixes import apply_fixes, effective_config, pipeline_class_for
from .noise_scale import abar_of, sigma_of, to_vp_scale


@dataclass(frozen=True)
class SchedulerInfo:
    name: str
    class_name: str
    family: str  # "vp", "sigma" or "flow" (SD3, FLUX.1: flow_schedule.py)
    order: int  # model calls per timestep (Heun: 2) or multistep history length
    multistep: bool
    description: str


SCHEDULERS: dict[str, SchedulerInfo] = {
    info.name: info
    for info in (
        SchedulerInfo("ddim", "DDIMScheduler", "vp", 1, False, "DDIM, deterministic (eta=0)"),
        SchedulerInfo("ddpm", "DDPMScheduler", "vp", 1, False, "DDPM, ancestral (draws noise)"),
        SchedulerInfo("pndm", "PNDMScheduler", "vp", 4, True, "PNDM / PLMS, 4-step history"),
        SchedulerInfo("lms", "LMSDiscreteScheduler", "sigma", 4, True, "linear multistep, 4-step history"),
        SchedulerInfo("euler", "EulerDiscreteScheduler", "sigma", 1, False, "Euler (k-diffusion)"),
        SchedulerInfo("euler_a", "EulerAncestralDiscreteScheduler", "sigma", 1, False, "Euler ancestral (draws noise)"),
        SchedulerInfo("heun", "HeunDiscreteScheduler", "sigma", 2, False, "Heun, two model calls per timestep"),
        SchedulerInfo("dpmpp_2m", "DPMSolverMultistepScheduler", "vp", 2, True, "DPM-Solver++ 2M"),
        SchedulerInfo("unipc", "UniPCMultistepScheduler", "vp", 2, True, "UniPC predictor-corrector"),
        SchedulerInfo("deis", "DEISMultistepScheduler", "vp", 2, True, "DEIS multistep"),
    )
}

# the flow family's (SD3, FLUX.1: flow_schedule.py), apart: an SD/SDXL run cannot use them, nor a flow run the above
FLOW_SCHEDULERS: dict[str, SchedulerInfo] = {
    info.name: info
    for info in (
        SchedulerInfo("flow_euler", "FlowMatchEulerDiscreteScheduler", "flow", 1, False,
                      "flow matching Euler (SD3, FLUX.1's own)"),
        SchedulerInfo("flow_dpmpp_2m", "DPMSolverMultistepScheduler", "flow", 2, True,
                      "DPM-Solver++ 2M on flow sigmas (flow_prediction)"),
        SchedulerInfo("flow_unipc", "UniPCMultistepScheduler", "flow", 2, True,
                      "UniPC on flow sigmas (flow_prediction)"),
    )
}
ALL_SCHEDULERS = {**SCHEDULERS, **FLOW_SCHEDULERS}


def family_schedulers(family: str) -> dict[str, SchedulerInfo]:
    """The schedulers a run of this latent family can swap to: the flow ones for a flow run, else the others."""
    return FLOW_SCHEDULERS if family == "flow" else SCHEDULERS


_SIGMA_CLASSES = {
    "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler",
    "LMSDiscreteScheduler",
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "DPMSolverSDEScheduler",
}


def check_scheduler_name(name: str, key: str = "scheduler") -> None:
    """`name` is one of ALL_SCHEDULERS, else one line naming `key`, the value and the allowed names."""
    check_choice(key, name, ALL_SCHEDULERS, "schedulers")


def info_for(scheduler) -> SchedulerInfo:
    """The table entry for a scheduler instance (or a made-up one for a class we do not list)."""
    from .flow_schedule import is_flow_scheduler

    cls_name = type(scheduler).__name__
    flow = is_flow_scheduler(scheduler)
    for info in ALL_SCHEDULERS.values():
        if info.class_name == cls_name and (info.family == "flow") == flow:
            return info
    family = "flow" if flow else "sigma" if cls_name in _SIGMA_CLASSES else "vp"
    return SchedulerInfo(cls_name, cls_name, family, getattr(scheduler, "order", 1), False, cls_name)


def make_scheduler(name: str, config, *, pipeline_class: str | None = "StableDiffusionPipeline", **overrides):
    """A fresh scheduler by stepviz name, as diffusers makes one: `Class.from_config(pipe.scheduler.config)`,
    then what `pipeline_class`'s constructor rewrites in it (constructor_fixes.py; None: nothing). Keys given
    in `overrides` are kept as given."""
    import diffusers

    check_scheduler_name(name)
    if name in FLOW_SCHEDULERS:  # from a flow model's config: the shift carried over
        from .flow_schedule import make_flow_scheduler

        return make_flow_scheduler(name, config)
    cls = getattr(diffusers, SCHEDULERS[name].class_name)
    scheduler = cls.from_config(config, **overrides)
    apply_fixes(scheduler, pipeline_class, keep=overrides)
    return scheduler


def copy_of(scheduler, **overrides):
    """A fresh scheduler of the same class and the config it runs with, fixes included (the pipeline's own
    one stays untouched)."""
    return type(scheduler).from_config(effective_config(scheduler.config), **overrides)


def scheduler_for(pipe, mode: str, scheduler=None, **overrides):
    """The scheduler a run of `mode` steps with, built exactly as that mode's diffusers pipeline would hold it.

    None: the pipeline's own, copied with its config as it runs (the fixes its constructor applied kept); when
    another pipeline class runs the mode (an inpaint run of a StableDiffusionPipeline's components), that
    class's constructor fixes are applied too. A name: `Class.from_config(pipe.scheduler.config)` and the
    mode's constructor fixes. An instance is used as given. `overrides` (e.g. timestep_spacing) are kept.
    """
    pipeline_class = pipeline_class_for(pipe, mode)
    if scheduler is None:
        scheduler = copy_of(pipe.scheduler, **overrides)
        if pipeline_class != type(pipe).__name__:
            apply_fixes(scheduler, pipeline_class, keep=overrides)
        return scheduler
    if isinstance(scheduler, str):
        if scheduler in FLOW_SCHEDULERS:  # an SD/SDXL model on the flow path: refused, saying why
            from .checks import StepvizInputError
            from .noise_scale import family_mismatch

            raise StepvizInputError(family_mismatch(info_for(pipe.scheduler).family, "flow", scheduler))
        return make_scheduler(scheduler, pipe.scheduler.config, pipeline_class=pipeline_class, **overrides)
    return scheduler


def accepts(method, name: str) -> bool:
    return name in inspect.signature(method).parameters


@functools.cache
def _step_parameters(cls) -> frozenset[str]:
    """The names step() takes, looked up once per scheduler class (step() runs every iteration)."""
    return frozenset(inspect.signature(cls.step).parameters)


def step_kwargs(scheduler, generator, swapped: bool, steps_since_swap: int) -> dict:
    """The extra arguments of scheduler.step(), as diffusers' prepare_extra_step_kwargs passes them."""
    kwargs = {}
    parameters = _step_parameters(type(scheduler))
    if "generator" in parameters:
        kwargs["generator"] = generator
    if "eta" in parameters:
        kwargs["eta"] = 0.0
    if swapped and type(scheduler).__name__ == "LMSDiscreteScheduler":
        # a fresh LMS after a swap has only the history gathered since: use that many terms
        kwargs["order"] = min(steps_since_swap + 1, 4)
    return kwargs


def noise_level(scheduler, loop_index: int, t) -> tuple[float, float]:
    """(sigma_t, abar_t) of the scheduler's loop position `loop_index` with timestep t."""
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None and loop_index < len(sigmas):
        sigma = float(sigmas[loop_index])
        return sigma, abar_of(sigma)
    return trained_noise_level(scheduler, t)


def trained_noise_level(scheduler, t) -> tuple[float, float]:
    """(sigma_t, abar_t) of the training schedule at timestep t (alphas_cumprod at the nearest integer t)."""
    abar = float(scheduler.alphas_cumprod[int(round(float(t)))])
    return sigma_of(abar), abar


def final_noise_level(scheduler) -> tuple[float, float]:
    """(sigma, abar) the last step lands on: 0 and 1 (the clean picture) unless the scheduler stops short.

    DDIM and PNDM step to `final_alpha_cumprod`, which is alphas_cumprod[0] when the config has
    set_alpha_to_one = false (Stable Diffusion's: abar = 0.99915, sigma = 0.029); sigma schedulers end at 0.
    """
    abar = getattr(scheduler, "final_alpha_cumprod", None)
    if abar is None:
        return 0.0, 1.0
    abar = float(abar)
    return sigma_of(abar), abar


def start_on_vp_scale(stepper):
    """The run's starting latents on the VP scale, at the noise level of its first step.

    Taken from the stepper's inputs, so it holds also after steps, swaps and forks; the noise level is the
    first record's once there is one, else the scheduler's at the loop's start.
    """
    start, scheduler, timesteps = stepper.run_inputs.latents, stepper.scheduler, stepper.timesteps
    if stepper.records:
        family, sigma = stepper.records[0].family, stepper.records[0].sigma
    elif len(timesteps):
        family = info_for(scheduler).family
        sigma, _ = noise_level(scheduler, getattr(scheduler, "begin_index", None) or 0, timesteps[0])
    else:
        return start
    return to_vp_scale(start, family, sigma)


def history_fill(scheduler) -> tuple[int, int] | None:
    """(filled, capacity) of a multistep solver's history, or None for one-step schedulers."""
    name = type(scheduler).__name__
    if name == "LMSDiscreteScheduler":
        return len(scheduler.derivatives), 4
    if name == "PNDMScheduler":
        return len(scheduler.ets), 4
    if hasattr(scheduler, "model_outputs") and hasattr(scheduler, "lower_order_nums"):
        capacity = int(scheduler.config.solver_order)
        return min(int(scheduler.lower_order_nums), capacity), capacity
    return None


def first_order_grid(timesteps) -> list[float]:
    """The distinct noise levels a loop visits: Heun's and PNDM's repeated timesteps collapsed."""
    grid: list[float] = []
    for t in (float(x) for x in timesteps):
        if not grid or grid[-1] != t:
            grid.append(t)
    return grid


def set_up_swap(name: str, base_config, old, grid: list[float], t_now: float, num_steps: int, device,
                pipeline_class: str | None = "StableDiffusionPipeline"):
    """A new scheduler that continues at noise level t_now on the run's grid.

    Returns (scheduler, loop_timesteps, begin_index, notice). The new scheduler gets the old one's
    timestep spacing and offset; where its grid still differs and it takes custom `timesteps`, the
    run's grid is passed explicitly. Where neither gives t_now, the nearest grid point is used and
    the notice says so.
    """
    overrides = {
        key: old.config[key] for key in ("timestep_spacing", "steps_offset") if key in old.config
    }
    new = make_scheduler(name, base_config, pipeline_class=pipeline_class, **overrides)
    new.set_timesteps(num_steps, device=device)
    notice = None
    if first_order_grid(new.timesteps) != grid and accepts(new.set_timesteps, "timesteps"):
        new.set_timesteps(timesteps=[int(round(t)) for t in grid], device=device)
    new_grid = first_order_grid(new.timesteps)
    k = min(range(len(new_grid)), key=lambda j: abs(new_grid[j] - t_now))
    if new_grid[k] != t_now:
        notice = f"{name} has no timestep {t_now:g} on its grid; continuing at the nearest, {new_grid[k]:g}"
    if type(new).__name__ == "PNDMScheduler":
        # PNDM has no begin index: replay its warm-up pattern (t_k, t_k+1, t_k+1, ...) from here.
        rest = new_grid[k:]
        loop = rest[:1] + rest[1:2] + rest[1:]
        import torch

        return new, torch.tensor(loop, device=device, dtype=new.timesteps.dtype), 0, notice
    begin = k * new.order
    if hasattr(new, "set_begin_index"):
        new.set_begin_index(begin)
    return new, new.timesteps[begin:], begin, notice


def schedule_curve(scheduler) -> tuple[float, ...]:
    """The training schedule the schedule panel draws, one value per timestep: alphas_cumprod (VP and sigma
    families), or for a flow scheduler 1 - sigma before the shift (flow_schedule.training_curve)."""
    from .flow_schedule import is_flow_scheduler, training_curve

    if is_flow_scheduler(scheduler):
        return training_curve(scheduler)
    return tuple(float(a) for a in scheduler.alphas_cumprod)
