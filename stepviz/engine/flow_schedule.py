"""The flow family's schedule: sigma in [0, 1], its shift, the timesteps the transformer gets, and the flow
schedulers made from a flow model's config.

    x_t = (1 - sigma) x0 + sigma eps          the straight path (Lipman et al. 2023, Liu et al. 2023)
    t   = 1000 sigma                          what the transformer is given (FLUX.1: t / 1000 inside the call)
    shift s:  sigma' = s sigma / (1 + (s - 1) sigma)      SD3: s = 3.0 (Esser et al. 2024, eq. 23)
    dynamic:  sigma' = e^mu / (e^mu + (1 / sigma - 1))    FLUX.1: mu from the image's token count, so s = e^mu

A shift > 1 keeps sigma near 1 for more of the steps: the model spends its steps at high noise, where the
picture's layout is decided. diffusers' FlowMatchEulerDiscreteScheduler shifts as above; DPMSolverMultistep and
UniPCMultistep do the same with `use_flow_sigmas=True` (`flow_shift` for s) and predict with
`prediction_type="flow_prediction"`. Timesteps are set exactly as diffusers' StableDiffusion3* and Flux*
pipelines set them (same calls, same bits).
"""

from __future__ import annotations

import math

# stepviz name -> (diffusers class, what the flow variant's config adds)
FLOW_VARIANTS = {
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "flow_dpmpp_2m": ("DPMSolverMultistepScheduler", {"prediction_type": "flow_prediction", "use_flow_sigmas": True}),
    "flow_unipc": ("UniPCMultistepScheduler", {"prediction_type": "flow_prediction", "use_flow_sigmas": True}),
}
# the SD3 pipelines' fallback for max_shift where a config has none (FLUX.1's is 1.15), diffusers 0.42
SD3_MAX_SHIFT, FLUX_MAX_SHIFT = 1.16, 1.15


def is_flow_scheduler(scheduler) -> bool:
    """A scheduler on the flow path: FlowMatch*, or a multistep solver with flow sigmas."""
    return type(scheduler).__name__.startswith("FlowMatch") or bool(scheduler.config.get("use_flow_sigmas", False))


def shift_of(scheduler) -> float:
    """The fixed shift s of a flow scheduler's config (FlowMatch: `shift`; multistep: `flow_shift`)."""
    config = scheduler.config
    return float(config.get("shift", config.get("flow_shift", 1.0)))


def shifted(sigma: float, shift: float) -> float:
    """sigma' = s sigma / (1 + (s - 1) sigma): the shift's map, the same for the fixed and dynamic kinds."""
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


def mu_for(config, image_seq_len: int, max_shift_fallback: float) -> float:
    """diffusers' calculate_shift: mu linear in the image's token count, from base_shift at
    base_image_seq_len to max_shift at max_image_seq_len (FLUX.1: 0.5 at 256 tokens, 1.15 at 4096)."""
    base_len, max_len = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    base_shift, max_shift = config.get("base_shift", 0.5), config.get("max_shift", max_shift_fallback)
    m = (max_shift - base_shift) / (max_len - base_len)
    b = base_shift - m * base_len
    return image_seq_len * m + b


def set_timesteps(scheduler, num_steps: int, device, *, flux: bool, image_seq_len: int, txt2img: bool):
    """Set the pipeline's timesteps; returns mu where the scheduler shifts by resolution (else None).

    SD3's pipelines pass mu only when the config shifts dynamically, and no sigmas; FLUX.1's always pass mu and
    the sigmas linspace(1, 1/N, N) (FluxPipeline drops them for a scheduler with flow sigmas, its img2img and
    inpaint pipelines do not)."""
    config = scheduler.config
    dynamic = bool(config.get("use_dynamic_shifting", False))
    mu = mu_for(config, image_seq_len, FLUX_MAX_SHIFT if flux else SD3_MAX_SHIFT) if (dynamic or flux) else None
    import numpy as np

    sigmas = None
    if flux and not (txt2img and config.get("use_flow_sigmas", False)):
        sigmas = np.linspace(1.0, 1 / num_steps, num_steps)
    kwargs = {} if mu is None else {"mu": mu}
    if sigmas is not None:
        scheduler.set_timesteps(sigmas=sigmas, device=device, **kwargs)
    else:
        scheduler.set_timesteps(num_steps, device=device, **kwargs)
    return mu if dynamic else None


def strength_timesteps(scheduler, num_steps: int, strength: float):
    """The SD3/FLUX.1 img2img get_timesteps: skip the first N - N * strength steps (no int() before the
    subtraction, unlike SD's), and set the scheduler's begin index there. Returns (timesteps, begin)."""
    from .checks import StepvizInputError

    init_timestep = min(num_steps * strength, num_steps)
    t_start = int(max(num_steps - init_timestep, 0))
    if num_steps - t_start < 1:
        raise StepvizInputError(f"strength={strength} with {num_steps} steps leaves no step to run: raise strength "
                                "or num_inference_steps")
    begin = t_start * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:], begin


def unshifted_sigmas(sigmas, shift: float | None, mu: float | None) -> list[float]:
    """The schedule before its shift (the inverse map), for the schedule plot: sigma = sigma' / (s - (s - 1) sigma')."""
    s = math.exp(mu) if mu is not None else (shift or 1.0)
    return [float(x) / (s - (s - 1.0) * float(x)) for x in sigmas]


def make_flow_scheduler(name: str, base_config):
    """A flow scheduler by stepviz name from a flow model's scheduler config: the shift carried over (FlowMatch's
    `shift` <-> the multistep solvers' `flow_shift`), dynamic shifting too."""
    import diffusers

    class_name, extra = FLOW_VARIANTS[name]
    config = dict(base_config)
    shift = float(config.get("shift", config.get("flow_shift", 1.0)))
    cls = getattr(diffusers, class_name)
    if class_name.startswith("FlowMatch"):
        overrides = {"shift": shift}
    else:
        overrides = {**extra, "flow_shift": shift}
    for key in ("use_dynamic_shifting", "base_shift", "max_shift", "base_image_seq_len", "max_image_seq_len",
                "num_train_timesteps"):
        if key in config:
            overrides[key] = config[key]
    return cls.from_config({k: v for k, v in config.items() if not k.startswith("_")}, **overrides)


def scheduler_with_shift(pipe, scheduler, shift: float):
    """The run's flow scheduler (the model's own for None, else a flow scheduler's name) with the fixed shift s
    instead of its config's: how a lesson sets shift 1, 3 or 6. Refused in one line for a VP/sigma model and
    for a model that shifts by resolution (FLUX.1's mu)."""
    from .checks import StepvizInputError, check_shift

    check_shift(shift)
    if not is_flow_scheduler(pipe.scheduler):
        raise StepvizInputError(f"shift={shift!r} is not allowed: {type(pipe).__name__} is not a flow model (only "
                                "SD3, FLUX.1 and toy-flow shift their sigmas)")
    config = pipe.scheduler.config
    if config.get("use_dynamic_shifting", False):
        raise StepvizInputError(f"shift={shift!r} is not allowed: this model shifts by the picture's size (mu, as "
                                "FLUX.1 does), not by a fixed shift")
    key = "shift" if "shift" in config else "flow_shift"
    if scheduler is None:  # the model's own class (a flow pipeline's constructor rewrites nothing in it)
        return type(pipe.scheduler).from_config(config, **{key: float(shift)})
    return make_flow_scheduler(scheduler, {**dict(config), key: float(shift)})


def continue_on_grid(new, old, position: int, device):
    """Give a fresh flow scheduler the old one's sigma grid from `position` on (its sigmas list ends with the
    final 0), timesteps written as the new class writes them (FlowMatch: float 1000 sigma; the multistep
    solvers: int64). Returns (loop timesteps, begin index)."""
    import torch

    sigmas = old.sigmas.detach().to("cpu", torch.float32).clone()
    timesteps = sigmas[:-1] * new.config.num_train_timesteps
    if not type(new).__name__.startswith("FlowMatch"):
        timesteps = timesteps.to(torch.int64)
    new.sigmas, new.timesteps = sigmas, timesteps.to(device)
    new.num_inference_steps = len(timesteps)
    if hasattr(new, "set_begin_index"):
        new.set_begin_index(position)
    return new.timesteps[position:], position


def plot_shift(scheduler, mu: float | None = None) -> float | None:
    """The shift s that maps a run's linear schedule to its sigmas (FLUX.1's dynamic shift: e^mu), for the schedule
    panel; None for a VP/sigma scheduler."""
    if not is_flow_scheduler(scheduler):
        return None
    return math.exp(mu) if mu is not None else shift_of(scheduler)


def training_curve(scheduler) -> tuple[float, ...]:
    """1 - sigma at each training timestep t = 1000 sigma, before any shift: the straight line the flow family's
    schedule panel draws where the VP family's draws alphas_cumprod."""
    n = int(scheduler.config.num_train_timesteps)
    return tuple(1.0 - t / n for t in range(n))
