"""Which diffusers pipeline classes stepviz steps, by family: one list, read before any model is loaded (the
folder check) and after (the Stepper, the loader, the previews), so it imports nothing heavy."""

from __future__ import annotations

SD_CLASSES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
              "StableDiffusionDepth2ImgPipeline")
SDXL_CLASSES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline")
# the flow family (x_t = (1 - sigma) x0 + sigma eps, a transformer predicting v = eps - x0): engine/flow_*.py
SD3_CLASSES = ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline")
FLUX_CLASSES = ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline")
FLOW_CLASSES = SD3_CLASSES + FLUX_CLASSES
PIPELINE_CLASSES = SD_CLASSES + SDXL_CLASSES + FLOW_CLASSES


def is_sdxl_class(class_name: str) -> bool:
    """A pipeline class of the SDXL family (two text encoders, pooled embeddings, size conditioning)."""
    return class_name in SDXL_CLASSES


def is_sdxl(pipe) -> bool:
    """A pipeline object of the SDXL family (its class, by is_sdxl_class)."""
    return is_sdxl_class(type(pipe).__name__)


def is_flow_class(class_name: str) -> bool:
    """A pipeline class of the flow family (SD3, FLUX.1): a transformer, no UNet, a velocity target."""
    return class_name in FLOW_CLASSES


def model_family(class_name: str) -> str:
    """The family's name as the status line and defaults say it: SD, SDXL, SD3 or FLUX.1."""
    if class_name in SDXL_CLASSES:
        return "SDXL"
    if class_name in SD3_CLASSES:
        return "SD3"
    if class_name in FLUX_CLASSES:
        return "FLUX.1"
    return "SD"
