"""Fine-tune the toy model's UNet from eps to v prediction (prediction_type="v_prediction").

    python -m training.train_v_prediction [--base toy] --out DIR [--steps N] [--resume] [--threads 1]

As SD 2's 768-v model was made from an eps model: keep the base toy's VAE, tokenizer and text encoder (frozen,
the same files) and train the whole UNet on the velocity target (Salimans & Ho 2022, "Progressive
Distillation"; diffusers' get_velocity):

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
    v   = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0,      loss = ||v_hat(x_t, t, c) - v||^2

on the base's schedule (SD's scaled_linear), with the base's recipe: ~10% of the captions dropped to "" (for
classifier-free guidance) and 30% naming a wrong colour (so guidance 1 disobeys as the toy does), shapes of
circumradius 0.20-0.30 as the shipped toy's last fine-tunes. An EMA of the UNet is saved, as a
StableDiffusionPipeline folder whose DDIM scheduler says prediction_type="v_prediction". The training
pictures are drawn and encoded once (DIR/scratch); each step samples the VAE posteriors afresh. Checkpoints go
to DIR/scratch; --resume continues (the same batches as an uninterrupted run).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from stepviz.models.loading import load_pipeline
from stepviz.render.preview import LATENT_RGB_FILE, PREVIEW_DECODER_DIR

from .checkpoint import begin_run, load_checkpoint, save_checkpoint
from .components import make_train_scheduler
from .dataset import EMPTY_CAPTION_INDEX, load_or_draw, scene_radius_range
from .extra_channels import encode_posterior, pixels_from_uint8, sample_posterior
from .loop import Schedule, plot_losses, train_steps
from .reporting import command_line
from .sources import SHIPPED_MODEL, part
from .train_unet import caption_token_ids, other_colour_captions

V_PHASE = 11  # step_generator phase, distinct from the other trainers'
DEFAULTS = dict(steps=3000, batch=64, lr=3e-4, scenes=12000, min_radius=0.20, colour_noise=0.3,
                caption_dropout=0.1, ema_decay=0.999)


def velocity(x_0: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (abar_t broadcast per example)."""
    return abar_t.sqrt() * eps - (1 - abar_t).sqrt() * x_0


def train_v_unet(unet, text_states: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, caption_index: torch.Tensor,
                 args: argparse.Namespace, checkpoint_path: Path) -> tuple[torch.nn.Module, list[float]]:
    """Train the UNet in place on the velocity target (resuming from checkpoint_path); the EMA UNet and losses."""
    abar = make_train_scheduler().alphas_cumprod
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=1e-2)
    ema = copy.deepcopy(unet).eval()

    def batch_loss(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(mean), (args.batch,), generator=generator)
        # 1. x_0 from its posterior; captions: 30% a wrong colour, ~10% dropped to ""
        x_0 = sample_posterior(mean[index], std[index], generator)
        caption = caption_index[index].clone()
        wrong = torch.rand(args.batch, generator=generator) < args.colour_noise
        caption[wrong] = other_colour_captions(caption[wrong], generator)
        caption[torch.rand(args.batch, generator=generator) < args.caption_dropout] = EMPTY_CAPTION_INDEX
        # 2. x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, and the target v
        t = torch.randint(0, 1000, (args.batch,), generator=generator)
        eps = torch.randn(x_0.shape, generator=generator)
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x_0 + (1 - a).sqrt() * eps
        # 3. v_hat, and its squared error
        v_hat = unet(x_t, t, text_states[caption]).sample
        return (v_hat - velocity(x_0, eps, a)).pow(2).mean()

    schedule = Schedule("v unet", args.steps, args.lr, warmup=150, seed=args.seed, phase=V_PHASE,
                        checkpoint=checkpoint_path, save_every_s=args.save_every, ema_decay=args.ema_decay,
                        report_every=250, until=args.until)
    losses = train_steps(schedule, {"unet": unet}, optimizer, batch_loss, averages={"ema": (ema, unet)})
    return ema, losses


def training_latents(base, scratch: Path, args: argparse.Namespace) -> dict:
    """The training scenes' posteriors (cached in scratch): mean, std, caption_index."""
    cached = scratch / "latents.pt"
    stored = load_checkpoint(cached)
    if stored is not None:
        return stored
    size = base.unet.config.sample_size * base.vae_scale_factor
    scenes = load_or_draw(scratch / "scenes.npz", args.scenes, size, args.seed, scene_radius_range(args.min_radius))
    mean, std = encode_posterior(base.vae, pixels_from_uint8(scenes.images))
    latents = dict(mean=mean, std=std, caption_index=torch.from_numpy(scenes.caption_index))
    save_checkpoint(latents, cached)
    return latents


def save_v_model(base, unet, out: Path, base_name: str) -> None:
    """A StableDiffusionPipeline folder: the base's parts, this UNet, DDIM saying v_prediction."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    scheduler = DDIMScheduler.from_config(base.scheduler.config, prediction_type="v_prediction")
    pipe = StableDiffusionPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    # the base's tokenizer files verbatim; same VAE, same latent space: its preview factors and decoder hold
    shutil.copytree(part(base_name, "tokenizer"), out / "tokenizer", dirs_exist_ok=True)
    if part(base_name, LATENT_RGB_FILE).exists():
        shutil.copy(part(base_name, LATENT_RGB_FILE), out / LATENT_RGB_FILE)
    if part(base_name, PREVIEW_DECODER_DIR).is_dir():
        shutil.copytree(part(base_name, PREVIEW_DECODER_DIR), out / PREVIEW_DECODER_DIR, dirs_exist_ok=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train_v_prediction",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=SHIPPED_MODEL, help="the eps toy model: a shipped name or a folder")
    parser.add_argument("--out", required=True, help="output folder (the v-prediction pipeline is saved here)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT/scratch")
    parser.add_argument("--seed", type=int, default=0)
    for name, value in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--until", type=int, default=0,
                        help="stop after this many steps with a checkpoint (the LR schedule stays that of --steps)")
    parser.add_argument("--save-every", type=float, default=180, help="seconds between checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on busy cores)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or not 0 < args.lr < 1:
        parser.error(f"--steps {args.steps}, --batch {args.batch}, --lr {args.lr}: need steps, batch >= 1 and "
                     "0 < lr < 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started, out, scratch = begin_run(args)

    base = load_pipeline(args.base, device="cpu", dtype="float32")
    for frozen in (base.vae, base.text_encoder):
        frozen.requires_grad_(False).eval()
    data = training_latents(base, scratch, args)
    print(f"{len(data['mean'])} training pictures; fine-tuning {args.base}'s UNet to v prediction", flush=True)
    with torch.no_grad():
        text_states = base.text_encoder(caption_token_ids(base.tokenizer))[0]
    unet = copy.deepcopy(base.unet).train()
    ema_unet, losses = train_v_unet(unet, text_states, data["mean"], data["std"], data["caption_index"], args,
                                    scratch / "unet.pt")
    if args.until and len(losses) < args.steps:
        print(f"stopped at step {len(losses)} of {args.steps} (--until): --resume continues", flush=True)
        return
    save_v_model(base, ema_unet, out, args.base)
    plot_losses({"v-prediction UNet (v MSE)": losses}, out / "loss_curve.png")
    minutes = (time.monotonic() - started) / 60
    (out / "TRAINING.md").write_text(
        f"# How this toy v-prediction model was made\n\n```\n{command_line('train_v_prediction', argv)}\n```\n\n"
        f"Fine-tuned from `{args.base}` (eps) in {minutes:.1f} min on {args.threads} torch thread(s) (this "
        f"invocation; a resumed run counts its last part): VAE, tokenizer and text encoder kept (frozen); the UNet "
        f"trained {args.steps} steps at batch {args.batch}, peak LR {args.lr}, on v = sqrt(abar) eps - "
        f"sqrt(1 - abar) x0 (plain MSE), {len(data['mean'])} pictures (circumradius >= {args.min_radius}), "
        f"captions {args.caption_dropout:.0%} dropped and {args.colour_noise:.0%} a wrong colour, seed "
        f"{args.seed}; EMA ({args.ema_decay}) weights saved. Final loss (mean of the last 200 steps) "
        f"{np.mean(losses[-200:]):.4f}. Loss curve: `loss_curve.png`.\n")
    print(f"saved the v-prediction model to {out} in {minutes:.1f} min", flush=True)


if __name__ == "__main__":
    main()
