"""Does the toy model obey its prompt? Run the real diffusers pipeline and ask the checker.

    python -m training.evaluate [--model toy|toy-flow|DIR] [--seeds 4] [--steps 25] [--scheduler ddim] [--grids DIR]
                                [--pairs N]

The fixed evaluation set: every colour x shape x background prompt (36) with seeds 14000..14003
(generator = torch.Generator().manual_seed(seed)), 144 pictures, generated with
the diffusers pipeline the model names (stepviz's loader) and DDIM (25 steps) at guidance 7.5 and 1.0. These
seeds were never used while training (training draws its noise from generators seeded by
(seed, phase, step)) nor while choosing settings (that used seeds 0..7). The table gives how often
the checker finds the prompted colour, shape (template fit), both, and background, the shape by the
template rule alone (no convexity or rival test), and how often the default "approx" preview of the
final step's x_t and x0-hat names the same colour as the full VAE decode of the same latents. --pairs N (version
3's models) also judges N two-shape prompts (seeds 20000..) by check_scene: both pairs, placement, background.
A flow model (toy-flow, a StableDiffusion3Pipeline folder train_flow wrote) runs in diffusers'
StableDiffusion3Pipeline under its own FlowMatchEuler scheduler (SD3's shift 3.0); that scheduler returns no
x0-hat, so its table has no preview columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stepviz.engine.schedulers import make_scheduler
from stepviz.toy.checker import check, inspect
from stepviz.toy.world import all_captions

from .sources import SHIPPED_MODEL, is_flow_model, load_toy_pipeline

GUIDANCE_SCALES = (7.5, 1.0)
EVAL_FIRST_SEED = 14_000  # the fixed evaluation set's seeds: 14000, 14001, ... per prompt
GRID_FIRST_SEED = 15_000  # the 4 x 4 grids of fresh pictures


def generate_recording(pipe, prompts: list[str], seeds: list[int], guidance_scale: float,
                       steps: int = 25) -> tuple[np.ndarray, list[tuple[torch.Tensor, torch.Tensor]]]:
    """(uint8 pictures, [(x_t, x0-hat) after each step]), one picture per (prompt, seed) pair, seed i drawn by
    its own generator. The scheduler's step is wrapped for the call to keep what it returns."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    trail = []
    scheduler_step = pipe.scheduler.step

    def recording_step(*args, **kwargs):
        out = scheduler_step(*args, **kwargs)
        parts = out if isinstance(out, tuple) else (out.prev_sample, getattr(out, "pred_original_sample", None))
        trail.append((parts[0], parts[1] if len(parts) > 1 else None))  # PNDM gives no x0-hat: None
        return out

    pipe.scheduler.step = recording_step
    try:
        with torch.no_grad():
            images = pipe(prompt=prompts, num_inference_steps=steps, guidance_scale=guidance_scale,
                          generator=generators, output_type="np").images
    finally:
        del pipe.scheduler.step
    return np.clip(np.round(images * 255), 0, 255).astype(np.uint8), trail


def generate_with_final_step(pipe, prompts: list[str], seeds: list[int], guidance_scale: float,
                             steps: int = 25) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """(uint8 pictures, the last step's x_t, its x0-hat), one per (prompt, seed) pair."""
    images, trail = generate_recording(pipe, prompts, seeds, guidance_scale, steps)
    return images, trail[-1][0], trail[-1][1]


def generate(pipe, prompts: list[str], seeds: list[int], guidance_scale: float, steps: int = 25) -> np.ndarray:
    """uint8 pictures, one per (prompt, seed) pair, seed i drawn by its own generator."""
    return generate_with_final_step(pipe, prompts, seeds, guidance_scale, steps)[0]


def preview_agrees(pipe, latents: torch.Tensor) -> list[bool]:
    """Per latent: does the default quick preview ("approx") name the same colour as the full VAE decode?"""
    from stepviz.render.preview import decode_images, preview

    full = decode_images(pipe, latents)
    return [inspect(preview(pipe, z[None], "approx"))["colour"] == inspect(picture)["colour"]
            for z, picture in zip(latents, full)]


def _share(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def accuracy_table(pipe, prompts: list[str] | None = None, seeds_per_prompt: int = 4,
                   guidance_scales=GUIDANCE_SCALES, steps: int = 25, batch: int = 72,
                   first_seed: int = EVAL_FIRST_SEED, previews: bool = True) -> dict:
    """{guidance: {"colour", "shape", "both", "background", "template_shape", "n"[, "preview_x_t", "preview_x0",
    "preview_both"]}} with shares in 0..1; seeds first_seed .. first_seed + seeds_per_prompt - 1 per prompt."""
    prompts = prompts if prompts is not None else all_captions()
    pairs = [(p, first_seed + s) for p in prompts for s in range(seeds_per_prompt)]
    table = {}
    for scale in guidance_scales:
        results, agree_x_t, agree_x0 = [], [], []
        for start in range(0, len(pairs), batch):
            chunk = pairs[start:start + batch]
            images, x_t, x0 = generate_with_final_step(pipe, [p for p, _ in chunk], [s for _, s in chunk], scale, steps)
            results += [check(image, prompt) for image, (prompt, _) in zip(images, chunk)]
            previews = previews and x0 is not None  # a scheduler that gives no x0-hat: no preview columns
            if previews:
                agree_x_t += preview_agrees(pipe, x_t)
                agree_x0 += preview_agrees(pipe, x0)
        row = {
            "colour": _share([r["colour_ok"] for r in results]),
            "shape": _share([r["shape_ok"] for r in results]),
            "both": _share([r["colour_ok"] and r["shape_ok"] for r in results]),
            "background": _share([r["background_ok"] for r in results]),
            "template_shape": _share([r["template_ok"] for r in results]),
            "n": len(results),
        }
        if previews:
            row.update(preview_x_t=_share(agree_x_t), preview_x0=_share(agree_x0),
                       preview_both=_share([a and b for a, b in zip(agree_x_t, agree_x0)]))
        table[scale] = row
    return table


PAIR_FIRST_SEED = 20_000  # two-shape evaluation: prompt i uses seed 20000 + i


def pair_prompts(count: int, seed: int = 0) -> list[str]:
    """`count` two-shape captions (different colours; half "and", half a placement), drawn from `seed`."""
    from stepviz.toy.world import BACKGROUNDS, COLOURS, PLACEMENTS, SHAPES, pair_caption

    rng = np.random.default_rng(seed)
    prompts = []
    for i in range(count):
        first, second = (list(COLOURS)[c] for c in rng.choice(len(COLOURS), size=2, replace=False))
        shapes = [SHAPES[k] for k in rng.integers(len(SHAPES), size=2)]
        placement = None if i % 2 == 0 else PLACEMENTS[(i // 2) % len(PLACEMENTS)]
        prompts.append(pair_caption((first, shapes[0]), (second, shapes[1]), list(BACKGROUNDS)[i % 2], placement))
    return prompts


def pair_accuracy(pipe, count: int = 48, guidance_scale: float = 7.5, steps: int = 25, batch: int = 24,
                  first_seed: int = PAIR_FIRST_SEED, grid: Path | None = None) -> dict:
    """Two-shape prompts judged by check_scene: shares of both pairs right, placement right (placement prompts),
    background right, and the counts. With `grid`, the first 16 pictures are also saved there, framed green where
    both pairs (and the placement) are right, with their prompts beside it in a .txt of the same name."""
    from stepviz.toy.checker import check_scene

    prompts = pair_prompts(count)
    results, pictures = [], []
    for start in range(0, count, batch):
        chunk = prompts[start:start + batch]
        images = generate(pipe, chunk, [first_seed + start + i for i in range(len(chunk))], guidance_scale, steps)
        results += [check_scene(image, prompt) for image, prompt in zip(images, chunk)]
        pictures += list(images[:max(0, 16 - len(pictures))])
    if grid is not None:
        right = [r["pairs_ok"] and r["placement_ok"] is not False for r in results]
        save_framed_grid(pictures, right, grid)
        Path(grid).with_suffix(".txt").write_text(
            "".join(f"{i // 4 + 1}.{i % 4 + 1} {'right' if ok else 'wrong'}: {prompt}\n"
                    for i, (prompt, ok) in enumerate(zip(prompts, right[:len(pictures)]))))
    placed = [r["placement_ok"] for r in results if r["placement_ok"] is not None]
    return {"pairs": _share([r["pairs_ok"] for r in results]), "placement": _share(placed),
            "background": _share([r["background_ok"] for r in results]), "n": len(results), "n_placed": len(placed)}


def format_table(table: dict) -> str:
    previews = all("preview_both" in row for row in table.values())
    head = "| guidance | colour right | shape right | both right | background right | shape, template rule alone |"
    head += " preview colour = decode (x_t / x0-hat / both) |" if previews else ""
    lines = [head + " pictures |", "|---" * (head.count("|")) + "|"]
    for scale, row in table.items():
        line = (f"| {scale} | {row['colour']:.1%} | {row['shape']:.1%} | {row['both']:.1%} | {row['background']:.1%} "
                f"| {row['template_shape']:.1%} |")
        if previews:
            line += f" {row['preview_x_t']:.1%} / {row['preview_x0']:.1%} / {row['preview_both']:.1%} |"
        lines.append(line + f" {row['n']} |")
    return "\n".join(lines)


def save_shape_grids(pipe, out_dir: str | Path, guidance_scale: float = 7.5, steps: int = 25,
                     first_seed: int = GRID_FIRST_SEED) -> list[Path]:
    """A 4 x 4 grid of fresh pictures per shape (colours and backgrounds in turn), framed green where the
    checker finds colour and shape right, red where not. Returns the PNG paths."""
    from stepviz.toy.world import BACKGROUNDS, COLOURS, SHAPES, caption

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for shape in SHAPES:
        prompts = [caption(list(COLOURS)[i % len(COLOURS)], shape, list(BACKGROUNDS)[(i // len(COLOURS)) % 2])
                   for i in range(16)]
        images = generate(pipe, prompts, [first_seed + i for i in range(16)], guidance_scale, steps)
        results = [check(image, prompt) for image, prompt in zip(images, prompts)]
        right = [result["colour_ok"] and result["shape_ok"] for result in results]
        paths.append(save_framed_grid(images, right, out_dir / f"grid-{shape}.png"))
    return paths


def save_framed_grid(images, right: list[bool], path: str | Path) -> Path:
    """Pictures four to a row, each framed green where `right`, red where not, at twice their size."""
    from PIL import Image

    size = images[0].shape[0] + 4
    rows = (len(images) + 3) // 4
    grid = np.full((rows * size, 4 * size, 3), 128, dtype=np.uint8)
    for i, (image, ok) in enumerate(zip(images, right)):
        y, x = (i // 4) * size, (i % 4) * size
        grid[y:y + size, x:x + size] = (40, 200, 60) if ok else (230, 40, 40)
        grid[y + 2:y + size - 2, x + 2:x + size - 2] = image
    path = Path(path)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)
    return path


def img2img_position_shift(model_dir: str | Path = SHIPPED_MODEL, count: int = 12, strength: float = 0.5,
                           guidance_scale: float = 7.5, steps: int = 25) -> list[float]:
    """img2img from toy scenes: how far (pixels) the shape's centroid moves, per scene.

    Uses diffusers' StableDiffusionImg2ImgPipeline on the same folder, prompted with
    each scene's own caption; the checker's blob centroid is compared with the scene's.
    """
    from diffusers import StableDiffusionImg2ImgPipeline

    from stepviz.toy.checker import inspect
    from stepviz.toy.world import BACKGROUNDS, COLOURS, SHAPES, draw_scene

    pipe = load_toy_pipeline(model_dir, StableDiffusionImg2ImgPipeline)
    cells = [(c, s, b) for c in COLOURS for s in SHAPES for b in BACKGROUNDS]
    scenes = [draw_scene(*cells[(7 * i) % len(cells)], seed=500 + i) for i in range(count)]
    shifts = []
    for i, scene in enumerate(scenes):
        with torch.no_grad():
            image = pipe(scene.caption, image=scene.pil(), strength=strength, guidance_scale=guidance_scale,
                         num_inference_steps=steps, generator=torch.Generator().manual_seed(i),
                         output_type="np").images[0]
        blob = inspect(np.clip(np.round(image * 255), 0, 255).astype(np.uint8))["mask"]
        if not blob.any():
            shifts.append(float("inf"))
            continue
        ys, xs = np.nonzero(blob)
        shifts.append(float(np.hypot(xs.mean() + 0.5 - scene.centre[0], ys.mean() + 0.5 - scene.centre[1])))
    return shifts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHIPPED_MODEL), help="a shipped model's name or a pipeline folder")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per prompt, from --first-seed on")
    parser.add_argument("--first-seed", type=int, default=EVAL_FIRST_SEED, help="the evaluation set's first seed")
    parser.add_argument("--grids", default=None, help="also save a 4 x 4 grid of fresh pictures per shape there "
                                                      "(and, with --pairs, of the first 16 two-shape pictures)")
    parser.add_argument("--steps", type=int, default=25, help="scheduler steps")
    parser.add_argument("--scheduler", default=None,
                        help="a stepviz scheduler name (`stepviz schedulers`) built from the model's config; the "
                             "evaluation set's figures are DDIM's (default), a flow model's its own FlowMatchEuler")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on busy cores)")
    parser.add_argument("--pairs", type=int, default=0,
                        help="also judge this many two-shape prompts (version 3's captions) at guidance 7.5")
    parser.add_argument("--img2img", action="store_true", help="also check img2img at strength 0.5 keeps positions")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = load_toy_pipeline(args.model)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, not {args.seeds}")
    if args.scheduler is not None or not is_flow_model(args.model):
        try:
            pipe.scheduler = make_scheduler(args.scheduler or "ddim", pipe.scheduler.config)
        except ValueError as exc:
            parser.error(str(exc))
    print(format_table(accuracy_table(pipe, seeds_per_prompt=args.seeds, steps=args.steps, first_seed=args.first_seed)))
    grid = Path(args.grids) / "grid-pairs.png" if args.grids and args.pairs > 0 else None
    if grid is not None:
        grid.parent.mkdir(parents=True, exist_ok=True)
    if args.pairs > 0:
        row = pair_accuracy(pipe, args.pairs, steps=args.steps, grid=grid)
        print(f"two shapes, guidance 7.5: both pairs right {row['pairs']:.1%} of {row['n']}, placement right "
              f"{row['placement']:.1%} of {row['n_placed']}, background right {row['background']:.1%}")
    if args.grids:
        for path in save_shape_grids(pipe, args.grids, steps=args.steps) + ([grid] if grid else []):
            print(f"wrote {path}")
    if args.img2img:
        shifts = img2img_position_shift(args.model, steps=args.steps)
        print(f"img2img, strength 0.5: shape centroid moved {np.median(shifts):.1f} px (median), "
              f"{max(shifts):.1f} px (max) over {len(shifts)} scenes")


if __name__ == "__main__":
    main()
