"""Fine-tune the toy model into its inpainting or Depth2Img variant.

    python -m training.train_variants [--base toy|DIR] --variant inpaint|depth --out DIR [--resume]

As SD's inpainting and depth models were made from SD: keep the base model's VAE,
tokenizer and text encoder (frozen), widen the UNet's conv_in with zero-initialised
input channels (5 for inpaint: mask + masked-image latents; 1 for depth) and train
the whole UNet on eps prediction (Min-SNR-5 loss weights, conv_in at 10x the learning
rate so the new channels grow within a short run) with the extra channels built exactly as the
diffusers pipeline builds them at inference (see extra_channels.py). ~10% of the
captions are dropped to "" so classifier-free guidance keeps working. An EMA of the
UNet is what gets saved, as a StableDiffusionInpaintPipeline or a
StableDiffusionDepth2ImgPipeline (with the toy depth estimator) folder.

The training pictures are drawn and encoded once (cached in DIR/scratch); each step
samples the VAE posteriors afresh. Checkpoints go to DIR/scratch; --resume continues.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stepviz.models.loading import load_pipeline
from stepviz.render.preview import LATENT_RGB_FILE, PREVIEW_DECODER_DIR

from .checkpoint import begin_run, load_checkpoint, save_checkpoint
from .components import make_train_scheduler
from .dataset import EMPTY_CAPTION_INDEX, add_min_radius_option, load_or_draw, scene_radius_range
from .extra_channels import (EXTRA_CHANNELS, LATENT_CHANNELS, depth_at_latent_size, encode_posterior,
                             mask_at_latent_size, masked_pixels, pixels_from_uint8, sample_posterior, widen_conv_in)
from .loop import Schedule, plot_losses, train_steps
from .reporting import command_line
from .sources import SHIPPED_MODEL, part
from .train_unet import caption_token_ids, other_colour_captions
from .variant_data import PLACED_FILL, PLACED_SIDE, draw_inpaint_examples

VARIANT_PHASE = {"inpaint": 8, "depth": 9}  # step_generator phases, distinct from the base model's
DEFAULTS = dict(batch=48, lr=8e-4, scenes=6000, examples=12000)
# what differs between the shipped variants' runs (training/models/toy-inpaint, toy-depth: TRAINING.md)
VARIANT_DEFAULTS = {"inpaint": dict(steps=7500, hole_loss_weight=3.0), "depth": dict(steps=2200, hole_loss_weight=1.0)}
DEFAULT_ESTIMATOR = "toy-depth"  # the shipped depth model's estimator
EMA_DECAY = 0.995  # both shipped variants' (--ema-decay)
# fixed for both shipped variants (no run varied them)
CONV_IN_LR_SCALE = 10.0  # conv_in's learning rate as a multiple of lr: its new channels start at zero
MIN_SNR_GAMMA = 5.0  # Min-SNR loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR")
ESTIMATOR_SHARE = 0.25  # depth variant: share of training scenes conditioned on the estimator's depth


@dataclass
class VariantSet:
    """Training examples in latent space: target x_0 and the extra channels, both as posteriors."""

    mean: torch.Tensor  # N x 4 x h x w, x_0 posterior mean (scaled latents)
    std: torch.Tensor  # N x 4 x h x w
    extra_mean: torch.Tensor  # N x C x h x w, the channels concatenated after x_t
    extra_std: torch.Tensor  # N x C x h x w, 0 where the channel is not a VAE sample (mask, depth)
    caption_index: torch.Tensor  # N, into dataset.CAPTIONS
    # inpaint variant, optional: x_0's posterior when the caption is dropped to "" (no new shape in a placed hole)
    dropped_mean: torch.Tensor | None = None
    dropped_std: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.mean)


def build_inpaint_set(vae, scenes, count: int, seed: int, placed_fill: tuple[float, float] = PLACED_FILL,
                      placed_side: tuple[float, float] = PLACED_SIDE,
                      dropped_paints_nothing: bool = False) -> VariantSet:
    """The inpainting examples in latent space; with `dropped_paints_nothing`, also the targets for a dropped
    caption: a placed hole left empty."""
    examples = draw_inpaint_examples(scenes, count, seed, placed_fill, placed_side)
    pixels = pixels_from_uint8(examples.images)
    holes = torch.from_numpy(examples.holes)[:, None]
    latent_size = pixels.shape[-1] // (2 ** (len(vae.config.block_out_channels) - 1))
    mean, std = encode_posterior(vae, pixels)
    masked_mean, masked_std = encode_posterior(vae, masked_pixels(pixels, holes))
    mask = mask_at_latent_size(holes, latent_size)
    dropped = encode_posterior(vae, pixels_from_uint8(examples.unpainted)) if dropped_paints_nothing else (None, None)
    return VariantSet(mean, std, torch.cat([mask, masked_mean], 1), torch.cat([torch.zeros_like(mask), masked_std], 1),
                      torch.from_numpy(examples.caption_index), *dropped)


def build_depth_set(vae, scenes, estimator_folder: Path | None, estimator_share: float, seed: int) -> VariantSet:
    """True depth for most scenes; the estimator's prediction for `estimator_share` of them."""
    pixels = pixels_from_uint8(scenes.images)
    latent_size = pixels.shape[-1] // (2 ** (len(vae.config.block_out_channels) - 1))
    depth = torch.from_numpy(scenes.depth)
    if estimator_folder is not None and estimator_share > 0:
        from .depth_estimator import load_depth_estimator, processor_pixels

        estimator, processor = load_depth_estimator(estimator_folder)
        chosen = torch.from_numpy(np.random.default_rng(seed).random(len(scenes)) < estimator_share)
        index = torch.nonzero(chosen).flatten()
        inputs = processor_pixels(processor, scenes.images[index.numpy()])
        with torch.no_grad():
            predicted = torch.cat([estimator(pixel_values=inputs[s:s + 128]).predicted_depth
                                   for s in range(0, len(inputs), 128)])
        depth = depth.clone()
        depth[index] = torch.nn.functional.interpolate(predicted[:, None], size=depth.shape[-2:], mode="bicubic",
                                                       align_corners=False)[:, 0]
    mean, std = encode_posterior(vae, pixels)
    extra = depth_at_latent_size(depth, latent_size)
    return VariantSet(mean, std, extra, torch.zeros_like(extra), torch.from_numpy(scenes.caption_index))


def eps_loss(eps_hat: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor, min_snr_gamma: float,
             pixel_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of w_t * (weighted) mean squared error of eps_hat.

    w_t is Min-SNR weighting (Hang et al. 2023) for eps prediction: min(SNR_t, gamma) / SNR_t with
    SNR_t = abar_t / (1 - abar_t); the nearly clean timesteps, whose loss is mostly unpredictable
    detail, stop drowning the middle and noisy ones, where the extra channels decide what goes where.
    gamma <= 0 gives plain MSE. pixel_weight (N x 1 x h x w) averages the squared error with weights
    (the inpaint variant weighs the hole above the rest, whose answer is in the masked image already).
    """
    squared_error = (eps_hat - eps).pow(2)
    if pixel_weight is None:
        per_example = squared_error.mean(dim=(1, 2, 3))
    else:
        per_example = (pixel_weight * squared_error).mean(dim=(1, 2, 3)) / pixel_weight.mean(dim=(1, 2, 3))
    snr = abar_t / (1 - abar_t)
    weight = snr.clamp(max=min_snr_gamma) / snr if min_snr_gamma > 0 else torch.ones_like(snr)
    return (weight * per_example).mean()


def train_variant_unet(unet, text_states: torch.Tensor, data: VariantSet, steps: int, batch: int, lr: float,
                       seed: int, phase: int, checkpoint_path: Path, caption_dropout: float = 0.1,
                       ema_decay: float = EMA_DECAY, conv_in_lr_scale: float = CONV_IN_LR_SCALE,
                       min_snr_gamma: float = MIN_SNR_GAMMA,
                       hole_loss_weight: float = 1.0, colour_noise: float = 0.0,
                       save_every_s: float = 180) -> tuple[torch.nn.Module, list[float]]:
    """Train the UNet in place on eps prediction (resuming from checkpoint_path); returns the EMA UNet and losses.

    text_states: the frozen text encoder's hidden states for every caption, "" last.
    hole_loss_weight: inpaint variant only, how much more a latent pixel inside the hole counts than one
    outside it (the first extra channel is the mask).
    colour_noise: the share of captions naming a wrong colour, as the base UNet's training has (train_unet.py),
    so that a caption disagreeing with x_t is nothing new (Depth2Img at low strength must keep x_t's colour).
    """
    abar = make_train_scheduler().alphas_cumprod
    # conv_in learns faster: its new input channels start at zero and must grow within a short run
    conv_in = list(unet.conv_in.parameters())
    rest = [p for name, p in unet.named_parameters() if not name.startswith("conv_in.")]
    optimizer = torch.optim.AdamW([dict(params=rest, lr_scale=1.0), dict(params=conv_in, lr_scale=conv_in_lr_scale)],
                                  lr=lr, weight_decay=1e-2)
    ema = copy.deepcopy(unet).eval()

    def batch_loss(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(data), (batch,), generator=generator)
        # 1. x_0 and the extra channels from their posteriors; drop ~10% of the captions to ""
        x_0 = sample_posterior(data.mean[index], data.std[index], generator)
        extra = sample_posterior(data.extra_mean[index], data.extra_std[index], generator)
        caption = data.caption_index[index].clone()
        if colour_noise > 0:  # drawn only when asked, so the shipped variants' runs replay unchanged
            wrong = torch.rand(batch, generator=generator) < colour_noise
            caption[wrong] = other_colour_captions(caption[wrong], generator)
        dropped = torch.rand(batch, generator=generator) < caption_dropout
        caption[dropped] = EMPTY_CAPTION_INDEX
        if data.dropped_mean is not None:  # "" asks for nothing new: the hole keeps what was there
            x_0_dropped = sample_posterior(data.dropped_mean[index], data.dropped_std[index], generator)
            x_0 = torch.where(dropped.view(-1, 1, 1, 1), x_0_dropped, x_0)
        # 2. x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
        t = torch.randint(0, 1000, (batch,), generator=generator)
        eps = torch.randn(x_0.shape, generator=generator)
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x_0 + (1 - a).sqrt() * eps
        # 3. the pipeline's input: cat([x_t, extra channels]) -> eps_hat
        eps_hat = unet(torch.cat([x_t, extra], dim=1), t, text_states[caption]).sample
        # 4. the loss, Min-SNR weighted over timesteps (and over the hole, for the inpaint variant)
        pixel_weight = 1.0 + (hole_loss_weight - 1.0) * extra[:, :1] if hole_loss_weight != 1.0 else None
        return eps_loss(eps_hat, eps, a.flatten(), min_snr_gamma, pixel_weight)

    schedule = Schedule("variant unet", steps, lr, warmup=150, seed=seed, phase=phase, checkpoint=checkpoint_path,
                        save_every_s=save_every_s, ema_decay=ema_decay, report_every=500)
    losses = train_steps(schedule, {"unet": unet}, optimizer, batch_loss, averages={"ema": (ema, unet)})
    return ema, losses


def initial_unet(base, variant: str, init_from: str | None):
    """The base's UNet with conv_in widened by the variant's zero-initialised channels, or `init_from`'s UNet."""
    if init_from is None:
        return widen_conv_in(base.unet, EXTRA_CHANNELS[variant])
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(part(init_from, "unet"))
    wanted = LATENT_CHANNELS + EXTRA_CHANNELS[variant]
    if unet.config.in_channels != wanted:
        sys.exit(f"--init-from {init_from}: its UNet takes {unet.config.in_channels} channels, "
                 f"the {variant} variant {wanted}")
    return unet.train()


def save_variant(variant: str, base, unet, out: Path, estimator_folder: Path | None):
    """The variant as the matching diffusers pipeline folder (safetensors, no safety checker)."""
    from diffusers import StableDiffusionDepth2ImgPipeline, StableDiffusionInpaintPipeline

    parts = dict(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=unet,
                 scheduler=base.scheduler)
    if variant == "inpaint":
        pipe = StableDiffusionInpaintPipeline(**parts, safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False)
    else:
        from .depth_estimator import load_depth_estimator

        depth_estimator, feature_extractor = load_depth_estimator(estimator_folder)
        pipe = StableDiffusionDepth2ImgPipeline(**parts, depth_estimator=depth_estimator,
                                                feature_extractor=feature_extractor)
    pipe.save_pretrained(out, safe_serialization=True)
    if variant == "depth":
        portable_processor_name(out / "model_index.json")
    return pipe


def portable_processor_name(model_index: Path) -> None:
    """Name the feature extractor DPTImageProcessor, as SD 2 depth does.

    Without torchvision, transformers 5 hands out its PIL twin and save_pretrained records
    "DPTImageProcessorPil", a class transformers 4 lacks; "DPTImageProcessor" loads in both.
    """
    index = json.loads(model_index.read_text())
    index["feature_extractor"] = ["transformers", "DPTImageProcessor"]
    model_index.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def fraction_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give LOW,HIGH, e.g. 0.6,0.95") from None
    if not 0 < low <= high <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 < LOW <= HIGH <= 1")
    return low, high


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train_variants", description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=SHIPPED_MODEL,
                        help="the base toy model: a shipped model's name (toy) or a StableDiffusionPipeline folder")
    parser.add_argument("--variant", required=True, choices=sorted(EXTRA_CHANNELS))
    parser.add_argument("--out", required=True, help="output folder (the variant pipeline is saved here)")
    parser.add_argument("--depth-estimator", default=DEFAULT_ESTIMATOR,
                        help="depth variant: the folder `python -m training.depth_estimator` wrote, or the shipped "
                             "toy-depth model's estimator (the default)")
    parser.add_argument("--init-from",
                        help="start the UNet from this variant model's (same variant: a shipped name or a folder) "
                             "instead of widening the base's, for a second fine-tune at a lower LR")
    parser.add_argument("--ema-decay", type=float, default=EMA_DECAY, help=f"EMA of the UNet (default {EMA_DECAY})")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT/scratch")
    parser.add_argument("--seed", type=int, default=0)
    for name, value in DEFAULTS.items():
        parser.add_argument(f"--{name}", type=type(value), default=value)
    parser.add_argument("--steps", type=int, help="UNet steps (default: the shipped variant's, inpaint 7500, "
                                                 "depth 2200)")
    parser.add_argument("--hole-loss-weight", type=float,
                        help="inpaint variant: weight of the loss inside the hole relative to outside it (default 3)")
    add_min_radius_option(parser)
    parser.add_argument("--placed-fill", type=fraction_range, default=PLACED_FILL,
                        help="inpaint variant: a placed hole's new shape, circumradius as a fraction of the room "
                             "the hole leaves, LOW,HIGH (default %(default)s)")
    parser.add_argument("--placed-side", type=fraction_range, default=PLACED_SIDE,
                        help="inpaint variant: a placed hole's side (box) or diameter (ellipse) as a fraction of the "
                             "picture, LOW,HIGH (default %(default)s)")
    parser.add_argument("--dropped-paints-nothing", action="store_true",
                        help="inpaint variant: when a caption is dropped to \"\" (for classifier-free guidance), "
                             "train on the picture with its placed hole left empty, as for a random hole that "
                             "misses the shape, so the unconditional prediction does not guess a shape there")
    parser.add_argument("--colour-noise", type=float, default=0.0,
                        help="share of captions naming a wrong colour, as the base UNet had (depth variant: so that "
                             "low strength keeps the input's colour; default 0, as the shipped variants)")
    parser.add_argument("--save-every", type=float, default=180, help="seconds between checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on busy cores)")
    args = parser.parse_args(argv)
    for name, value in VARIANT_DEFAULTS[args.variant].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started, out, scratch = begin_run(args)
    estimator = args.depth_estimator
    if args.variant != "inpaint" and args.hole_loss_weight != 1.0:
        sys.exit(f"--hole-loss-weight {args.hole_loss_weight}: only the inpaint variant has a hole (leave it at 1)")
    if args.variant == "depth" and not part(estimator, "depth_estimator").is_dir():
        sys.exit(f"no depth estimator in {estimator}: run `python -m training.depth_estimator --out {estimator}`")

    base = load_pipeline(args.base, device="cpu", dtype="float32")
    for frozen in (base.vae, base.text_encoder):
        frozen.requires_grad_(False).eval()
    size = base.unet.config.sample_size * base.vae_scale_factor
    cached = scratch / "variant_set.pt"
    stored = load_checkpoint(cached)
    if stored is None:
        scenes = load_or_draw(scratch / "scenes.npz", args.scenes, size, args.seed, scene_radius_range(args.min_radius))
        if args.variant == "inpaint":
            data = build_inpaint_set(base.vae, scenes, args.examples, args.seed, args.placed_fill, args.placed_side,
                                     args.dropped_paints_nothing)
        else:
            data = build_depth_set(base.vae, scenes, estimator, ESTIMATOR_SHARE, args.seed)
        save_checkpoint(vars(data), cached)
    else:
        data = VariantSet(**stored)
    if args.dropped_paints_nothing and data.dropped_mean is None:
        sys.exit(f"--dropped-paints-nothing: the examples cached in {cached} were drawn without it (start afresh)")
    print(f"{len(data)} training examples for the {args.variant} variant", flush=True)
    with torch.no_grad():
        text_states = base.text_encoder(caption_token_ids(base.tokenizer))[0]

    unet = initial_unet(base, args.variant, args.init_from)
    ema_unet, losses = train_variant_unet(unet, text_states, data, args.steps, args.batch, args.lr, args.seed,
                                          VARIANT_PHASE[args.variant], scratch / "unet.pt",
                                          hole_loss_weight=args.hole_loss_weight, ema_decay=args.ema_decay,
                                          colour_noise=args.colour_noise,
                                          save_every_s=args.save_every)
    save_variant(args.variant, base, ema_unet, out, estimator)
    # the base's tokenizer files verbatim (vocab.json + merges.txt too, which transformers 4 needs)
    shutil.copytree(part(args.base, "tokenizer"), out / "tokenizer", dirs_exist_ok=True)
    # same VAE, same latent space: the base's quick-preview factors and tiny decoder hold
    if part(args.base, LATENT_RGB_FILE).exists():
        shutil.copy(part(args.base, LATENT_RGB_FILE), out / LATENT_RGB_FILE)
    if part(args.base, PREVIEW_DECODER_DIR).is_dir():
        shutil.copytree(part(args.base, PREVIEW_DECODER_DIR), out / PREVIEW_DECODER_DIR, dirs_exist_ok=True)
    plot_losses({f"{args.variant} variant UNet (Min-SNR-weighted eps MSE)": losses}, out / "loss_curve.png")
    minutes = (time.monotonic() - started) / 60
    command = command_line("train_variants", argv)
    (out / "TRAINING.md").write_text(
        f"# How this toy {args.variant} model was made\n\n```\n{command}\n```\n\n"
        f"Fine-tuned from the base toy model `{args.base}` in {minutes:.1f} min ({args.threads} torch thread(s)): "
        f"VAE, tokenizer and text encoder kept (frozen); "
        + (f"the UNet started from {args.init_from}'s" if args.init_from else
           f"UNet conv_in widened by {EXTRA_CHANNELS[args.variant]} zero-initialised channels")
        + f", then {args.steps} steps at batch {args.batch}, peak LR {args.lr} "
        f"(conv_in x{CONV_IN_LR_SCALE}), Min-SNR-{MIN_SNR_GAMMA} loss weights, "
        + (f"loss inside the hole x{args.hole_loss_weight}, " if args.variant == "inpaint" else "")
        + f"{len(data)} examples, seed {args.seed}; EMA ({args.ema_decay}) "
        f"weights saved. Final loss (mean of the last 200 steps) "
        f"{np.mean(losses[-200:]):.4f}. Loss curve: `loss_curve.png`.\n"
    )
    print(f"saved the {args.variant} variant to {out} in {minutes:.1f} min", flush=True)


if __name__ == "__main__":
    main()
