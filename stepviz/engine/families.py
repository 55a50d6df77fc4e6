"""Which diffusers pipeline classes stepviz steps, by family: one list, read before any model is loaded (the
folder check) and after (the Stepper, the loader, the previews), so it imports nothing heavy."""

from __future__ import annotations

SD_CLASSES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
              "StableDiffusionDepth2ImgPipeline")
SDXL_CLASSES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline")
PIPELINE_CLASSES = SD_CLASSES + SDXL_CLASSES


def is_sdxl_class(class_name: str) -> bool:
    """A pipeline class of the SDXL family (two text encoders, pooled embeddings, size conditioning)."""
    return class_name in SDXL_CLASSES
