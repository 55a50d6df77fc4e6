"""RunSettings: everything that defines a run, from the command line or a scenario file.

The CLI and scenario files both produce a RunSettings; the TUI and the exporter both consume one.
`validate()` runs every check that needs no model, so bad input fails before any window opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..engine import defaults
from ..lessons.events import CompareBranch, Event

DEFAULT_PROMPT = "a red circle on a black background"


@dataclass
class RunSettings:
    model: str = "toy"
    mode: str = "txt2img"
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = ""
    seed: int = defaults.SEED
    steps: int = defaults.NUM_INFERENCE_STEPS  # the API's num_inference_steps
    guidance_scale: float | None = None  # None: the model's pipeline's default (engine/defaults.py)
    scheduler: str | None = None  # None: the model's own scheduler, as its pipeline runs it
    height: int | None = None
    width: int | None = None
    image: str | Path | object | None = None  # a path, or a PIL image (drawn toy scenes)
    mask_image: str | Path | object | None = None
    depth_map: str | Path | object | None = None  # a picture path, or a tensor [1, H, W] (near = high)
    strength: float | None = None
    device: str = "auto"  # auto: CUDA, else MPS, else CPU (stepviz.models.device)
    dtype: str = "auto"  # auto: float16 on a GPU, float32 on the CPU
    variant: str | None = None  # weight files *.<variant>.safetensors, e.g. fp16 (found by itself when alone)
    vae_tiling: bool = False  # diffusers' tiled and sliced VAE decode for full previews
    prediction_type: str | None = None  # a single-file SD 2.x checkpoint: epsilon or v_prediction
    inpaint_noise: str = "fixed"  # the DIY blend: "fixed" noise for the run or "fresh" noise every step
    timestep_spacing: str | None = None  # None: the model's scheduler config; else leading / trailing / linspace
    shift: float | None = None  # a flow model's fixed shift s (None: its scheduler config's; SD3 and toy-flow: 3)
    title: str = ""
    description: str = ""
    events: list[Event] = field(default_factory=list)
    compare: list[CompareBranch] = field(default_factory=list)
    expect: list = field(default_factory=list)  # claims.Claim: what the description says, checked
    source: str | None = None  # the scenario file, if any
    pace: float | None = None  # a lesson's seconds per note when it plays itself (None: the default)
    start_at: int = 0  # the TUI opens with this many steps taken (the events before it applied)
    auto_pace: float | None = None  # the TUI plays by itself, holding this many seconds at each note (None: keys)
    capture_attention: bool = True  # cross-attention maps per step (the TUI's `a` panel, attention.png)

    def validate(self) -> None:
        """Every check that needs no loaded model, for this run and each [[compare]] run: raises
        StepvizInputError / ModelLoadError with one line, before any window opens or any step runs."""
        self._validate_run()
        for number, branch in enumerate(self.compare, start=1):
            try:
                self.branch_settings(branch)._validate_run()
            except ValueError as exc:
                where = branch.where or f"[[compare]] #{number} ({branch.label})"
                raise type(exc)(f"{where}: {exc}") from None

    def branch_settings(self, branch: CompareBranch) -> RunSettings:
        """The settings of a [[compare]] run: these, with the branch's values, without events or branches."""
        return self.with_overrides(**branch.overrides, events=[], compare=[], expect=[], title=branch.label)

    def _validate_run(self) -> None:
        from ..engine import checks
        from ..engine.schedulers import check_scheduler_name
        from ..models.device import check_available, check_names
        from ..models.single_file import check_prediction_type

        checks.check_run(height=self.height, width=self.width, steps=self.steps, guidance_scale=self.guidance_scale,
                         strength=self.strength, seed=self.seed, mode=self.mode, inpaint_noise=self.inpaint_noise,
                         timestep_spacing=self.timestep_spacing, shift=self.shift, image=self.image,
                         mask_image=self.mask_image, depth_map=self.depth_map)
        if not isinstance(self.start_at, int) or not 0 <= self.start_at <= self.steps:
            raise checks.StepvizInputError(f"--start-at {self.start_at!r} is not allowed: use 0..{self.steps} "
                                           "(steps taken before the window opens)")
        if self.auto_pace is not None and not 0 < self.auto_pace < 3600:
            raise checks.StepvizInputError(f"--pace {self.auto_pace!r} is not allowed: give seconds in (0, 3600)")
        if self.scheduler is not None:
            check_scheduler_name(self.scheduler)
        picture = None
        if self.mode in checks.INPUT_MODES["image"]:
            picture = checks.load_image("image", self.image, self.mode)
        if self.mode in checks.INPUT_MODES["mask_image"]:
            checks.load_image("mask_image", self.mask_image, self.mode)
        if self.depth_map is not None:
            checks.load_image("depth_map", self.depth_map, self.mode)
        self._validate_events()
        check_names(self.device, self.dtype)
        check_available(self.device)  # a GPU this machine lacks: refused before any window opens
        check_prediction_type(self.prediction_type)
        self._validate_for_model(getattr(picture, "size", None))

    def _validate_events(self) -> None:
        from ..engine import checks
        from ..engine.schedulers import check_scheduler_name

        for event in self.events:
            if event.set_scheduler is not None:
                try:
                    check_scheduler_name(event.set_scheduler, "set_scheduler")
                except checks.StepvizInputError as exc:
                    raise checks.StepvizInputError(f"event at step {event.at_step}: {exc}") from None
            if event.set_guidance_scale is not None:
                checks.check_guidance(event.set_guidance_scale)

    def _validate_for_model(self, picture_size: tuple[int, int] | None) -> None:
        """The checks that read the model's config files (without loading its weights); none for a hub id
        that is not cached."""
        from ..engine import checks, memory
        from ..models.loading import model_facts

        facts = model_facts(self.model)
        if facts is None:
            return
        checks.check_steps_fit(self.steps, facts.num_train_timesteps)
        checks.check_mode(self.mode, facts.unet_in_channels, sdxl=facts.sdxl)
        if self.mode == "depth2img" and self.depth_map is None and not facts.has_depth_estimator:
            raise checks.StepvizInputError(f"mode='depth2img' needs depth_map=: model {str(self.model)!r} has no "
                                           "depth estimator to make one")
        height, width = checks.run_size(self.mode, self.height, self.width, picture_size, facts.default_size,
                                        facts.vae_scale_factor)
        if self.device not in (None, "auto", "cpu"):
            return  # a GPU's free memory and speed are checked when the run starts (Stepper)
        memory.check_run_memory("a picture of", height, width, self.steps, vae_channels=facts.vae_channels,
                                unet_channels=facts.unet_channels, latent_channels=facts.latent_channels)
        levels = memory.attention_levels(facts.unet_down_blocks)
        memory.check_step_work("a picture of", height, width, "cpu", scale=facts.vae_scale_factor,
                               unet_channels=facts.unet_channels, levels=levels, vae_channels=facts.vae_channels)

    def stepper_kwargs(self) -> dict:
        # no negative prompt given: None, so SDXL zeroes the uncond branch as its pipeline does by default
        return dict(prompt=self.prompt, negative_prompt=self.negative_prompt or None, seed=self.seed,
                    num_inference_steps=self.steps, guidance_scale=self.guidance_scale, scheduler=self.scheduler,
                    height=self.height, width=self.width, mode=self.mode, image=self.image,
                    mask_image=self.mask_image, depth_map=self.depth_map_tensor(), strength=self.strength,
                    inpaint_noise=self.inpaint_noise, capture_attention=self.capture_attention)

    def depth_map_tensor(self):
        """The depth map as the engine takes it: a picture file (bright = near) becomes [1, H, W] in [0, 1]."""
        if isinstance(self.depth_map, (str, Path)):
            from ..engine.checks import depth_tensor

            return depth_tensor(self.depth_map)
        return self.depth_map

    def load_pipeline(self, model=None, progress=None):
        """The pipeline for `model` (default: this run's) on this run's device, dtype and weight variant;
        progress(text) hears each part as it is checked and loaded."""
        from ..models import load_pipeline

        return load_pipeline(self.model if model is None else model, device=self.device, dtype=self.dtype,
                             variant=self.variant, vae_tiling=self.vae_tiling, prediction_type=self.prediction_type,
                             progress=progress)

    def input_pictures(self) -> dict:
        """The pictures the run takes, as given: {"input": ..., "mask": ...} (PIL images); none for txt2img."""
        from ..engine.checks import load_image

        pictures = {}
        if self.mode != "txt2img":
            for role, key in (("input", "image"), ("mask", "mask_image")):
                value = getattr(self, key)
                picture = None if value is None else load_image(key, value, self.mode)
                if hasattr(picture, "size"):  # a tensor given in code is not a picture to show
                    pictures[role] = picture
        return pictures

    def make_stepper(self, pipe, engine=None):
        """A Stepper on `pipe`, or with `engine` (a SharedEngine holding that pipe) a session of the engine."""
        from ..engine import Stepper

        kwargs = self.stepper_kwargs()
        if self.timestep_spacing is not None:  # the named (or the model's own) scheduler, spaced as asked
            from ..engine.schedulers import scheduler_for

            kwargs["scheduler"] = scheduler_for(pipe, self.mode, self.scheduler, timestep_spacing=self.timestep_spacing)
        if self.shift is not None:  # a flow model's schedule with another shift (refused for VP/sigma models)
            from ..engine.flow_schedule import scheduler_with_shift

            kwargs["scheduler"] = scheduler_with_shift(pipe, self.scheduler, self.shift)
        return engine.stepper(**kwargs) if engine is not None else Stepper(pipe, **kwargs)

    def with_overrides(self, **overrides) -> RunSettings:
        return replace(self, **overrides)
