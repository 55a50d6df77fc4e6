"""Fine-tune a toy VAE's decoder on pictures with two shapes, the encoder (so the latent space) kept.

    python -m training.train_decoder --model DIR --out DIR [--steps 3000] [--resume]

The base VAE learned from one-shape scenes. An inpainting model is asked to draw a
second shape beside the first, and that VAE decodes such pictures badly (it never saw
two, and its attention looks over the whole picture): a small new shape takes the old
one's colour or outline (measured by `round_trip_report`: the checker on the new shape's
crop, original vs VAE round trip). As SD's ft-MSE VAE did, only the decoder (and
post_quant_conv) is trained: the encoder, its latents and every UNet trained on them
stay valid. The pictures are the inpainting variant's own training targets
(variant_data.py: scenes, second shapes outside holes, new shapes drawn in holes).
OUT gets a copy of the model folder with the new VAE; OUT-scratch beside it keeps the
pictures and the checkpoint (--resume continues from there).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from stepviz.toy.checker import inspect

from .checkpoint import load_checkpoint, save_checkpoint
from .dataset import load_or_draw
from .extra_channels import encode_posterior, pixels_from_uint8, sample_posterior
from .loop import Schedule, train_steps
from .reporting import command_line
from .sources import part, write_plain_folder
from .train_vae import shape_weighted_pixel_loss
from .variant_data import draw_inpaint_examples, paint_into_hole

DECODER_PHASE = 10  # step_generator phase, distinct from the other training phases


def foreground(images: np.ndarray, threshold: int = 60) -> np.ndarray:
    """bool N x H x W: pixels far from the picture's median colour (the background), i.e. the shapes."""
    background = np.median(images.reshape(len(images), -1, 3), axis=1)[:, None, None, :]
    return np.abs(images.astype(np.int16) - background).sum(axis=-1) > threshold


def train_decoder(vae, mean: torch.Tensor, std: torch.Tensor, pixels: torch.Tensor, shapes: torch.Tensor,
                  steps: int, batch: int, lr: float, seed: int, checkpoint_path: Path,
                  save_every_s: float = 180) -> list[float]:
    """Train vae.decoder and vae.post_quant_conv in place on (posterior, picture) pairs; returns the losses."""
    vae.requires_grad_(False)
    trained = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for parameter in trained:
        parameter.requires_grad_(True)

    def batch_loss(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(pixels), (batch,), generator=generator)
        z = sample_posterior(mean[index], std[index], generator) / vae.config.scaling_factor
        return shape_weighted_pixel_loss(vae.decode(z).sample, pixels[index], shapes[index])

    schedule = Schedule("decoder", steps, lr, warmup=100, seed=seed, phase=DECODER_PHASE, checkpoint=checkpoint_path,
                        save_every_s=save_every_s)
    losses = train_steps(schedule, {"vae": vae}, torch.optim.AdamW(trained, lr=lr, weight_decay=0.0), batch_loss)
    vae.eval().requires_grad_(False)
    return losses


@torch.no_grad()
def round_trip_report(vae, rounds: int = 3, seed: int = 0) -> dict:
    """Held-out two-shape pictures: the evaluation's scenes (evaluate_variants) with a new shape drawn in
    the "elsewhere" hole. Share of new shapes the checker reads right (colour and shape, on the hole's
    crop) in the original and after encode -> decode; also with the old shape removed. Empty when the
    pictures are too small for the evaluation's holes."""
    from .evaluate_variants import MIN_CASE_SIZE, hole_crop, inpaint_cases, vae_round_trip

    if vae.config.sample_size < MIN_CASE_SIZE:
        return {}
    rng = np.random.default_rng(seed)
    cases = [c for c in inpaint_cases(vae.config.sample_size) if c.placement == "elsewhere"] * rounds
    report = {}
    for name, keep_old in (("two shapes", True), ("new shape alone", False)):
        images, asked = [], []
        for case in cases:
            image = case.scene.image.copy()
            if not keep_old:
                image[:] = case.scene.image[0, 0]  # the background colour (corners are clear of the shape)
            asked.append((*paint_into_hole(image, case.hole, rng), case.hole))
            images.append(image)
        right = []
        for original, round_trip, (colour, shape, hole) in zip(images, vae_round_trip(vae, np.stack(images)), asked):
            right.append([(found["colour"], found["shape"]) == (colour, shape)
                          for found in (inspect(hole_crop(original, hole)), inspect(hole_crop(round_trip, hole)))])
        report[name] = dict(pictures=len(images), original=float(np.mean([r[0] for r in right])),
                            round_trip=float(np.mean([r[1] for r in right])))
    return report


def format_report(report: dict) -> str:
    if not report:
        return "(no held-out check: the pictures are smaller than the evaluation's holes need)"
    lines = ["| pictures | count | checker right on the original | after VAE encode -> decode |", "|---|---|---|---|"]
    for name, row in report.items():
        lines.append(f"| {name} | {row['pictures']} | {row['original']:.1%} | {row['round_trip']:.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.train_decoder", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a toy pipeline folder (its vae/ is fine-tuned)")
    parser.add_argument("--out", required=True, help="where the copy with the new VAE goes")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--scenes", type=int, default=4000)
    parser.add_argument("--examples", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT/scratch")
    parser.add_argument("--save-every", type=float, default=180, help="seconds between checkpoints")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    model, out = args.model, Path(args.out)
    if not part(model, "vae").is_dir():
        sys.exit(f"--model {model}: no vae/ folder there (a shipped model's name or a pipeline folder is needed)")
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    scratch = out.parent / f"{out.name}-scratch"
    if not args.resume and scratch.exists():
        shutil.rmtree(scratch)

    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(part(model, "vae"), use_safetensors=True).eval()
    before = round_trip_report(vae)
    cached = load_checkpoint(scratch / "pictures.pt")
    if cached is None:
        scenes = load_or_draw(scratch / "scenes.npz", args.scenes, vae.config.sample_size, args.seed)
        images = draw_inpaint_examples(scenes, args.examples, args.seed).images
        pixels = pixels_from_uint8(images)
        with torch.no_grad():
            mean, std = encode_posterior(vae, pixels)
        cached = dict(mean=mean, std=std, pixels=pixels, shapes=torch.from_numpy(foreground(images))[:, None].float())
        save_checkpoint(cached, scratch / "pictures.pt")
    losses = train_decoder(vae, cached["mean"], cached["std"], cached["pixels"], cached["shapes"], args.steps,
                           args.batch, args.lr, args.seed, scratch / "decoder.pt", args.save_every)
    after = round_trip_report(vae)

    staging = out.parent / f"{out.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    write_plain_folder(model, staging)
    shutil.rmtree(staging / "vae")
    vae.save_pretrained(staging / "vae", safe_serialization=True)
    minutes = (time.monotonic() - started) / 60
    command = command_line("train_decoder", argv)
    (staging / "DECODER.md").write_text(
        f"# The VAE decoder of this folder\n\n```\n{command}\n```\n\n"
        f"Decoder and post_quant_conv of `{model}/vae` fine-tuned ({minutes:.1f} min, {args.threads} thread(s)) for "
        f"{args.steps} steps at batch {args.batch}, peak LR {args.lr}, on {args.examples} of the inpainting variant's "
        f"training pictures (seed {args.seed}); encoder and latent space unchanged. Final loss (mean of the last 100 "
        f"steps) {np.mean(losses[-100:]):.4f}.\n\n"
        f"The checker on held-out pictures, before:\n\n{format_report(before)}\n\n"
        f"After:\n\n{format_report(after)}\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.replace(out)
    print(f"before:\n{format_report(before)}\nafter:\n{format_report(after)}\nsaved to {out} in {minutes:.1f} min")


if __name__ == "__main__":
    main()
