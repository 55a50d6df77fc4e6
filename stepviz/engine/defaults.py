"""A run's defaults, in one place: the Stepper (Python), RunSettings (the command line and lessons) and the
command line's `--help` all read them, so a run made one way is the run made another.

The guidance scale is diffusers' StableDiffusionPipeline default; 25 steps (diffusers: 50) keep a toy run
under a few seconds on a CPU while every scheduler stepviz lists still converges.
"""

SEED = 42
NUM_INFERENCE_STEPS = 25
GUIDANCE_SCALE = 7.5
