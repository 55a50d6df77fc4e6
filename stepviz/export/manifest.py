"""manifest.json of an export: what ran, on which weights, with which library versions.

Someone holding only the export folder can tell how to make the same pictures again:
versions, model id and weights hash, seed, the scheduler configs in use, every scripted
event and edit with its step, and how many steps actually ran.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

from ..engine.pipeline_facts import facts_of
from ..engine.prediction import prediction_for
from ..models.folder_check import weight_files

FULL_HASH_LIMIT = 1 << 30  # above 1 GiB of safetensors, hash names, sizes and the first and last MiB
EDGE_BYTES = 1 << 20

_hash_cache: dict[tuple, tuple[str, str]] = {}


def weights_hash(folder: str | Path | None) -> tuple[str | None, str]:
    """(sha256 hex, method) over the folder's safetensors files (or the single file), in path order; cached."""
    if folder is None:
        return None, "no model folder (pipeline built in code)"
    folder = Path(folder)
    named = [(folder.name, folder)] if folder.is_file() else weight_files(folder)  # a single file: its name
    if not named:
        return None, "no safetensors files in the model folder"
    files = [path for _, path in named]
    stats = tuple((name, p.stat().st_size, p.stat().st_mtime_ns) for name, p in named)
    key = (str(folder.resolve()), stats)
    if key in _hash_cache:
        return _hash_cache[key]
    total = sum(size for _, size, _ in stats)
    digest = hashlib.sha256()
    quick = total > FULL_HASH_LIMIT
    for path, (name, size, _) in zip(files, stats):
        digest.update(f"{name}\0{size}\0".encode())
        with path.open("rb") as handle:
            if quick:
                digest.update(handle.read(EDGE_BYTES))
                handle.seek(max(0, size - EDGE_BYTES))
                digest.update(handle.read(EDGE_BYTES))
            else:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
    method = ("sha256 over each safetensors file's relative path, size, first and last MiB (model > 1 GiB)"
              if quick else "sha256 over each safetensors file's relative path, size and full contents")
    _hash_cache[key] = (digest.hexdigest(), method)
    return _hash_cache[key]


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("stepviz", "diffusers", "transformers", "torch"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def describe_picture(value) -> str | None:
    """A path as text; a PIL image by the source stepviz noted on it, else its size."""
    if value is None:
        return None
    from PIL import Image

    if isinstance(value, Image.Image):
        return value.info.get("stepviz_source") or f"PIL image {value.size[0]}x{value.size[1]} {value.mode}"
    if hasattr(value, "shape"):
        return f"{type(value).__name__} {list(value.shape)}"
    return str(value)


def plain_config(config) -> dict:
    """A scheduler config as JSON-ready values (tuples and arrays become lists)."""
    result = {}
    for key, value in dict(config).items():
        if key == "_use_default_values":  # from_config would drop these keys' values: the config that ran has them
            continue
        if hasattr(value, "tolist"):
            value = value.tolist()
        elif isinstance(value, tuple):
            value = list(value)
        result[key] = value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)
    return result


def settings_summary(settings, guidance_scale: float | None = None) -> dict:
    """The run's settings; guidance_scale: the one the run started with, where the settings left it to the model."""
    if settings.guidance_scale is not None:
        guidance_scale = settings.guidance_scale
    return dict(model=str(settings.model), mode=settings.mode, prompt=settings.prompt,
                negative_prompt=settings.negative_prompt, seed=settings.seed, steps=settings.steps,
                guidance_scale=guidance_scale, scheduler=settings.scheduler, height=settings.height,
                width=settings.width, strength=settings.strength, image=describe_picture(settings.image),
                mask_image=describe_picture(settings.mask_image), depth_map=describe_picture(settings.depth_map))


def build_manifest(settings, stepper, *, scheduler_configs: list[dict], events_applied: list[dict],
                   stopped: str | None, kind: str, every: int, animation: str, compare: list[dict],
                   files: list[str]) -> dict:
    pipe = stepper.pipe
    digest, method = weights_hash(facts_of(pipe).folder)
    return {
        "versions": library_versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenario": settings.source,
        "title": settings.title,
        "description": settings.description,
        "model": {"id": facts_of(pipe).model_id or str(settings.model),
                  "folder": str(facts_of(pipe).folder),
                  "weights_sha256": digest, "weights_hash_method": method,
                  "dtype": str(stepper.dtype).removeprefix("torch."), "device": str(stepper.device),
                  "prediction_type": stepper.prediction_type,  # as diffusers' config spells it
                  "predicts": prediction_for(stepper.prediction_type).symbol},  # as the TUI and plots say it
        "seed": stepper.seed,
        "settings": settings_summary(settings, stepper.records[0].guidance_scale if stepper.records
                                     else stepper.guidance_scale),
        "size": {"height": stepper.height, "width": stepper.width},
        "scheduler_configs": scheduler_configs,
        "events": events_applied,
        "edits": [{"at_step": e.at_step, "action": e.action, "detail": e.detail} for e in stepper.log],
        "steps_planned": settings.steps,
        "steps_run": len(stepper.records),
        "stopped": stopped,
        "notices": list(stepper.notices),
        "preview": kind,
        "every": every,
        "animation": animation,
        "compare": compare,
        "files": files,
    }


def write_json(data, path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
