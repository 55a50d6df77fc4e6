"""load_pipeline: a Stable Diffusion 1.x/2.x or SDXL checkpoint, offline, safetensors only.

`model` is one of
  - "toy", "toy-v", "toy-inpaint", "toy-depth", "toy-flow": the models shipped inside stepviz (stepviz/toy/weights/: one
    folder per model holding its model_index.json, whose parts map names the shared part folders beside it);
  - a local folder holding model_index.json;
  - a hub id ("org/name") already in the local Hugging Face cache. stepviz never downloads;
  - a single-file checkpoint (.safetensors with the original key names): SD 1.x, 2.x or SDXL.
"""

from __future__ import annotations

import gc
import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..engine.families import PIPELINE_CLASSES
from ..engine.pipeline_facts import facts_of
from .device import pick_device, pick_dtype
from .load_warnings import warnings_as_notices
from .folder_check import (PART_CONFIG_KEY, PARTS_KEY, PICKLE_SUFFIXES, UNUSED_COMPONENTS, ModelFacts,
                           ModelLoadError, check_model_folder, part_folders)

SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "toy" / "weights"
SHIPPED = ("toy", "toy-v", "toy-inpaint", "toy-depth", "toy-flow")  # each a folder of SHIPPED_WEIGHTS


def shipped_folder(name: str) -> Path:
    """The folder of a shipped model (one of SHIPPED): its model_index.json and parts map."""
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not a shipped model: use one of {', '.join(SHIPPED)}")
    return SHIPPED_WEIGHTS / name


def resolve(model: str | os.PathLike) -> Path:
    """The local folder for `model`, or a ModelLoadError saying why there is none."""
    text = str(model)
    if text in SHIPPED:
        folder = shipped_folder(text)
        if not (folder / "model_index.json").is_file():
            raise ModelLoadError(f"the shipped model {text!r} is missing from {folder}: reinstall stepviz")
        return folder
    path = Path(text).expanduser()
    if path.is_file() and path.suffix == ".safetensors":
        return path  # a single-file checkpoint (single_file.py)
    if path.is_file() and path.suffix in PICKLE_SUFFIXES:
        raise ModelLoadError(f"{str(path)!r} is a pickle checkpoint; pickles can run code when loaded, so stepviz "
                             "loads single files as .safetensors only: convert it, or use a diffusers folder")
    if path.exists():
        if not path.is_dir() or not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"{str(path)!r} is not a diffusers pipeline folder (no model_index.json): give the folder "
                "that save_pretrained wrote, a hub id in the local cache, or 'toy'"
            )
        return path
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(text, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
            raise ModelLoadError(
                f"model {text!r} is not in the local Hugging Face cache ({cache}) and stepviz never downloads: "
                f"fetch it on a connected machine (`hf download {text}`) or pass a local folder"
            ) from None
    raise ModelLoadError(f"model {text!r} not found: no such folder, and not a hub id of the form org/name")


def model_facts(model, allow_pickle: bool = False, tensors: bool = False) -> ModelFacts | None:
    """The checked facts of a model given as stepviz takes it ('toy', a folder, a cached hub id); None when it
    is not a pipeline folder (a single weights file: only loading it tells). tensors: also check each
    component's config types and tensor names and shapes (imports diffusers and transformers: slower)."""
    folder = resolve(model)
    if not folder.is_dir():
        return None
    facts = check_model_folder(folder, allow_pickle)
    if tensors:
        index = json.loads((folder / "model_index.json").read_text())
        parts = part_folders(folder, index)
        check_component_files(index, parts, folder, weight_variant(parts.get("unet", folder / "unet"), None, []),
                              allow_pickle)
    return facts


@contextmanager
def collection_paused(freeze: bool = False):
    """Python's cyclic garbage collector off meanwhile (then as it was): importing torch, diffusers and
    transformers makes a few million objects, and the collections they set off were a quarter of the import
    time (4.1 s -> 3.1 s of CPU for `import torch, diffusers` and the model classes, on this project's
    machine). Nothing in an import or a load needs a cycle freed before it ends. `freeze`: what exists at the
    end (modules, the model: kept for the process's life) is never scanned again (gc.freeze), else the first
    collection after it scans them all (0.3 s)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


@warnings_as_notices
@collection_paused()
def load_pipeline(model="toy", device="auto", dtype="auto", *, allow_pickle: bool = False,
                  attention_slicing: bool = False, variant: str | None = None, vae_tiling: bool = False,
                  prediction_type: str | None = None, config=None, progress=None):
    """Load a Stable Diffusion (1.x, 2.x, XL) pipeline offline.

    device: "auto" (CUDA, else MPS, else CPU), "cpu", "cuda", "cuda:N", "mps"; dtype: "auto" (float16 on a
    GPU, float32 on the CPU), a name such as "float16", or a torch dtype; variant: the weight files'
    *.<variant>.safetensors (found by itself when a folder holds only one kind); vae_tiling: diffusers' tiled
    and sliced VAE decode (less memory for big pictures). A single .safetensors file is read with the config
    stepviz ships for its kind (single_file.py): prediction_type tells SD 2.x's eps from v; config: a diffusers
    folder to take the architecture from instead. progress(text), when given, hears each part as it is checked
    and loaded (the TUI shows it while a model loads).
    """
    progress = progress or (lambda text: None)
    quiet_libraries()
    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    folder = resolve(model)
    if folder.is_file():
        from .single_file import SingleFileError, load_single_file

        notices: list[str] = []
        try:
            pipe = load_single_file(folder, torch_dtype, prediction_type=prediction_type, config=config,
                                    notices=notices)
        except SingleFileError as exc:
            raise ModelLoadError(str(exc)) from None
        except Exception as exc:  # diffusers raises many kinds; one clear line for the user
            raise ModelLoadError(f"could not load the single-file checkpoint {folder}: {first_line(exc)}") from None
        return _ready(pipe, model, folder, device, attention_slicing, vae_tiling, notices)
    check_model_folder(folder, allow_pickle)
    index = json.loads((folder / "model_index.json").read_text())
    class_name = index.get("_class_name", "StableDiffusionPipeline")
    if class_name not in PIPELINE_CLASSES:
        raise ModelLoadError(f"{folder} holds a {class_name}; stepviz steps Stable Diffusion 1.x/2.x, SDXL, SD3 and "
                             f"FLUX.1 pipelines only: {', '.join(PIPELINE_CLASSES)}")
    import diffusers

    cls = getattr(diffusers, class_name)
    notices = []
    parts = part_folders(folder, index)
    variant = weight_variant(parts.get("unet", folder / "unet"), variant, notices)
    check_component_files(index, parts, folder, variant, allow_pickle, progress)
    if PARTS_KEY in index:
        try:
            pipe = assemble_pipeline(cls, index, parts, torch_dtype, progress)
        except Exception as exc:  # diffusers raises many kinds; one clear line for the user
            raise ModelLoadError(f"could not load the weights of {folder}: {first_line(exc)}") from None
        return _ready(pipe, model, folder, device, attention_slicing, vae_tiling, notices, parts)
    # a component saved as none (an SD3 pipeline saved without T5: [null, null]) is passed as None, without which
    # diffusers' from_pretrained refuses the folder ("expected ... but only ... were passed")
    extra = {name: None for name, entry in index.items() if not name.startswith("_") and entry == [None, None]}
    skipped = [name for name in UNUSED_COMPONENTS if (index.get(name) or [None])[0] is not None
               and not (folder / name).is_dir()]
    if "safety_checker" in index:
        extra.update(safety_checker=None, requires_safety_checker=False)
    extra.update({name: None for name in skipped})
    if skipped:
        notices.append(f"model_index.json names {' and '.join(skipped)}, absent from the folder: loaded without "
                       "(stepviz does not use them)")
    progress(f"loading {', '.join(component_names(index))} (diffusers' from_pretrained)")
    try:
        pipe = cls.from_pretrained(folder, dtype=torch_dtype, use_safetensors=None if allow_pickle else True,
                                   local_files_only=True, variant=variant, **extra)
    except Exception as exc:  # diffusers raises many kinds; one clear line for the user
        raise ModelLoadError(f"could not load the weights in {folder}: {first_line(exc)}") from None
    return _ready(pipe, model, folder, device, attention_slicing, vae_tiling, notices, parts)


def component_names(index: dict) -> list[str]:
    """The components model_index.json lists with a class (the ones that are loaded)."""
    return [name for name, entry in index.items()
            if not name.startswith("_") and isinstance(entry, list) and len(entry) == 2 and entry[0] is not None]


def check_component_files(index: dict, parts: dict[str, Path], folder: Path, variant: str | None,
                          allow_pickle: bool, progress=lambda text: None) -> None:
    """Every component with weights (and the preview decoder): config values of the right types, and tensors
    whose names and shapes are the ones its config makes (weight_check.py), before anything is built."""
    from .weight_check import check_component, component_class

    for name in component_names(index):
        place = parts.get(name, folder / name)
        if place.is_dir():
            progress(f"checking {name}")
            cls = component_class(name, *index[name])
            check_component(name, cls, place, variant, allow_pickle)
    preview = parts.get("preview_decoder")
    if preview is not None and preview.is_dir():
        check_component("preview_decoder", component_class("preview_decoder", "diffusers", "AutoencoderTiny"),
                        preview, None, allow_pickle)


def assemble_pipeline(cls, index: dict, parts: dict[str, Path], torch_dtype, progress=lambda text: None):
    """The pipeline built from its parts' folders, each loaded as diffusers' from_pretrained loads a
    component (safetensors only, offline, the pipeline's dtype for the weights), with the config values
    model_index.json gives it (PART_CONFIG_KEY)."""
    import importlib
    import inspect

    import torch

    configs = index.get(PART_CONFIG_KEY) or {}
    if not (isinstance(configs, dict) and all(isinstance(values, dict) for values in configs.values())):
        raise ModelLoadError(f"model_index.json: {PART_CONFIG_KEY} must map part names to config values")
    arguments = {}
    for name in inspect.signature(cls.__init__).parameters:
        entry = index.get(name)
        if name == "requires_safety_checker":
            arguments[name] = bool(entry)
        elif isinstance(entry, list) and len(entry) == 2 and entry[0] is not None:
            library, class_name = entry
            if library not in ("diffusers", "transformers"):
                raise ModelLoadError(f"component {name!r}: library {library!r} is not diffusers or transformers")
            part_class = getattr(importlib.import_module(library), class_name)
            options = {}
            if issubclass(part_class, torch.nn.Module):
                options = {"dtype" if library == "transformers" else "torch_dtype": torch_dtype,
                           "use_safetensors": True}
            progress(f"loading {name}")
            arguments[name] = part_class.from_pretrained(parts[name], local_files_only=True, **options,
                                                         **configs.get(name, {}))
        elif name not in ("self", "args", "kwargs"):
            arguments[name] = None
    return cls(**arguments)


def first_line(exc: Exception) -> str:
    """An exception's first line (at most 200 characters), or its class name when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else exc.__class__.__name__


def _ready(pipe, model, folder, device, attention_slicing: bool, vae_tiling: bool, notices: list[str],
           parts: dict[str, Path] | None = None):
    """The loaded pipeline on its device, quiet, labelled with where it came from and what loading noticed."""
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(device)
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
    facts = facts_of(pipe)
    facts.model_id, facts.folder, facts.notices = str(model), folder, notices
    facts.parts = parts or {}  # where each part's files are (folder/<name>, or a shared part's folder)
    return pipe


def weight_variant(unet: Path, variant: str | None, notices: list[str]) -> str | None:
    """The variant to load: the one asked for (checked), or the only one the UNet's folder holds."""
    found = variants_in(unet)
    if variant is not None:
        if found and variant not in found:
            plain = "plain files" if None in found else ""
            variants = [f"*.{v}.safetensors" for v in sorted(v for v in found if v)]
            kinds = ", ".join(variants + ([plain] if plain else []))
            raise ModelLoadError(f"variant={variant!r}: {unet} has no *.{variant}.safetensors "
                                 f"(it holds {kinds})")
        return variant
    if found and None not in found and len(found) == 1:
        (only,) = found
        notices.append(f"only {only} weight files (*.{only}.safetensors) in {unet.parent.name}: loading the {only} "
                       "variant")
        return only
    return None


def variants_in(folder: Path) -> set[str | None]:
    """The variants of the safetensors weights in a component folder (None: the plain, variant-less files).

    diffusers names them diffusion_pytorch_model.<variant>.safetensors, sharded ...<variant>-00001-of-00002.
    """
    found: set[str | None] = set()
    if not folder.is_dir():
        return found
    for path in folder.glob("*.safetensors"):
        middle = path.name.split(".")[1:-1]
        found.add(middle[0].split("-")[0] if middle else None)
    return found


def quiet_libraries() -> None:
    """Keep diffusers' and transformers' progress bars and import chatter off the user's terminal."""
    for name in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
        os.environ.setdefault(name, "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()  # also when diffusers was imported before the variables were set
    transformers_logging.set_verbosity_error()
