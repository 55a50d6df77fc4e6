"""Train the toy model from scratch: python -m training.train --out DIR

1. draw a fixed set of toy scenes (cached in DIR/scratch);
2. train the AutoencoderKL, check reconstructions colour by colour, fold the
   per-channel latent normalisation into it (scaling_factor 1);
3. encode the scenes once, train the UNet and the CLIP text encoder together
   (EMA, warm-up + cosine LR, ~10% captions dropped to "");
4. save a StableDiffusionPipeline folder into DIR (safetensors), with
   latent_rgb.json (linear latent -> RGB factors), loss_curve.png, evaluation.md.

Resumable: checkpoints go to DIR/scratch every few minutes; rerun with --resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from . import components
from .checkpoint import begin_run
from .dataset import add_min_radius_option, load_or_draw, scene_radius_range
from .evaluate import EVAL_FIRST_SEED, accuracy_table, format_table
from .loop import plot_losses
from .reporting import command_line, fit_latent_rgb
from .sources import load_toy_pipeline, part
from .tokenizer import write_tokenizer
from .train_unet import LatentSet, caption_token_ids, train_unet
from .train_vae import fold_latent_normalisation, latent_statistics, reconstruction_report, train_vae

# the shipped base model's run (training/models/toy/TRAINING.md); components.FULL its sizes
FULL_DEFAULTS = dict(scenes=12000, vae_steps=1600, vae_batch=16, unet_steps=7500, unet_batch=64, eval_seeds=2)
TINY_DEFAULTS = dict(scenes=48, vae_steps=2, vae_batch=4, unet_steps=2, unet_batch=4, eval_seeds=0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (the pipeline is saved here)")
    parser.add_argument("--tiny", action="store_true", help="tiny networks and a few steps: a smoke test in seconds")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in OUT/scratch")
    parser.add_argument("--size", type=int, default=64, help="picture side in pixels (multiple of 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, help="training pictures drawn")
    parser.add_argument("--vae-steps", type=int)
    parser.add_argument("--vae-batch", type=int)
    parser.add_argument("--unet-steps", type=int)
    parser.add_argument("--unet-batch", type=int)
    parser.add_argument("--vae-lr", type=float, default=1.5e-3)
    parser.add_argument("--unet-lr", type=float, default=8e-4)
    parser.add_argument("--colour-noise", type=float, default=0.3,
                        help="fraction of training captions that name a wrong colour (noisy captions make CFG matter)")
    parser.add_argument("--unet-channels", type=lambda text: tuple(int(c) for c in text.split(",")),
                        help="UNet block widths, e.g. 96,192 (default: the shipped model's 64,128)")
    parser.add_argument("--unet-layers", type=int, help="resnet (+ attention) layers per UNet block (default 1)")
    add_min_radius_option(parser)
    parser.add_argument("--vae-from",
                        help="a toy model whose VAE is kept (phase 1 skipped): a shipped model's name (toy) or a "
                             "pipeline folder; its latent space, preview decoder and variants stay valid")
    parser.add_argument("--init-from",
                        help="a toy model whose UNet and text encoder training starts from (a fine-tune): a shipped "
                             "model's name (toy) or a pipeline folder; --unet-channels/--unet-layers are then its own")
    parser.add_argument("--caption-dropout", type=float, default=0.1, help="fraction of captions replaced by \"\"")
    parser.add_argument("--eval-seeds", type=int, help="seeds per prompt in the final evaluation (0: skip)")
    parser.add_argument("--save-every", type=float, default=180, help="seconds between checkpoints")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 is fastest on shared cores (2 threads ran 4x slower beside another job)")
    args = parser.parse_args(argv)
    for key, value in (TINY_DEFAULTS if args.tiny else FULL_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.size % 8:
        parser.error("--size must be a multiple of 8 (the VAE downsamples 8x)")
    return args


def model_sizes(args: argparse.Namespace) -> components.ToySizes:
    """The networks' sizes the options ask for: FULL (TINY with --tiny), UNet widths and depth overridden."""
    sizes = components.TINY if args.tiny else components.FULL
    if args.unet_channels:
        sizes = dataclasses.replace(sizes, unet_channels=args.unet_channels)
    if args.unet_layers:
        sizes = dataclasses.replace(sizes, unet_layers=args.unet_layers)
    return sizes


@torch.no_grad()
def encode_scenes(vae, scenes) -> tuple[torch.Tensor, torch.Tensor]:
    means, stds = [], []
    for start in range(0, len(scenes), 128):
        posterior = vae.encode(scenes.image_tensor(np.arange(start, min(start + 128, len(scenes))))).latent_dist
        means.append(posterior.mean)
        stds.append(posterior.std)
    return torch.cat(means), torch.cat(stds)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started, out, scratch = begin_run(args)
    sizes = model_sizes(args)
    report: list[str] = [f"# Toy model training report\n\nCommand options: `{vars(args)}`\n"]

    tokenizer = write_tokenizer(out / "tokenizer")
    scenes = load_or_draw(scratch / "scenes.npz", args.scenes, args.size, args.seed,
                          scene_radius_range(args.min_radius))
    print(f"{len(scenes)} training scenes drawn", flush=True)

    # --- phase 1: the VAE (or an existing toy model's) ---
    if args.vae_from is not None:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(part(args.vae_from, "vae"), use_safetensors=True).eval()
        vae_losses = []
        std_line = f"VAE kept from {args.vae_from} (not trained here)"
    else:
        vae = components.make_vae(sizes, args.size)
        vae_losses = train_vae(vae, scenes, args.vae_steps, args.vae_batch, args.vae_lr, args.seed,
                               scratch / "vae.pt", save_every_s=args.save_every)
        mean, std = latent_statistics(vae, scenes, 2000, args.seed)
        fold_latent_normalisation(vae, mean, std)
        _, std_after = latent_statistics(vae, scenes, 2000, args.seed)
        std_line = (f"per-channel latent std before folding {np.round(std.numpy(), 3).tolist()}, "
                    f"after folding (scaled latents, scaling_factor 1) {np.round(std_after.numpy(), 3).tolist()}")
    print(std_line, flush=True)
    recon_table, _ = reconstruction_report(vae, args.size, per_cell=1 if args.tiny else 4)
    print(recon_table, flush=True)
    report += ["## VAE", std_line, "", "Reconstructions judged by the checker:", "", recon_table, ""]

    # --- phase 2: UNet + text encoder on the encoded scenes ---
    latent_mean, latent_std = encode_scenes(vae, scenes)
    latents = LatentSet(latent_mean, latent_std, torch.from_numpy(scenes.caption_index))
    token_ids = caption_token_ids(tokenizer)
    if args.init_from is not None:
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        unet = UNet2DConditionModel.from_pretrained(part(args.init_from, "unet"), use_safetensors=True)
        text_encoder = CLIPTextModel.from_pretrained(part(args.init_from, "text_encoder"), use_safetensors=True)
    else:
        unet = components.make_unet(sizes, args.size)
        text_encoder = components.make_text_encoder(sizes, tokenizer)
    ema_unet, ema_text, unet_losses, sensitivity = train_unet(
        unet, text_encoder, latents, token_ids, args.unet_steps, args.unet_batch, args.unet_lr, args.seed,
        scratch / "unet.pt", caption_dropout=args.caption_dropout, colour_noise=args.colour_noise,
        save_every_s=args.save_every)
    report += ["## UNet", f"captions dropped to \"\": {args.caption_dropout:.0%}; captions naming a wrong colour: "
               f"{args.colour_noise:.0%}", "",
               "Prompt sensitivity ||eps(red) - eps(blue)|| / ||eps(red)|| at t=500 (EMA weights):", "",
               ", ".join(f"step {s}: {v:.3f}" for s, v in sensitivity), ""]

    # --- the pipeline folder ---
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=ema_text, tokenizer=tokenizer, unet=ema_unet,
        scheduler=components.make_pipeline_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    fitted = np.arange(min(2000, len(scenes)))
    factors, bias, rgb_error = fit_latent_rgb(latent_mean[:2000], scenes.image_tensor(fitted))
    (out / "latent_rgb.json").write_text(json.dumps({"factors": factors, "bias": bias}, indent=1) + "\n")
    curves = {"VAE (weighted MSE + L1 + KL)": vae_losses, "UNet + text encoder (eps MSE)": unet_losses}
    plot_losses({title: losses for title, losses in curves.items() if losses}, out / "loss_curve.png")
    report += ["## Linear latent -> RGB preview", f"least-squares fit on training latents, RMS error {rgb_error:.3f} "
               "(RGB in [-1, 1])", ""]

    if args.eval_seeds > 0:
        table = format_table(accuracy_table(load_toy_pipeline(out), seeds_per_prompt=args.eval_seeds))
        print(table, flush=True)
        last_seed = EVAL_FIRST_SEED + args.eval_seeds - 1
        report += ["## Evaluation", f"every colour x shape x background prompt, seeds {EVAL_FIRST_SEED}..{last_seed}, "
                   "25 DDIM steps, StableDiffusionPipeline, the strict checker", "", table, ""]
    report.append(f"Total time {(time.monotonic() - started) / 60:.1f} min.")
    (out / "evaluation.md").write_text("\n".join(report) + "\n")
    command = command_line("train", argv)
    (out / "TRAINING.md").write_text(
        "# How this toy model was made\n\n"
        f"```\n{command}\n```\n\n"
        + ("Trained from scratch" if args.vae_from is None and args.init_from is None else
           ("UNet and text encoder trained" if args.init_from is None else
            f"UNet and text encoder fine-tuned from `{args.init_from}`")
           + ("" if args.vae_from is None else f" (the VAE kept from `{args.vae_from}`)"))
        + f" on drawn toy scenes in {(time.monotonic() - started) / 60:.1f} min "
        f"({args.threads} torch thread(s)). Loss curve: `loss_curve.png`; VAE checks, latent std and the "
        "accuracy table: `evaluation.md`; linear latent -> RGB preview factors: `latent_rgb.json`.\n"
    )
    print(f"saved the toy pipeline to {out}", flush=True)


if __name__ == "__main__":
    main()
