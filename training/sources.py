"""The models a trainer starts from or measures: a shipped model's name ("toy", "toy-inpaint", "toy-depth") or a
pipeline folder a trainer wrote. The shipped ones share parts (stepviz/toy/weights/), found through
stepviz.models, the one home of their paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from stepviz.models.folder_check import PART_CONFIG_KEY, PARTS_KEY, part_folders
from stepviz.models.loading import SHIPPED, load_pipeline, resolve, shipped_folder

SHIPPED_MODEL = "toy"
PROVENANCE = Path(__file__).resolve().parent / "models"  # each shipped model's TRAINING.md, reports, loss curves


def part(model: str | Path, name: str) -> Path:
    """The folder (or file) of one part of `model`: a shipped model's shared part, or folder/name (any folder a
    trainer wrote, e.g. the depth estimator's)."""
    folder = shipped_folder(str(model)) if str(model) in SHIPPED else Path(model)
    if (folder / "model_index.json").is_file():
        return part_folders(folder).get(name, folder / name)
    return folder / name


FLOW_PIPELINE = "StableDiffusion3Pipeline"  # the toy flow model's class (train_flow.py)


def is_flow_model(model: str | Path) -> bool:
    """Does `model` (a shipped name or a pipeline folder) name the toy flow model's class?"""
    return json.loads((resolve(model) / "model_index.json").read_text()).get("_class_name") == FLOW_PIPELINE


def load_flow_pipeline(model: str | Path):
    """A toy flow model (a StableDiffusion3Pipeline folder, plain or with a parts map) on the CPU in float32 with
    its own FlowMatchEuler scheduler, through the loader's checks of the folder and of every component's files;
    the pipeline class is diffusers' own."""
    import diffusers
    import torch

    from stepviz.models.folder_check import check_model_folder
    from stepviz.models.loading import _ready, assemble_pipeline, check_component_files

    folder = resolve(model)
    check_model_folder(folder)
    index = json.loads((folder / "model_index.json").read_text())
    parts = part_folders(folder, index)
    check_component_files(index, parts, folder, None, False)
    pipe = assemble_pipeline(getattr(diffusers, FLOW_PIPELINE), index, parts, torch.float32)
    return _ready(pipe, model, folder, "cpu", False, False, [], parts)


def load_toy_pipeline(model: str | Path = SHIPPED_MODEL, pipeline_class=None):
    """The model on the CPU in float32 with a DDIM scheduler, as the class its folder names (or
    `pipeline_class` over the same parts); stepviz.render.preview finds its preview decoder. A flow model keeps
    its FlowMatchEuler scheduler (load_flow_pipeline)."""
    from diffusers import DDIMScheduler

    if is_flow_model(model):
        return load_flow_pipeline(model)
    pipe = load_pipeline(str(model), device="cpu", dtype="float32")
    if pipeline_class is not None and not isinstance(pipe, pipeline_class):
        noted = {key: value for key, value in vars(pipe).items() if key.startswith("stepviz_")}
        pipe = pipeline_class.from_pipe(pipe)
        vars(pipe).update(noted)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_plain_folder(model: str | Path, destination: Path) -> Path:
    """`model` as a plain diffusers folder (each part copied in, no parts map), which from_pretrained loads."""
    folder = resolve(model)
    index = json.loads((folder / "model_index.json").read_text())
    if PARTS_KEY not in index:
        shutil.copytree(folder, destination, ignore=shutil.ignore_patterns("scratch"))
        return destination
    destination.mkdir(parents=True)
    for name, source in part_folders(folder, index).items():
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, destination / name)
    for name, values in (index.pop(PART_CONFIG_KEY, None) or {}).items():  # the values the loader gives the part
        (config,) = [path for path in (destination / name).glob("*config.json")]
        config.write_text(json.dumps({**json.loads(config.read_text()), **values}, indent=2) + "\n")
    index.pop(PARTS_KEY, None)
    (destination / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return destination
