"""The models a trainer starts from or measures: a shipped model's name ("toy", "toy-inpaint", "toy-depth") or a
pipeline folder a trainer wrote. The shipped ones share parts (stepviz/toy/weights/), found through
stepviz.models, the one home of their paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from stepviz.models.folder_check import PARTS_KEY, part_folders
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


def load_toy_pipeline(model: str | Path = SHIPPED_MODEL, pipeline_class=None):
    """The model on the CPU in float32 with a DDIM scheduler, as the class its folder names (or
    `pipeline_class` over the same parts); stepviz.render.preview finds its preview decoder."""
    from diffusers import DDIMScheduler

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
    index.pop(PARTS_KEY, None)
    (destination / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return destination
