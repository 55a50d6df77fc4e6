"""Single-file checkpoints: one .safetensors with the original (LDM / SGM) key names, as model sites share them.

Loaded offline with diffusers' `from_single_file`, pointed at a config folder that stepviz ships (configs/,
JSON only) for the kind the keys tell: SD 1.x, SD 2.x (eps or v: the weights cannot tell, so the user
says) or SDXL. A 9-channel UNet is an inpainting checkpoint. The tokenizers are CLIP's, from configs/clip-bpe.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ..engine.checks import StepvizInputError

CONFIGS = Path(__file__).resolve().parent / "configs"
KINDS = ("sd1", "sd2", "sd2-v", "sdxl")
# Keys that tell the kind (the text encoders differ; diffusers' single_file_utils checks the same ones)
SDXL_KEY = "conditioner.embedders.1."  # OpenCLIP ViT-bigG beside CLIP ViT-L
SD2_KEY = "cond_stage_model.model."  # OpenCLIP ViT-H
SD1_KEY = "cond_stage_model.transformer."  # CLIP ViT-L
CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
INPAINT_CLASS = {"StableDiffusionPipeline": "StableDiffusionInpaintPipeline",
                 "StableDiffusionXLPipeline": "StableDiffusionXLInpaintPipeline"}
PREDICTION_TYPES = ("epsilon", "v_prediction")


class SingleFileError(StepvizInputError):
    """The checkpoint's kind cannot be told, or a setting does not fit it."""


def check_prediction_type(prediction_type: str | None) -> None:
    """None (the checkpoint's own) or one of PREDICTION_TYPES, else one line naming the value."""
    if prediction_type is not None and prediction_type not in PREDICTION_TYPES:
        raise SingleFileError(f"prediction_type={prediction_type!r} is unknown: use {' or '.join(PREDICTION_TYPES)}")


def checkpoint_kind(path: Path, prediction_type: str | None = None) -> tuple[str, int]:
    """(kind, UNet input channels) from the file's keys, read from its header (no weights loaded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        channels = handle.get_slice(CONV_IN).get_shape()[1] if CONV_IN in keys else 4
    check_prediction_type(prediction_type)
    if any(k.startswith(SDXL_KEY) for k in keys):
        kind = "sdxl"
    elif any(k.startswith(SD2_KEY) for k in keys):
        if prediction_type is None:
            raise SingleFileError(
                f"{path.name} is an SD 2.x checkpoint, and whether it predicts v (the 768 px models) or eps "
                "(the -base 512 px ones) cannot be told from its weights: pass --prediction-type v_prediction "
                "or epsilon")
        kind = "sd2-v" if prediction_type == "v_prediction" else "sd2"
    elif any(k.startswith(SD1_KEY) for k in keys):
        kind = "sd1"
    else:
        raise SingleFileError(
            f"cannot tell which model {path.name} is: it has none of the text-encoder keys of SD 1.x "
            f"({SD1_KEY}*), SD 2.x ({SD2_KEY}*) or SDXL ({SDXL_KEY}*), the single files stepviz loads")
    if kind != "sd2-v" and kind != "sd2" and prediction_type not in (None, "epsilon"):
        raise SingleFileError(f"prediction_type={prediction_type!r}: {path.name} is {kind}, which predicts eps")
    return kind, channels


def clip_tokenizer(pad_token: str):
    from transformers import CLIPTokenizer

    bpe = CONFIGS / "clip-bpe"
    return CLIPTokenizer(str(bpe / "vocab.json"), str(bpe / "merges.txt"), pad_token=pad_token,
                         model_max_length=77)


# Where the original key names keep the UNet and the VAE: diffusers converts each of their tensors to one of the
# model's, so a file with fewer tensors under a prefix than the model has leaves some uninitialised (diffusers
# fills them in silently). Extra tensors (an EMA copy under model_ema.) are other parts and are not counted.
WHOLE_PARTS = (("unet", "model.diffusion_model."), ("vae", "first_stage_model."))


def check_parts_whole(path: Path, pipe) -> None:
    """One line when the file holds fewer UNet or VAE tensors than the model built from its config has."""
    from .weight_check import read_header

    keys = read_header(path)
    for name, prefix in WHOLE_PARTS:
        have = sum(1 for key in keys if key.startswith(prefix))
        need = len(getattr(pipe, name).state_dict())
        if have < need:
            raise SingleFileError(f"{path.name} holds {have} tensors of the {name} ({prefix}*) but the {name} its "
                                  f"config makes has {need}: a partial or damaged file (diffusers would fill the "
                                  "rest with untrained values)")


def load_single_file(path: Path, torch_dtype, *, prediction_type: str | None = None, config=None,
                     notices: list[str]):
    """The pipeline for a single-file checkpoint. config: a diffusers folder to take the architecture from
    instead of the shipped one (its own tokenizers are used then)."""
    import diffusers

    kind, channels = checkpoint_kind(path, prediction_type)
    source = Path(config) if config is not None else CONFIGS / kind
    with tempfile.TemporaryDirectory(prefix="stepviz-config-") as scratch:
        folder = Path(scratch) / kind
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
        index = json.loads((folder / "model_index.json").read_text())
        class_name = index["_class_name"]
        if channels == 9:  # an inpainting UNet: mask and masked-image latents beside x_t
            class_name = INPAINT_CLASS.get(class_name, class_name)
            unet_config = folder / "unet" / "config.json"
            unet_config.write_text(json.dumps({**json.loads(unet_config.read_text()), "in_channels": 9}))
        extra = {}
        if config is None:
            extra["tokenizer"] = clip_tokenizer("!" if kind.startswith("sd2") else "<|endoftext|>")
            if "tokenizer_2" in index:
                extra["tokenizer_2"] = clip_tokenizer("!")
        if "safety_checker" in index:
            extra.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe = getattr(diffusers, class_name).from_single_file(
            str(path), config=str(folder), local_files_only=True, dtype=torch_dtype, **extra)
    check_parts_whole(path, pipe)
    what = {"sd1": "SD 1.x", "sd2": "SD 2.x (eps)", "sd2-v": "SD 2.x (v-prediction)", "sdxl": "SDXL"}[kind]
    origin = "the config stepviz ships" if config is None else str(config)
    notices.append(f"{path.name}: a single-file {what}{' inpainting' if channels == 9 else ''} checkpoint, "
                   f"architecture from {origin}")
    return pipe
