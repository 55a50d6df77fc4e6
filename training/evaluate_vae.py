"""Can the toy VAE draw corners at 8x8 latents? The checker on its own round trip, by shape and size.

    python -m training.evaluate_vae [--model DIR] [--per-cell 8]

Every colour x shape x background, `per-cell` scenes each (seeds 16000..), drawn by the world,
encoded (posterior mean), optionally disturbed by Gaussian noise of std `noise` in the latent space
(the UNet's x0 is never exact: how forgiving is the decoder?), and decoded. For each shape and size
(circumradius as a share of the picture's side, the world draws 0.16..0.30) it prints how often the
checker names the shape, the mean IoU of the true shape's template, and the same for the drawn
pictures themselves.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from stepviz.render.preview import uint8_pictures
from stepviz.toy.checker import inspect
from stepviz.toy.world import BACKGROUNDS, COLOURS, SHAPES, draw_scene

from .extra_channels import pixels_from_uint8
from .sources import SHIPPED_MODEL, part

FIRST_SEED = 16_000
SIZE_BINS = ((0.16, 0.20), (0.20, 0.25), (0.25, 0.30))  # circumradius / side
NOISE_LEVELS = (0.0, 0.2, 0.4)


@torch.no_grad()
def disturbed_round_trip(vae, images: np.ndarray, noise: float, seed: int = 0) -> np.ndarray:
    """uint8 pictures through encode (mean) -> + noise * N(0, 1) -> decode."""
    z = vae.encode(pixels_from_uint8(images)).latent_dist.mean
    z = z + noise * torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
    return uint8_pictures(vae.decode(z).sample)


def round_trip_rows(vae, per_cell: int = 8, noise_levels=NOISE_LEVELS) -> list[dict]:
    """One row per (shape, size bin, source): source 'drawn' or 'VAE, noise s'."""
    cells = list(itertools.product(COLOURS, SHAPES, BACKGROUNDS))
    scenes = [draw_scene(*cells[i % len(cells)], seed=FIRST_SEED + i) for i in range(per_cell * len(cells))]
    images = np.stack([s.image for s in scenes])
    sources = {"drawn": images}
    for noise in noise_levels:
        sources[f"VAE, latent noise {noise:g}"] = np.concatenate(
            [disturbed_round_trip(vae, images[i:i + 72], noise, seed=i) for i in range(0, len(images), 72)])
    rows = []
    for source, pictures in sources.items():
        found = [inspect(p) for p in pictures]
        for shape, (low, high) in itertools.product(SHAPES, SIZE_BINS):
            picked = [(f, s) for f, s in zip(found, scenes)
                      if s.shape == shape and low <= s.radius / s.image.shape[0] < high]
            rows.append({
                "source": source, "shape": shape, "size": f"{low:.2f}-{high:.2f}", "n": len(picked),
                "shape_right": np.mean([f["shape"] == shape for f, _ in picked]),
                "colour_right": np.mean([f["colour"] == s.colour for f, s in picked]),
                "iou": np.mean([f["template_iou"].get(shape, 0.0) for f, _ in picked]),
            })
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| pictures | shape | circumradius / side | count | shape right | colour right | IoU of its template |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['source']} | {r['shape']} | {r['size']} | {r['n']} | {r['shape_right']:.1%} | "
              f"{r['colour_right']:.1%} | {r['iou']:.3f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from diffusers import AutoencoderKL

    parser = argparse.ArgumentParser(prog="python -m training.evaluate_vae", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=SHIPPED_MODEL, help="a shipped model's name or a pipeline folder")
    parser.add_argument("--per-cell", type=int, default=8, help="scenes per colour x shape x background")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.per_cell < 1:
        parser.error(f"--per-cell must be at least 1, not {args.per_cell}")
    torch.set_num_threads(args.threads)
    vae = AutoencoderKL.from_pretrained(part(args.model, "vae")).eval()
    print(format_rows(round_trip_rows(vae, args.per_cell)))


if __name__ == "__main__":
    main()
