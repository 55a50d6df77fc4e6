"""Version 3's VAE: python -m training.train_vae_v3 --out DIR [--resume] | --out DIR --measure

1. draw version 3's scenes (128 px, one shape or two; cached in DIR/scratch);
2. train the AutoencoderKL (16x16 latents) with train_vae's loss plus latent_balance_loss (the latent
   channels share one spread) and linear_rgb_loss (colour coded linearly, so means of latents keep it);
3. fit `scaling_factor` as SD's was: 1 / std of the raw latents (posterior samples) over the scene set, kept
   in the VAE's config and applied by the pipelines (not folded into the weights: the factor is not 1);
4. save the VAE (safetensors) to DIR/vae and the std of the scaled latents, overall and per channel, to
   DIR/vae_report.md.

--measure: the round trip (encode, decode) of fresh drawn scenes judged by the strict checker, per colour,
per shape, and for two-shape scenes (both pairs, placement), and the colour separation and linearity of the
latents, appended to DIR/vae_report.md; drawn scenes above their round trips in DIR/vae_round_trips.png.
Resumable: the checkpoint goes to DIR/scratch every few minutes; rerun with --resume.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from . import components
from .scenes_v3 import PAIR_SHARE, V3_SIZE, load_or_draw_v3
from .train_vae import raw_latent_samples, train_vae

MEASURE_FIRST_SEED = 17_000  # round-trip scenes, never drawn for training (that rng is seeded by --seed)


def fit_scaling_factor(vae, scenes, count: int, seed: int) -> tuple[float, float, list[float]]:
    """Set vae.config.scaling_factor to 1 / std of the raw latents (SD's recipe); returns it and the std of the
    scaled latents overall and per channel."""
    z = raw_latent_samples(vae, scenes, count, seed, batch=64)
    factor = float(1.0 / z.std())
    vae.register_to_config(scaling_factor=factor)
    scaled = factor * z
    return factor, float(scaled.std()), scaled.std(dim=(0, 2, 3)).tolist()


@torch.no_grad()
def round_trip(vae, images: np.ndarray) -> np.ndarray:
    """uint8 pictures through encode (mean) -> scale -> unscale -> decode, as a pipeline does."""
    from stepviz.render.preview import uint8_pictures

    from .extra_channels import pixels_from_uint8

    factor = vae.config.scaling_factor
    pictures = []
    for start in range(0, len(images), 32):
        latents = factor * vae.encode(pixels_from_uint8(images[start:start + 32])).latent_dist.mean
        pictures.append(uint8_pictures(vae.decode(latents / factor).sample))
    return np.concatenate(pictures)


def round_trip_tables(vae, per_cell: int = 4, pairs: int = 96, size: int = V3_SIZE) -> str:
    """Markdown tables: one-shape round trips per colour and per shape, two-shape round trips overall."""
    from stepviz.toy.checker import check_scene
    from stepviz.toy.world import BACKGROUNDS, COLOURS, SHAPES, draw_scene, random_pair

    cells = list(itertools.product(COLOURS, SHAPES, BACKGROUNDS))
    singles = [draw_scene(*cell, seed=MEASURE_FIRST_SEED + i, size=size)
               for i, cell in enumerate(c for c in cells for _ in range(per_cell))]
    rng = np.random.default_rng(MEASURE_FIRST_SEED)
    doubles = [random_pair(rng, size) for _ in range(pairs)]
    lines = []
    for name, scenes in (("drawn", None), ("VAE round trip", vae)):
        images = np.stack([s.image for s in singles + doubles])
        pictures = images if scenes is None else round_trip(vae, images)
        results = [check_scene(p, s.caption) for p, s in zip(pictures, singles + doubles)]
        one, two = results[:len(singles)], results[len(singles):]
        by = {**{c: [r for r, s in zip(one, singles) if s.colour == c] for c in COLOURS},
              **{s_: [r for r, s in zip(one, singles) if s.shape == s_] for s_ in SHAPES}}
        cells_text = " | ".join(f"{np.mean([r['colour_ok'] and r['shape_ok'] for r in rs]):.0%}" for rs in by.values())
        placed = [r for r in two if r["placement_ok"] is not None]
        lines.append(f"| {name} | {cells_text} | {np.mean([r['pairs_ok'] for r in two]):.1%} | "
                     f"{np.mean([r['placement_ok'] for r in placed]):.1%} | "
                     f"{np.mean([r['background_ok'] for r in results]):.1%} |")
    head = ("| pictures | " + " | ".join([*COLOURS, *SHAPES]) + " | two shapes: both pairs right | placement right "
            "| background right |")
    return "\n".join([head, "|---" * (head.count("|") - 1) + "|", *lines]) + (
        f"\n\n(one shape: {len(singles)} scenes, colour and shape both right, by colour then by shape; "
        f"two shapes: {len(doubles)} scenes; seeds from {MEASURE_FIRST_SEED}; the strict checker)")


def pair_shapes_by_size(vae, pairs: int = 96, size: int = V3_SIZE, small: float = 0.16) -> str:
    """Two-shape round trips, each shape judged on its own (the blob of its colour among the two largest), by
    shape and by circumradius below / from `small` of the side."""
    from stepviz.toy.checker import inspect_things
    from stepviz.toy.world import SHAPES, random_pair

    rng = np.random.default_rng(MEASURE_FIRST_SEED)
    scenes = [random_pair(rng, size) for _ in range(pairs)]
    right: dict[tuple[str, bool], list[bool]] = {}
    for scene, picture in zip(scenes, round_trip(vae, np.stack([s.image for s in scenes]))):
        found = inspect_things(picture)["things"][:2]
        for thing in scene.things:
            same = [f for f in found if f["colour"] == thing.colour]
            right.setdefault((thing.shape, thing.radius / size < small), []).append(
                bool(same) and same[0]["shape"] == thing.shape)
    cells = [f"{shape}: {np.mean(right.get((shape, True), [np.nan])):.1%} / "
             f"{np.mean(right.get((shape, False), [np.nan])):.1%}" for shape in SHAPES]
    return (f"Two-shape round trips, each shape right (colour found, shape right), circumradius below / from "
            f"{small} of the side: " + ", ".join(cells) + ".")


def save_round_trip_grid(vae, path: Path, size: int = V3_SIZE, count: int = 6) -> None:
    """Rows: `count` drawn two-shape scenes, their round trips, `count` one-shape scenes, theirs (seed 123)."""
    from PIL import Image

    from stepviz.toy.world import random_pair, random_scene

    rng = np.random.default_rng(123)
    pairs = np.stack([random_pair(rng, size).image for _ in range(count)])
    singles = np.stack([random_scene(rng, size).image for _ in range(count)])
    rows = [pairs, round_trip(vae, pairs), singles, round_trip(vae, singles)]
    Image.fromarray(np.concatenate([np.concatenate(list(row), axis=1) for row in rows])).save(path)


def latent_geometry(vae) -> str:
    """The colour separation and linearity probes of "Why v2 fails under LMS and PNDM", on this VAE."""
    from .measure_schedulers import colour_linearity, colour_separation

    distances = sorted(colour_separation(vae).items(), key=lambda item: item[1])
    lines = ["Colour pairs' latent distance on the shape (RMS per element, nearest first): "
             + ", ".join(f"{a}-{b} {d:.2f}" for (a, b), d in distances[:6])
             + f"; median of {len(distances)} pairs {np.median([d for _, d in distances]):.2f}.", "",
             "| colour | background | midpoint of two right | mean of 16 reads | 1.5 z1 - 0.5 z2 right |",
             "|---|---|---|---|---|"]
    for row in colour_linearity(vae):
        lines.append(f"| {row['colour']} | {row['background']} | {row['midpoint'][0]}/{row['midpoint'][1]} | "
                     f"{row['mean of all'][2][0]} | {row['1.5 z1 - 0.5 z2'][0]}/{row['1.5 z1 - 0.5 z2'][1]} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train_vae_v3", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (the VAE goes to OUT/vae)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT/scratch")
    parser.add_argument("--measure", action="store_true", help="only judge OUT/vae's round trips")
    parser.add_argument("--size", type=int, default=V3_SIZE, help="picture side in pixels (multiple of 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=8000, help="training pictures drawn")
    parser.add_argument("--pair-share", type=float, default=PAIR_SHARE, help="share of scenes with two shapes")
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--balance-weight", type=float, default=0.05, help="weight of latent_balance_loss")
    parser.add_argument("--linear-rgb-weight", type=float, default=1.0, help="weight of linear_rgb_loss")
    parser.add_argument("--fit-count", type=int, default=2000, help="scenes whose latents fit scaling_factor")
    parser.add_argument("--per-cell", type=int, default=4, help="--measure: scenes per colour x shape x background")
    parser.add_argument("--save-every", type=float, default=180, help="seconds between checkpoints")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.size % 8 or args.size < 32:
        parser.error(f"--size must be a multiple of 8 and at least 32, not {args.size}")
    return args


def main(argv: list[str] | None = None) -> None:
    from diffusers import AutoencoderKL

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    report = out / "vae_report.md"
    if args.measure:
        vae = AutoencoderKL.from_pretrained(out / "vae", use_safetensors=True).eval()
        table = "\n\n".join([round_trip_tables(vae, args.per_cell, size=args.size),
                               pair_shapes_by_size(vae, size=args.size), latent_geometry(vae)])
        save_round_trip_grid(vae, out / "vae_round_trips.png", args.size)
        print(table, flush=True)
        report.write_text(report.read_text() + "\n## Round trips\n\n" + table + "\n")
        return
    started = time.monotonic()
    scratch = out / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    scenes = load_or_draw_v3(scratch / "scenes.npz", args.scenes, args.size, args.seed, args.pair_share)
    print(f"{len(scenes)} training scenes drawn ({time.monotonic() - started:.0f} s)", flush=True)
    vae = components.make_vae(components.FULL, args.size)
    checkpoint = scratch / "vae.pt"
    if not args.resume and checkpoint.exists():
        checkpoint.unlink()
    losses = train_vae(vae, scenes, args.steps, args.batch, args.lr, args.seed, checkpoint,
                       save_every_s=args.save_every, balance_weight=args.balance_weight,
                       linear_rgb_weight=args.linear_rgb_weight)
    factor, std, per_channel = fit_scaling_factor(vae, scenes, args.fit_count, args.seed)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    from .loop import plot_losses

    plot_losses({"VAE (weighted MSE + L1 + KL + balance + linear RGB)": losses}, out / "vae_loss_curve.png")
    lines = ["# Toy v3 VAE", "", f"Command options: `{vars(args)}`", "",
             f"scaling_factor = 1 / std of raw latents over {args.fit_count} training scenes = {factor:.5f}", "",
             f"std of scaled latents: overall {std:.3f}, per channel {[round(v, 3) for v in per_channel]}", "",
             f"final loss (mean of the last 100 steps) {np.mean(losses[-100:]):.4f}; "
             f"{(time.monotonic() - started) / 60:.1f} min this run", ""]
    report.write_text("\n".join(lines))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
