"""A strip written to a file: the TUI's `x` key and every picture `stepviz export` and `grid` write.

Every file is written under a temporary name and renamed, so a reader never sees half a PNG.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from PIL import Image

from ..render.strip import kept_indices, strip_image, strip_pictures


def save_atomically(image: Image.Image, path: Path, **save_options) -> Path:
    """Write under a temporary name in the same folder, then rename over `path`."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.save(temporary, format=save_options.pop("format", None) or _format_for(path), **save_options)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _format_for(path: Path) -> str:
    return {".png": "PNG", ".webp": "WEBP", ".gif": "GIF"}[path.suffix.lower()]


def export_strip(stepper, out_dir: Path, kind: str = "approx", every: int = 1) -> Path:
    """The current branch of a Stepper as a labelled strip PNG in out_dir; returns its (unique) path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = stepper.records
    if not records:
        raise ValueError("no steps taken yet: take a step before exporting a strip")
    kept = kept_indices(len(records), every)
    chosen = [records[i] for i in kept]
    pictures = strip_pictures(stepper.pipe, chosen, kind)
    # strip_image picks kept columns itself: give it every record with pictures at the kept places
    by_index = dict(zip(kept, pictures))
    full = [by_index.get(i) for i in range(len(records))]
    image = strip_image(records, full, every, title=f"{stepper.prompt!r}  seed {stepper.seed}  ({kind})")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"stepviz-strip-{stamp}.png"
    number = 1
    while path.exists():
        number += 1
        path = out_dir / f"stepviz-strip-{stamp}-{number}.png"
    return save_atomically(image, path)
