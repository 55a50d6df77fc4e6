"""What each diffusers pipeline's constructor rewrites in its scheduler's config, and which pipeline runs a mode.

diffusers 0.42's constructors (pipelines/stable_diffusion/pipeline_stable_diffusion*.py, `__init__`) rewrite an
outdated scheduler config in place, each its own way:

    StableDiffusionPipeline, ...Img2ImgPipeline   steps_offset != 1 -> 1;  clip_sample True -> False
    StableDiffusionInpaintPipeline                steps_offset != 1 -> 1;  skip_prk_steps False -> True
    StableDiffusionDepth2ImgPipeline, SDXL's      nothing

A key the config file left out (so its class's default was used) is listed in config["_use_default_values"],
and `from_config` drops every key listed there: a scheduler copied with `from_config` loses a fix the
constructor applied (DDIM gets clip_sample True and steps_offset 0 again). `effective_config` keeps them.
"""

from __future__ import annotations

from .families import is_sdxl

# (mode, SDXL?) -> the diffusers pipeline class that runs it
MODE_PIPELINES = {
    ("txt2img", False): "StableDiffusionPipeline",
    ("img2img", False): "StableDiffusionImg2ImgPipeline",
    ("inpaint", False): "StableDiffusionInpaintPipeline",
    ("depth2img", False): "StableDiffusionDepth2ImgPipeline",
    ("txt2img", True): "StableDiffusionXLPipeline",
    ("img2img", True): "StableDiffusionXLImg2ImgPipeline",
    ("inpaint", True): "StableDiffusionXLInpaintPipeline",
}

# key -> (the constructor's test on config.get(key, default), default, the value it writes)
FIX_RULES = {
    "steps_offset": (lambda value: value != 1, 1, 1),
    "clip_sample": (lambda value: value is True, False, False),
    "skip_prk_steps": (lambda value: value is False, True, True),
}
CONSTRUCTOR_FIXES = {
    "StableDiffusionPipeline": ("steps_offset", "clip_sample"),
    "StableDiffusionImg2ImgPipeline": ("steps_offset", "clip_sample"),
    "StableDiffusionInpaintPipeline": ("steps_offset", "skip_prk_steps"),
}


def pipeline_class_for(pipe, mode: str) -> str:
    """The diffusers pipeline class that runs `mode` for this model (SD 1.x/2.x or SDXL)."""
    return MODE_PIPELINES.get((mode, is_sdxl(pipe)), type(pipe).__name__)


def fixes_for(config, pipeline_class: str | None, keep=()) -> dict:
    """What `pipeline_class`'s constructor would rewrite in `config` (keys in `keep` left alone)."""
    fixes = {}
    for key in CONSTRUCTOR_FIXES.get(pipeline_class, ()):
        outdated, default, value = FIX_RULES[key]
        if key not in keep and outdated(config.get(key, default)):
            fixes[key] = value
    return fixes


def apply_fixes(scheduler, pipeline_class: str | None, keep=()) -> dict:
    """Rewrite the scheduler's config as `pipeline_class`'s constructor does; returns what changed."""
    fixes = fixes_for(scheduler.config, pipeline_class, keep)
    if fixes:
        scheduler.register_to_config(**fixes)
    return fixes


def effective_config(config) -> dict:
    """The config as the scheduler runs it: every value explicit (no "_use_default_values" for from_config
    to drop), so a copy keeps the fixes a constructor applied."""
    return {key: value for key, value in dict(config).items() if key != "_use_default_values"}
