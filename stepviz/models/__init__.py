"""Loading diffusers-format Stable Diffusion checkpoints, and the models stepviz ships."""

from .loading import ModelLoadError, load_pipeline, resolve

__all__ = ["ModelLoadError", "load_pipeline", "resolve"]
