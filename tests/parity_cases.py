"""Configs people have, stepped by stepviz and by the mode's own diffusers pipeline, on tiny random components.

Each case gives (layout, mode, scheduler, guidance) and a `run()` -> (stepviz latents, diffusers latents), both
from the same seed with a CPU generator. tests/test_engine_configs_parity.py asserts each pair is identical;
bench/parity_table.py prints the table of max abs differences.

The reference is what a diffusers user gets: that mode's pipeline class built from the model's components (its
constructor rewrites an outdated scheduler config its own way), with `Class.from_config(pipe.scheduler.config)`
for a named scheduler, or the pipeline itself run with its own scheduler.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import diffusers
import torch
from tiny import SCHEDULER_CONFIG, scene_image, square_mask, tiny_components, tiny_sdxl_components

from stepviz import Stepper
from stepviz.engine.schedulers import SCHEDULERS

PROMPT, NEGATIVE = "a red circle on a black background", "blurry"
SEED = 7

# A scheduler config written before diffusers had steps_offset / clip_sample / skip_prk_steps: the class's
# defaults fill them in (DDIM: clip_sample True, steps_offset 0; PNDM: skip_prk_steps False) and are listed in
# config["_use_default_values"].
OLD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
# in the manner of SD 1.4's first published scheduler config (CompVis/stable-diffusion-v1-4, written before
# diffusers had steps_offset): PLMS, no steps_offset (its other keys as later versions; not the file itself)
SD14_FIRST = {**OLD, "skip_prk_steps": True, "set_alpha_to_one": False}
# the turbo models' published schedulers: trailing spacing (stabilityai/sd-turbo, stabilityai/sdxl-turbo)
TURBO = {**SCHEDULER_CONFIG, "timestep_spacing": "trailing", "interpolation_type": "linear"}

SD_CLASSES = {"txt2img": "StableDiffusionPipeline", "img2img": "StableDiffusionImg2ImgPipeline",
              "inpaint": "StableDiffusionInpaintPipeline", "depth2img": "StableDiffusionDepth2ImgPipeline"}
SDXL_CLASSES = {"txt2img": "StableDiffusionXLPipeline", "img2img": "StableDiffusionXLImg2ImgPipeline",
                "inpaint": "StableDiffusionXLInpaintPipeline"}


def depth_map():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    return (1.0 + xx + 0.5 * yy)[None]


def mode_inputs(mode: str) -> dict:
    return {"txt2img": dict(height=32, width=32),
            "img2img": dict(image=scene_image(), strength=0.6),
            "inpaint": dict(image=scene_image(), mask_image=square_mask(), height=32, width=32),
            "depth2img": dict(image=scene_image(), depth_map=depth_map(), strength=0.7)}[mode]


def built(cls_name: str, scheduler_cls: str, config: dict, *, sdxl=False, **component_kwargs):
    """A pipeline of `cls_name` from tiny components, its scheduler from `config` (the constructor runs)."""
    parts = (tiny_sdxl_components if sdxl else tiny_components)(**component_kwargs)
    parts["scheduler"] = getattr(diffusers, scheduler_cls).from_config(config)
    if cls_name == "StableDiffusionDepth2ImgPipeline":
        for key in ("safety_checker", "requires_safety_checker"):
            parts.pop(key)
        parts["depth_estimator"] = None
    pipe = getattr(diffusers, cls_name)(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference(pipe, mode: str, scheduler: str | None):
    """The diffusers pipeline a user runs for `mode` with `scheduler` (None: the model's own)."""
    sdxl = type(pipe).__name__ in SDXL_CLASSES.values()
    cls_name = (SDXL_CLASSES if sdxl else SD_CLASSES)[mode]
    if scheduler is None and cls_name == type(pipe).__name__:
        return pipe
    parts = dict(pipe.components)
    if scheduler is None:
        parts["scheduler"] = copy.deepcopy(pipe.scheduler)
    else:
        parts["scheduler"] = getattr(diffusers, SCHEDULERS[scheduler].class_name).from_config(pipe.scheduler.config)
    if cls_name == "StableDiffusionDepth2ImgPipeline":
        for key in ("safety_checker", "requires_safety_checker", "image_encoder"):
            parts.pop(key, None)
        parts["depth_estimator"] = None
    elif cls_name.startswith("StableDiffusion") and not sdxl:
        parts = {k: v for k, v in parts.items() if k not in ("depth_estimator",)}
        parts.setdefault("safety_checker", None)
        parts.setdefault("feature_extractor", None)
        parts["requires_safety_checker"] = False
    ref = getattr(diffusers, cls_name)(**parts)
    ref.set_progress_bar_config(disable=True)
    return ref


@dataclass
class Case:
    layout: str
    mode: str
    scheduler: str | None  # None: the model's own
    guidance: float | None  # None: the pipeline's default
    steps: int
    make: object  # () -> the pipeline
    call: dict = field(default_factory=dict)  # more arguments for both

    @property
    def id(self) -> str:
        scale = "default" if self.guidance is None else f"{self.guidance:g}"
        return f"{self.layout}|{self.mode}|{self.scheduler or 'own'}|s={scale}|{self.steps}steps"

    def run(self) -> tuple[torch.Tensor, torch.Tensor, Stepper]:
        pipe = self.make()
        kwargs = {**mode_inputs(self.mode), **self.call, "num_inference_steps": self.steps}
        if self.guidance is not None:
            kwargs["guidance_scale"] = self.guidance
        st = Stepper(pipe, prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, scheduler=self.scheduler,
                     mode=self.mode, **kwargs)
        st.run()
        ref = reference(pipe, self.mode, self.scheduler)
        expected = ref(prompt=PROMPT, negative_prompt=NEGATIVE, output_type="latent",
                       generator=torch.Generator("cpu").manual_seed(SEED), **kwargs).images
        return st.latents, expected, st


def _sd(cls_name, scheduler_cls, config, **kw):
    return lambda: built(cls_name, scheduler_cls, config, **kw)


OLD_DDIM = "old DDIM config"
NO_PRK = "old PNDM config (no skip_prk_steps)"

CONSTRUCTOR_CASES = [
    # the pipeline's own scheduler keeps the fixes its constructor applied
    Case(OLD_DDIM, "txt2img", None, 6.5, 5, _sd("StableDiffusionPipeline", "DDIMScheduler", OLD)),
    Case(OLD_DDIM, "img2img", None, 6.5, 6, _sd("StableDiffusionImg2ImgPipeline", "DDIMScheduler", OLD)),
    Case(OLD_DDIM, "inpaint", None, 6.5, 5, _sd("StableDiffusionInpaintPipeline", "DDIMScheduler", OLD)),
    Case(OLD_DDIM, "inpaint", "ddim", 6.5, 5, _sd("StableDiffusionPipeline", "DDIMScheduler", OLD)),
    Case(OLD_DDIM, "depth2img", "ddim", 6.5, 6,
         _sd("StableDiffusionDepth2ImgPipeline", "DDIMScheduler", OLD, unet_in_channels=5)),
    Case("SD 1.4 first-release config", "txt2img", None, 6.5, 5,
         _sd("StableDiffusionPipeline", "PNDMScheduler", SD14_FIRST)),
    # each mode applies its own pipeline's fixes: inpaint fixes skip_prk_steps, never clip_sample
    Case(NO_PRK, "inpaint", None, 6.5, 5, _sd("StableDiffusionPipeline", "PNDMScheduler", OLD)),
    Case(NO_PRK, "inpaint", "ddim", 6.5, 5, _sd("StableDiffusionPipeline", "PNDMScheduler", OLD)),
    Case(NO_PRK, "inpaint", "pndm", 6.5, 5, _sd("StableDiffusionPipeline", "PNDMScheduler", OLD)),
    Case("inpainting model, " + NO_PRK, "inpaint", None, 6.5, 5,
         _sd("StableDiffusionInpaintPipeline", "PNDMScheduler", OLD, unet_in_channels=9)),
    Case("inpainting model, " + NO_PRK, "inpaint", "ddim", 6.5, 5,
         _sd("StableDiffusionInpaintPipeline", "PNDMScheduler", OLD, unet_in_channels=9)),
    Case("inpainting model, " + NO_PRK, "inpaint", "pndm", 6.5, 5,
         _sd("StableDiffusionInpaintPipeline", "PNDMScheduler", OLD, unet_in_channels=9)),
]

GUIDANCE_CASES = [
    *(Case("SD 1.x", "txt2img", None, s, 5, _sd("StableDiffusionPipeline", "PNDMScheduler", SCHEDULER_CONFIG))
      for s in (0.0, 0.5, 1.0)),
    Case("SD 1.x", "img2img", "ddim", 1.0, 6, _sd("StableDiffusionImg2ImgPipeline", "PNDMScheduler",
                                                  SCHEDULER_CONFIG)),
    Case("inpainting model", "inpaint", "euler", 0.5, 5,
         _sd("StableDiffusionInpaintPipeline", "PNDMScheduler", SCHEDULER_CONFIG, unet_in_channels=9)),
    *(Case("SD-Turbo (SD 2.1 layout, Euler trailing)", "txt2img", None, 0.0, n,
           _sd("StableDiffusionPipeline", "EulerDiscreteScheduler", TURBO, sd2=True)) for n in (1, 2, 4)),
    Case("SD-Turbo (SD 2.1 layout, Euler trailing)", "txt2img", "euler_a", 0.0, 2,
         _sd("StableDiffusionPipeline", "EulerDiscreteScheduler", TURBO, sd2=True)),
    *(Case("SDXL-Turbo (Euler ancestral trailing)", "txt2img", None, 0.0, n,
           _sd("StableDiffusionXLPipeline", "EulerAncestralDiscreteScheduler", TURBO, sdxl=True)) for n in (1, 4)),
    Case("SDXL-Turbo (Euler ancestral trailing)", "img2img", None, 0.0, 2,
         _sd("StableDiffusionXLImg2ImgPipeline", "EulerAncestralDiscreteScheduler", TURBO, sdxl=True),
         call=dict(strength=0.5)),
    Case("SDXL base", "inpaint", "euler", 1.0, 5,
         _sd("StableDiffusionXLInpaintPipeline", "EulerDiscreteScheduler",
             {**SCHEDULER_CONFIG, "timestep_spacing": "leading", "interpolation_type": "linear"}, sdxl=True)),
    *(Case("LCM (time_cond_proj_dim, LCMScheduler)", "txt2img", None, s, 4,
           _sd("StableDiffusionPipeline", "LCMScheduler", SCHEDULER_CONFIG, time_cond_proj_dim=8))
      for s in (0.0, 8.5)),
    Case("SDXL LCM (time_cond_proj_dim, LCMScheduler)", "txt2img", None, 0.0, 4,
         _sd("StableDiffusionXLPipeline", "LCMScheduler", SCHEDULER_CONFIG, sdxl=True, time_cond_proj_dim=8)),
]

DEFAULT_CASES = [
    Case("SD 1.x", "txt2img", None, None, 5, _sd("StableDiffusionPipeline", "PNDMScheduler", SCHEDULER_CONFIG)),
    Case("SDXL base", "txt2img", None, None, 4,
         _sd("StableDiffusionXLPipeline", "EulerDiscreteScheduler",
             {**SCHEDULER_CONFIG, "timestep_spacing": "leading", "interpolation_type": "linear"}, sdxl=True)),
]

ALL_CASES = CONSTRUCTOR_CASES + GUIDANCE_CASES + DEFAULT_CASES


def max_abs_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.double() - theirs.double()).abs().max())
