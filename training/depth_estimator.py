"""A tiny DPT depth estimator for the toy world, trained on the drawn scenes' depth maps.

    python -m training.depth_estimator --out DIR [--steps 1500] [--resume]

Depth2Img needs a depth estimator (`transformers.DPTForDepthEstimation`) and its
image processor (`DPTImageProcessor`) in the pipeline folder. Real SD 2 depth uses
DPT-Hybrid (MiDaS); the toy one is the same class with a ViT backbone of four
32-wide layers on 8x8 patches of a 64x64 picture (~0.19 M parameters), trained
with an L1 loss on the scenes' depth (larger = nearer, in [0, 1]). Its output
`predicted_depth` is [B, 64, 64], like MiDaS's relative depth; Depth2Img rescales
it to [-1, 1] per picture anyway.

Saved into DIR/depth_estimator and DIR/feature_extractor (safetensors), with the
held-out errors in DIR/depth_estimator.md.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

from .dataset import load_or_draw
from .loop import Schedule, plot_losses, train_steps
from .reporting import command_line
from .sources import part

ESTIMATOR_PHASE = 7  # step_generator phase: distinct from the base model's phases
NEAR_THRESHOLD = 0.45  # between the far plane (<= 0.3) and the shape's body (>= 0.6)
HELD_OUT_SEED = 10_007  # held-out scenes are drawn from their own seed


def make_depth_estimator(image_size: int = 64, tiny: bool = False) -> DPTForDepthEstimation:
    """DPT with a ViT backbone: patch 8, four layers read out at 2x, 1x, 1/2x, 1/4x -> depth at image size."""
    hidden, fusion, neck = (16, 8, (8, 8, 8, 8)) if tiny else (32, 24, (16, 24, 32, 32))
    config = DPTConfig(
        hidden_size=hidden, num_hidden_layers=4, num_attention_heads=2, intermediate_size=2 * hidden,
        image_size=image_size, patch_size=8, backbone_out_indices=(0, 1, 2, 3),
        reassemble_factors=(2, 1, 0.5, 0.25), neck_hidden_sizes=neck, fusion_hidden_size=fusion,
        readout_type="project", use_auxiliary_head=False, backbone_featmap_shape=None, neck_ignore_stages=(),
    )
    return DPTForDepthEstimation(config)


def make_feature_extractor(image_size: int = 64) -> DPTImageProcessor:
    """Resize to image_size x image_size (no aspect keeping), scale to [-1, 1]."""
    return DPTImageProcessor(
        do_resize=True, size={"height": image_size, "width": image_size}, keep_aspect_ratio=False,
        ensure_multiple_of=1, do_rescale=True, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        do_pad=False,
    )


def processor_pixels(processor: DPTImageProcessor, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    """pixel_values exactly as the pipeline's feature extractor computes them from PIL pictures."""
    chunks = []
    for start in range(0, len(images), batch):
        pictures = [Image.fromarray(image) for image in images[start:start + batch]]
        chunks.append(processor(images=pictures, return_tensors="pt").pixel_values)
    return torch.cat(chunks)


def train_depth_estimator(model: DPTForDepthEstimation, pixels: torch.Tensor, depth: torch.Tensor, steps: int,
                          batch: int, lr: float, seed: int, checkpoint_path: Path,
                          save_every_s: float = 180) -> list[float]:
    """L1 on predicted_depth; resumes from checkpoint_path. Returns the per-step losses."""

    def batch_loss(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(pixels), (batch,), generator=generator)
        flip = torch.rand(batch, generator=generator) < 0.5  # mirrored scenes are scenes too
        x, target = pixels[index], depth[index]
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        target = torch.where(flip[:, None, None], target.flip(-1), target)
        return torch.nn.functional.l1_loss(model(pixel_values=x).predicted_depth, target)

    schedule = Schedule("depth estimator", steps, lr, warmup=100, seed=seed, phase=ESTIMATOR_PHASE,
                        checkpoint=checkpoint_path, save_every_s=save_every_s)
    losses = train_steps(schedule, {"model": model},
                         torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4), batch_loss)
    model.eval()
    return losses


@torch.no_grad()
def depth_errors(model: DPTForDepthEstimation, pixels: torch.Tensor, depth: torch.Tensor,
                 masks: torch.Tensor) -> dict:
    """Mean absolute error (depth units) and the IoU of predicted-near (> 0.45) vs the shape's mask."""
    model.eval()
    predicted = torch.cat([model(pixel_values=pixels[s:s + 128]).predicted_depth for s in range(0, len(pixels), 128)])
    near = predicted > NEAR_THRESHOLD
    intersection = (near & masks).flatten(1).sum(1).float()
    union = (near | masks).flatten(1).sum(1).float().clamp(min=1)
    iou = intersection / union
    return {
        "mae": float((predicted - depth).abs().mean()),
        "mae_on_shape": float((predicted - depth).abs()[masks].mean()),
        "near_iou_mean": float(iou.mean()),
        "near_iou_min": float(iou.min()),
        "count": len(pixels),
    }


def format_errors(errors: dict) -> str:
    return (f"held-out toy scenes: {errors['count']}; mean absolute depth error {errors['mae']:.4f} "
            f"(on the shape's pixels {errors['mae_on_shape']:.4f}; depth in [0, 1]); IoU of predicted-near "
            f"(depth > {NEAR_THRESHOLD}) vs the true shape mask: mean {errors['near_iou_mean']:.3f}, "
            f"worst {errors['near_iou_min']:.3f}")


def load_depth_estimator(model: str | Path) -> tuple[DPTForDepthEstimation, DPTImageProcessor]:
    """The estimator and processor of a folder `main` wrote, or of the shipped toy-depth model."""
    estimator = DPTForDepthEstimation.from_pretrained(part(model, "depth_estimator"), use_safetensors=True).eval()
    return estimator, DPTImageProcessor.from_pretrained(part(model, "feature_extractor"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.depth_estimator", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for depth_estimator/ and feature_extractor/")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--scenes", type=int, default=4000, help="training scenes drawn")
    parser.add_argument("--held-out", type=int, default=300, help="held-out scenes for the error report")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a tiny network: a smoke test in seconds")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/scratch/depth_estimator.pt")
    parser.add_argument("--save-every", type=float, default=180, help="seconds between checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on busy cores)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    scratch = out / "scratch"
    if not args.resume and (scratch / "depth_estimator.pt").exists():
        (scratch / "depth_estimator.pt").unlink()

    processor = make_feature_extractor(args.size)
    train = load_or_draw(scratch / "depth_scenes.npz", args.scenes, args.size, args.seed)
    held_out = load_or_draw(scratch / "depth_held_out.npz", args.held_out, args.size,
                                         HELD_OUT_SEED + args.seed)
    pixels = processor_pixels(processor, train.images)
    model = make_depth_estimator(args.size, tiny=args.tiny)
    losses = train_depth_estimator(model, pixels, torch.from_numpy(train.depth), args.steps, args.batch, args.lr,
                                   args.seed, scratch / "depth_estimator.pt", save_every_s=args.save_every)
    errors = depth_errors(model, processor_pixels(processor, held_out.images), torch.from_numpy(held_out.depth),
                          torch.from_numpy(held_out.masks))
    print(format_errors(errors), flush=True)

    for name in ("depth_estimator", "feature_extractor"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    model.save_pretrained(out / "depth_estimator", safe_serialization=True)
    processor.save_pretrained(out / "feature_extractor")
    plot_losses({"depth estimator (L1)": losses}, out / "depth_estimator_loss.png")
    command = command_line("depth_estimator", argv)
    parameters = sum(p.numel() for p in model.parameters())
    (out / "depth_estimator.md").write_text(
        f"# Toy depth estimator\n\n```\n{command}\n```\n\nDPTForDepthEstimation, {parameters:,} parameters, "
        f"{args.steps} steps at batch {args.batch} on {args.scenes} scenes (L1 loss).\n\n{format_errors(errors)}\n")


if __name__ == "__main__":
    main()
