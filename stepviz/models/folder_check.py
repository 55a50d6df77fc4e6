"""What a diffusers pipeline folder tells before any weight is loaded, and what is wrong with it.

`check_model_folder` reads model_index.json and the components' config files, and the header of every
safetensors file (its first bytes say how long the file must be), so that a broken folder, a pickle-only
component or a truncated download is refused with one line before a window opens or a step runs.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.checks import vae_scale_factor
from ..engine.families import is_sdxl_class
from ..engine.pipeline_facts import facts_of

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
WEIGHT_FOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2", "depth_estimator")
# Components stepviz never uses (the safety checker, its feature extractor, IP-Adapter's image encoder): loaded
# as None when model_index.json names them but their folders are absent. Depth2Img's feature extractor is used.
UNUSED_COMPONENTS = ("safety_checker", "feature_extractor", "image_encoder")
# model_index.json's map of the pipeline's parts to folders elsewhere (relative to the pipeline's folder): the
# models stepviz ships share parts (one VAE, text encoder, preview decoder...), each file stored once.
PARTS_KEY = "_stepviz_parts"
# model_index.json's config values a shared part is loaded with, per part (from_pretrained's keyword overrides):
# toy-flow reads the toy's VAE with SD3's shift_factor and the toy's tokenizer with a shorter model_max_length.
PART_CONFIG_KEY = "_stepviz_part_config"


class ModelLoadError(ValueError):
    """The model could not be loaded; the message names the path and what to do."""


@dataclass(frozen=True)
class ModelFacts:
    """The numbers the checks before a run need, read from the folder's config files."""

    folder: Path
    num_train_timesteps: int = 1000
    unet_in_channels: int = 4
    unet_sample_size: int = 64  # the UNet's, or a flow model's transformer's (SD3, FLUX.1)
    unet_channels: tuple[int, ...] = (320, 640, 1280, 1280)  # Stable Diffusion 1.x / 2.x
    unet_down_blocks: tuple[str, ...] = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    vae_channels: tuple[int, ...] = (128, 256, 512, 512)
    latent_channels: int = 4
    has_depth_estimator: bool = False
    sdxl: bool = False
    components: tuple[str, ...] = field(default=())

    @property
    def vae_scale_factor(self) -> int:
        return vae_scale_factor(self.vae_channels)

    @property
    def default_size(self) -> int:
        """The picture side the pipeline makes when no height/width is given."""
        return self.unet_sample_size * self.vae_scale_factor


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing: the {what} has no config; export the pipeline again") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}): fix it or export the pipeline again") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object: fix it or export the pipeline again")
    return data


def part_folders(folder: Path, index: dict | None = None) -> dict[str, Path]:
    """Each part's folder: `folder/<name>` for every subfolder, and the folders model_index.json maps under
    PARTS_KEY (the shipped models' shared parts) in their place."""
    folder = Path(folder)
    index = read_json(folder / "model_index.json", "pipeline") if index is None else index
    parts = {path.name: path for path in sorted(folder.iterdir()) if path.is_dir()}
    shared = index.get(PARTS_KEY) or {}
    if not isinstance(shared, dict):
        raise ModelLoadError(f"{folder / 'model_index.json'}: {PARTS_KEY} must map part names to folders")
    parts.update({name: (folder / str(place)).resolve() for name, place in shared.items()})
    return parts


def weight_files(folder: Path) -> list[tuple[str, Path]]:
    """(name in the pipeline, path) of each safetensors file of a pipeline folder, in name order; a shared part's
    files named as if they lay in the folder (unet/diffusion_pytorch_model.safetensors)."""
    files = {str(path.relative_to(folder)): path for path in folder.rglob("*.safetensors") if path.is_file()}
    index = folder / "model_index.json"
    shared = (read_json(index, "pipeline").get(PARTS_KEY) or {}) if index.is_file() else {}
    for name, part in part_folders(folder).items():
        if name in shared:
            files.update({f"{name}/{path.relative_to(part)}": path for path in part.rglob("*.safetensors")
                          if path.is_file()})
    return sorted(files.items(), key=lambda item: Path(item[0]))


def pipeline_part(pipe, name: str) -> Path | None:
    """Where a loaded pipeline's part (or file) `name` lies: a shared part's folder, else its model folder's."""
    facts = facts_of(pipe)
    if name in facts.parts:
        return Path(facts.parts[name])
    folder = facts.folder
    return Path(folder) / name if folder else None


def check_model_folder(folder: Path, allow_pickle: bool = False) -> ModelFacts:
    """The folder's facts, or a ModelLoadError naming the file or component that is wrong."""
    index = read_json(folder / "model_index.json", "pipeline")
    parts = part_folders(folder, index)
    components = tuple(name for name, value in index.items() if not name.startswith("_")
                       and isinstance(value, list) and len(value) == 2 and value[0] is not None)
    for name in components:
        if not parts.get(name, folder / name).is_dir() and name not in UNUSED_COMPONENTS:
            raise ModelLoadError(f"the pipeline's component {name!r} is missing: model_index.json lists it but "
                                 f"{parts.get(name, folder / name)} does not exist; export the pipeline again")
    for name in components:  # every component, wherever the parts table puts it: a pickle is a pickle
        if parts.get(name, folder / name).is_dir():
            check_weights(parts.get(name, folder / name), name, allow_pickle, required=name in WEIGHT_FOLDERS)
    if (parts.get("preview_decoder") or folder / "preview_decoder").is_dir():
        check_weights(parts.get("preview_decoder", folder / "preview_decoder"), "preview_decoder", allow_pickle)
    facts = {}
    if "scheduler" in components:
        path = parts["scheduler"] / "scheduler_config.json"
        facts["num_train_timesteps"] = config_int(read_json(path, "scheduler"), "num_train_timesteps", 1000, path)
    if "unet" in components:
        path = parts["unet"] / "config.json"
        unet = read_json(path, "unet")
        facts.update(unet_in_channels=config_int(unet, "in_channels", 4, path),
                     unet_sample_size=config_int(unet, "sample_size", 64, path),
                     unet_channels=config_ints(unet, "block_out_channels", ModelFacts.unet_channels, path),
                     unet_down_blocks=tuple(map(str, unet.get("down_block_types", ModelFacts.unet_down_blocks))))
    if "transformer" in components:  # SD3 / FLUX.1: the latent side their pipelines draw by default (diffusers: 128)
        path = parts["transformer"] / "config.json"
        facts["unet_sample_size"] = config_int(read_json(path, "transformer"), "sample_size", 128, path)
    if "vae" in components:
        path = parts["vae"] / "config.json"
        vae = read_json(path, "vae")
        facts.update(vae_channels=config_ints(vae, "block_out_channels", ModelFacts.vae_channels, path),
                     latent_channels=config_int(vae, "latent_channels", 4, path))
    return ModelFacts(folder, has_depth_estimator="depth_estimator" in components, components=components,
                      sdxl=is_sdxl_class(str(index.get("_class_name", ""))), **facts)


def config_int(config: dict, key: str, default: int, path: Path) -> int:
    """A whole number of a component's config, or one line naming the file, the key and the value."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelLoadError(f"{path}: {key} is {json.dumps(value)[:60]}; it must be a whole number")
    return value


def config_ints(config: dict, key: str, default: tuple[int, ...], path: Path) -> tuple[int, ...]:
    """A list of whole numbers of a component's config (block_out_channels...), or one line saying what is wrong."""
    value = config.get(key, default)
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ModelLoadError(f"{path}: {key} is {json.dumps(value)[:60]}; it must be a list of whole numbers")
    return tuple(value)


def check_weights(sub: Path, name: str, allow_pickle: bool, required: bool = True) -> None:
    """A component's weights: safetensors whole (per its header), or pickles only when allowed; `required`: a
    component that must have weights (a UNet, a VAE...), else one that may have none (a tokenizer)."""
    files = [p for p in sub.iterdir() if p.is_file()]
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    pickles = [p for p in files if p.suffix in PICKLE_SUFFIXES]
    if not safetensors and pickles and not allow_pickle:
        raise ModelLoadError(
            f"the {name} weights {pickles[0]} are a pickle file ({pickles[0].suffix}) with no safetensors beside "
            "them; a pickle can run code when loaded, so stepviz refuses it: convert it to safetensors, or "
            "load_pipeline(..., allow_pickle=True) if you trust where it came from")
    if not safetensors and not pickles and required:
        raise ModelLoadError(f"the {name} component in {sub} has no weights file (*.safetensors): export the "
                             "pipeline again")
    for path in safetensors:
        problem = safetensors_problem(path)
        if problem:
            raise ModelLoadError(f"{path} is truncated or corrupt ({problem}): download or export it again")


def safetensors_problem(path: Path) -> str | None:
    """None when the file is as long as its header says; else what is wrong (safetensors format: an 8-byte
    little-endian header length, a JSON header with each tensor's data_offsets, then the data)."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                return f"{size} bytes, the header alone claims {length}"
            header = json.loads(handle.read(length))
    except (struct.error, ValueError, UnicodeDecodeError):
        return "its header is not readable"
    ends = [entry["data_offsets"][1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry]
    needed = 8 + length + max(ends, default=0)
    return None if size >= needed else f"{size} bytes, its header needs {needed}"
