"""Does the toy model obey its prompt? Run the real diffusers pipeline and ask the checker.

    python -m stepviz.toy.evaluate [--model DIR] [--seeds 4] [--steps 25]

For every colour x shape x background prompt and a few fixed seeds, generate with
`StableDiffusionPipeline.from_pretrained(DIR)` and DDIM (25 steps) at guidance 7.5
and 1.0 (generator = torch.Generator().manual_seed(seed)), then print how often the
checker finds the prompted colour, shape and background.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .checker import check
from .world import all_captions

SHIPPED_MODEL = Path(__file__).parent / "model"
GUIDANCE_SCALES = (7.5, 1.0)


def load_toy_pipeline(model_dir: str | Path = SHIPPED_MODEL):
    """The toy model as a plain StableDiffusionPipeline with a DDIM scheduler."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir))
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, prompts: list[str], seeds: list[int], guidance_scale: float, steps: int = 25) -> np.ndarray:
    """uint8 pictures, one per (prompt, seed) pair, seed i drawn by its own generator."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    with torch.no_grad():
        images = pipe(prompt=prompts, num_inference_steps=steps, guidance_scale=guidance_scale,
                      generator=generators, output_type="np").images
    return np.clip(np.round(images * 255), 0, 255).astype(np.uint8)


def accuracy_table(pipe, prompts: list[str] | None = None, seeds_per_prompt: int = 4,
                   guidance_scales=GUIDANCE_SCALES, steps: int = 25, batch: int = 72) -> dict:
    """{guidance: {"colour": acc, "shape": acc, "background": acc, "n": count}} (acc in 0..1)."""
    prompts = prompts if prompts is not None else all_captions()
    pairs = [(p, s) for p in prompts for s in range(seeds_per_prompt)]
    table = {}
    for scale in guidance_scales:
        results = []
        for start in range(0, len(pairs), batch):
            chunk = pairs[start:start + batch]
            images = generate(pipe, [p for p, _ in chunk], [s for _, s in chunk], scale, steps)
            results += [check(image, prompt) for image, (prompt, _) in zip(images, chunk)]
        table[scale] = {
            "colour": float(np.mean([r["colour_ok"] for r in results])),
            "shape": float(np.mean([r["shape_ok"] for r in results])),
            "background": float(np.mean([r["background_ok"] for r in results])),
            "n": len(results),
        }
    return table


def format_table(table: dict) -> str:
    lines = ["| guidance | colour right | shape right | background right | pictures |", "|---|---|---|---|---|"]
    for scale, row in table.items():
        lines.append(f"| {scale} | {row['colour']:.1%} | {row['shape']:.1%} | {row['background']:.1%} | {row['n']} |")
    return "\n".join(lines)


def img2img_position_shift(model_dir: str | Path = SHIPPED_MODEL, count: int = 12, strength: float = 0.5,
                           guidance_scale: float = 7.5, steps: int = 25) -> list[float]:
    """img2img from toy scenes: how far (pixels) the shape's centroid moves, per scene.

    Uses diffusers' StableDiffusionImg2ImgPipeline on the same folder, prompted with
    each scene's own caption; the checker's blob centroid is compared with the scene's.
    """
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    from .checker import inspect
    from .world import BACKGROUNDS, COLOURS, SHAPES, draw_scene

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(str(model_dir))
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
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
    parser.add_argument("--model", default=str(SHIPPED_MODEL), help="pipeline folder (default: the shipped toy model)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1 per prompt")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on busy cores)")
    parser.add_argument("--img2img", action="store_true", help="also check img2img at strength 0.5 keeps positions")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = load_toy_pipeline(args.model)
    print(format_table(accuracy_table(pipe, seeds_per_prompt=args.seeds, steps=args.steps)))
    if args.img2img:
        shifts = img2img_position_shift(args.model, steps=args.steps)
        print(f"img2img, strength 0.5: shape centroid moved {np.median(shifts):.1f} px (median), "
              f"{max(shifts):.1f} px (max) over {len(shifts)} scenes")


if __name__ == "__main__":
    main()
