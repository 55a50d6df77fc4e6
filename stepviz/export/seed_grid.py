"""`stepviz grid`: one prompt over N seeds x several guidance scales, judged by the toy checker.

The run a class watches is one seed; whether guidance "works" is a statistic. The grid shows both:
grid.png has a row per seed and a column per guidance scale (each cell the final picture, framed
green where the checker finds the prompt's colour, shape and background, red where not), with the
checker's counts per scale printed under it. counts.csv / counts.json hold the same numbers and
cells.csv every cell's finding.

    stepviz grid guidance --seeds 10 --scales 1,3,7.5,15 --out grid-guidance
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SCALES = (1.0, 3.0, 7.5, 15.0)
CELL = 104  # a tile: 16 seeds side by side still fit a 1920 px slide, labels of 18 px and more


@dataclass
class Cell:
    seed: int
    scale: float
    picture: object
    found: dict  # colour, shape, background as the checker finds them
    right: dict  # colour_ok, shape_ok, background_ok

    @property
    def all_right(self) -> bool:
        return all(self.right.values())


def parse_scales(text: str) -> tuple[float, ...]:
    """"1,3,7.5,15" -> (1.0, 3.0, 7.5, 15.0); a bad list raises StepvizInputError naming it."""
    from ..engine.checks import StepvizInputError

    try:
        scales = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        scales = ()
    if not scales or not all(math.isfinite(s) for s in scales):
        raise StepvizInputError(f"--scales {text!r} is not allowed: give guidance scales separated by commas, "
                                "e.g. 1,3,7.5,15")
    return scales


def run_grid(settings, seeds: list[int], scales: tuple[float, ...], pipe=None, progress: bool = False) -> list[Cell]:
    """Every (seed, scale) run of `settings` (its events and compare runs left out), judged by the checker;
    `progress`: a bar with the time left on standard error."""
    from tqdm import tqdm

    from ..engine.checks import StepvizInputError
    from ..toy.checker import check
    from ..toy.world import parse_caption

    try:
        parse_caption(settings.prompt)
    except ValueError:
        raise StepvizInputError(f"prompt={settings.prompt!r}: the grid's checker judges toy captions only, like "
                                "'a red circle on a black background'") from None
    pipe = pipe or settings.load_pipeline()  # with the run's --device, --dtype and --variant
    cells = []
    with tqdm(total=len(seeds) * len(scales), disable=not progress, unit="run", leave=False,
              file=sys.stderr) as bar:
        for seed in seeds:
            for scale in scales:
                bar.set_description(f"seed {seed}, s = {scale:g}")
                run = settings.with_overrides(seed=seed, guidance_scale=scale, events=[], compare=[])
                stepper = run.make_stepper(pipe)
                stepper.run()
                picture = stepper.image()
                verdict = check(picture, settings.prompt)
                right = {k: verdict[k] for k in ("colour_ok", "shape_ok", "background_ok")}
                cells.append(Cell(seed, scale, picture, verdict["found"], right))
                bar.update()
    return cells


def counts(cells: list[Cell], scales) -> list[dict]:
    """Per scale: runs, and how many the checker finds right in colour, shape, background and all three."""
    rows = []
    for scale in scales:
        mine = [c for c in cells if c.scale == scale]
        rows.append({"guidance_scale": scale, "runs": len(mine),
                     **{f"{k}_right": sum(c.right[f"{k}_ok"] for c in mine) for k in ("colour", "shape",
                                                                                    "background")},
                     "all_right": sum(c.all_right for c in mine)})
    return rows


def counts_text(rows: list[dict]) -> list[str]:
    lines = [f"{'s':>6} {'colour':>8} {'shape':>8} {'backgr.':>8} {'all':>8}"]
    for row in rows:
        n = row["runs"]
        lines.append(f"{row['guidance_scale']:>6g} " + " ".join(
            f"{row[k]:>4}/{n:<3}" for k in ("colour_right", "shape_right", "background_right", "all_right")))
    return lines


def grid_image(cells: list[Cell], seeds, scales, title: str, rows: list[dict]):
    """One row per guidance scale, one column per seed (wide, like a slide), framed green where the checker finds
    colour, shape and background right; the counts below. Labels in the strips' font size."""
    from PIL import Image, ImageDraw

    from ..render.strip import BACKGROUND, INK, LABEL, LINE, label_font

    font = label_font(LABEL)
    gap = 8
    left = gap + max(int(font.getlength(f"s = {scale:g}")) for scale in scales) + 2 * gap
    top = 2 * LINE + gap
    lines = ["checker's counts (right / runs):", *counts_text(rows)]
    width = max(left + len(seeds) * (CELL + gap), gap + max(int(font.getlength(t)) for t in lines + [title]) + gap)
    height = top + len(scales) * (CELL + gap) + LINE * len(lines) + 2 * gap
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((gap, 2), title, fill=INK, font=font)
    for i, seed in enumerate(seeds):
        draw.text((left + i * (CELL + gap), top - LINE), f"seed {seed}", fill=INK, font=font)
    for j, scale in enumerate(scales):
        draw.text((gap, top + j * (CELL + gap) + CELL // 2 - LABEL // 2), f"s = {scale:g}", fill=INK, font=font)
    for cell in cells:
        i, j = seeds.index(cell.seed), scales.index(cell.scale)
        x, y = left + i * (CELL + gap), top + j * (CELL + gap)
        image.paste(cell.picture.resize((CELL, CELL)), (x, y))
        colour = (40, 170, 40) if cell.all_right else (210, 40, 40)
        draw.rectangle((x - 3, y - 3, x + CELL + 2, y + CELL + 2), outline=colour, width=3)
    y = top + len(scales) * (CELL + gap) + gap
    mono = label_font(LABEL, monospace=True)
    for line in lines:
        draw.text((gap, y), line, fill=INK, font=mono)
        y += LINE
    return image


def write_grid(folder: Path, cells, seeds, scales, settings) -> list[dict]:
    """grid.png, counts.csv, counts.json, cells.csv and manifest.json into `folder`; returns the counts."""
    from .manifest import library_versions, write_json
    from .strip import save_atomically

    rows = counts(cells, scales)
    scheduler = settings.scheduler or "the model's scheduler"
    title = f"{settings.prompt!r}, {settings.steps} steps, {scheduler}"
    save_atomically(grid_image(cells, list(seeds), list(scales), title, rows), folder / "grid.png")
    with (folder / "counts.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (folder / "cells.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seed", "guidance_scale", "colour", "shape", "background", "all_right"])
        for c in cells:
            writer.writerow([c.seed, c.scale, c.found["colour"], c.found["shape"], c.found["background"],
                             int(c.all_right)])
    summary = {"prompt": settings.prompt, "negative_prompt": settings.negative_prompt, "model": str(settings.model),
               "steps": settings.steps, "scheduler": settings.scheduler, "seeds": list(seeds), "counts": rows}
    write_json(summary, folder / "counts.json")
    files = ["grid.png", "counts.csv", "cells.csv", "counts.json", "manifest.json"]
    write_json({"kind": "stepviz grid", "versions": library_versions(), **summary, "files": files},
               folder / "manifest.json")
    return rows


def run_grid_command(settings, args) -> int:
    import shutil

    from ..engine.checks import StepvizInputError
    from .folder import check_output_folder, make_staging, move_into_place

    if args.seeds < 1:
        raise StepvizInputError(f"--seeds {args.seeds} is not allowed: it must be an integer >= 1")
    scales = DEFAULT_SCALES if args.scales is None else parse_scales(args.scales)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    target = check_output_folder(args.out, args.force)
    cells = run_grid(settings, seeds, scales, progress=sys.stderr.isatty())
    staging = make_staging(target)
    try:
        rows = write_grid(staging, cells, seeds, scales, settings)
        move_into_place(staging, target, args.force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"{settings.prompt!r}: {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}) x s in "
          f"{{{', '.join(f'{s:g}' for s in scales)}}}, {settings.steps} steps, "
          f"{settings.scheduler or 'the model scheduler'}")
    print("\n".join(counts_text(rows)))
    print(f"stepviz: wrote {target} (grid.png, counts.csv, counts.json, cells.csv)")
    return 0
