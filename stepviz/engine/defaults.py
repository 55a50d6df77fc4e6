"""A run's defaults, in one place: the Stepper (Python), RunSettings (the command line and lessons) and the
command line's `--help` all read them, so a run made one way is the run made another.

The guidance scale is the default of the model family's diffusers pipeline (guidance_scale=None picks it):
StableDiffusionPipeline 7.5, StableDiffusionXLPipeline 5.0, StableDiffusion3Pipeline 7.0, FluxPipeline 3.5
(diffusers 0.42, their __call__ signatures).
25 steps (diffusers: 50) keep a toy run under a few seconds on a CPU while every scheduler stepviz lists
still converges.
"""

SEED = 42
NUM_INFERENCE_STEPS = 25
# family -> its pipeline's default guidance_scale (SD3's and FLUX.1's pipelines: 7.0 CFG, 3.5 embedded)
GUIDANCE_SCALES = {"SD": 7.5, "SDXL": 5.0, "SD3": 7.0, "FLUX.1": 3.5}
GUIDANCE_SCALE = GUIDANCE_SCALES["SD"]  # the shipped toy's, an SD-format model


def guidance_scale_for(sdxl: bool) -> float:
    """The guidance scale a model's own pipeline runs when none is given."""
    return GUIDANCE_SCALES["SDXL" if sdxl else "SD"]


def describe_guidance_defaults() -> str:
    """The family defaults in words, for --help and error messages: "SD 7.5, SDXL 5"."""
    return ", ".join(f"{family} {scale:g}" for family, scale in GUIDANCE_SCALES.items())
