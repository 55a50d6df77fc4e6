"""Version 3's UNet and text encoder: python -m training.train_unet_v3 --out DIR [--resume]

DIR holds version 3's VAE (DIR/vae, from train_vae_v3) and its scene set (DIR/scratch/scenes.npz).
1. encode the scenes once (posterior mean and std, times the VAE's scaling_factor; cached in DIR/scratch);
2. write version 3's tokenizer (it knows "and" and the placement words) and build the text encoder and the UNet
   (the shipped base's sizes, 16 x 16 latents), warm-started from a version 2 model (--warm-start): every
   weight whose shape matches is copied (all of the UNet's: its convolutions do not depend on the latent size),
   the token embeddings row by row for the tokens both vocabularies have;
3. train both on eps prediction as train_unet.py does (EMA, warm-up + cosine LR, captions dropped to "",
   captions naming a wrong colour), t drawn uniformly from 0..999: "Why v2 fails under LMS and PNDM"
   (training/models/toy/TRAINING.md) found the eps error lowest at the high-noise end, so its sampling stays;
   with --agree-below T, a captioned x_t with t < T is also predicted without its caption, and the two
   predictions are pulled together, weighted W (1 - t / T) (--agree-weight W): once x_t shows the picture the
   caption should change little, and guidance multiplies what it does change (the PNDM/LMS failure);
4. save a StableDiffusionPipeline folder to DIR/pipeline (safetensors) and the loss curve.

Resumable: the checkpoint goes to DIR/scratch/unet.pt every few minutes; rerun with --resume. --snapshot writes
the running checkpoint's EMA networks as a pipeline folder, DIR/pipeline-step<N>, to measure a run in progress.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from stepviz.toy.world import (PAIR_RADIUS_RANGE, RADIUS_RANGE, COLOURS, caption, pair_caption,
                               parse_scene_caption)

from . import components
from .checkpoint import load_checkpoint, save_checkpoint
from .extra_channels import encode_posterior, sample_posterior
from .loop import Schedule, plot_losses, train_steps
from .reporting import write_run_record
from .scenes_v3 import load_or_draw_v3, stored_radii
from .sources import part
from .tokenizer import write_tokenizer

UNET_V3_PHASE = 12  # step_generator phase, distinct from the other trainers'
SIZES_FILE = "unet_sizes.json"  # in OUT/scratch: the UNet's sizes the checkpoint holds, for --resume and --snapshot


def unet_sizes(channels: tuple[int, ...] | None = None, layers: int | None = None) -> components.ToySizes:
    """The shipped base's sizes, with the UNet's channels per level and layers per block replaced where given."""
    sizes = components.FULL
    if channels is not None:
        sizes = dataclasses.replace(sizes, unet_channels=tuple(channels))
    if layers is not None:
        sizes = dataclasses.replace(sizes, unet_layers=layers)
    return sizes


def stored_sizes(scratch: Path) -> components.ToySizes:
    """The sizes a run in `scratch` was started with (the base's when it recorded none)."""
    path = scratch / SIZES_FILE
    if not path.is_file():
        return components.FULL
    stored = json.loads(path.read_text())
    return unet_sizes(stored["unet_channels"], stored["unet_layers"])


def with_other_colour(text: str, which: int, shift: int) -> str:
    """`text` with the colour of its thing `which` (0 or 1, modulo the things) moved `shift` places along
    COLOURS, skipping the other thing's colour."""
    things, placement, background = parse_scene_caption(text)
    names = list(COLOURS)
    index = which % len(things)
    taken = {colour for i, (colour, _) in enumerate(things) if i != index}
    choices = [c for c in names if c != things[index][0] and c not in taken]
    things[index] = (choices[shift % len(choices)], things[index][1])
    if len(things) == 1:
        return caption(things[0][0], things[0][1], background)
    return pair_caption(things[0], things[1], background, placement)


def warm_start(module: torch.nn.Module, source: torch.nn.Module, token_rows: dict[int, int] | None = None) -> int:
    """Copy every weight of `source` whose name and shape match into `module`; with token_rows (new id -> old
    id) also those rows of the token embedding. Returns how many tensors were copied whole."""
    state, copied = module.state_dict(), 0
    for name, value in source.state_dict().items():
        if name in state and state[name].shape == value.shape:
            state[name] = value.clone()
            copied += 1
        elif token_rows and name.endswith("token_embedding.weight"):
            for new, old in token_rows.items():
                state[name][new] = value[old]
    module.load_state_dict(state)
    return copied


def agreement_weights(t: torch.Tensor, texts: list[str], below: int, weight: float) -> torch.Tensor:
    """Per example, the weight pulling its captioned and uncaptioned eps together: weight (1 - t / below) for a
    captioned example with t < below, 0 otherwise (and everywhere when below is 0)."""
    if below <= 0:
        return torch.zeros(len(texts))
    captioned = torch.tensor([bool(text) for text in texts])
    return weight * (1 - t.float() / below).clamp(min=0) * captioned


def eps_loss(unet, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, states: torch.Tensor,
             empty_state: torch.Tensor, pull: torch.Tensor) -> torch.Tensor:
    """The batch's eps MSE, plus, for the examples with a pull (agreement_weights), that weight times the mean
    squared gap between their captioned eps_c and their uncaptioned eps_u, summed and divided by the batch."""
    eps_c = unet(x_t, t, states).sample
    loss = (eps_c - eps).pow(2).mean()
    near = pull.nonzero().flatten()
    if len(near):
        eps_u = unet(x_t[near], t[near], empty_state.expand(len(near), -1, -1)).sample
        gap = (eps_c[near] - eps_u).pow(2).mean(dim=(1, 2, 3))
        loss = loss + (pull[near] * gap).sum() / len(pull)
    return loss


def channel_list(text: str) -> tuple[int, ...]:
    try:
        channels = tuple(int(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give channels per level, e.g. 64,128,128") from None
    if len(channels) < 2 or any(c <= 0 or c % components.FULL.unet_groups for c in channels):
        raise argparse.ArgumentTypeError(f"{text!r}: need 2 or more levels, each a positive multiple of "
                                         f"{components.FULL.unet_groups} (the group norm's groups)")
    return channels


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train_unet_v3", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder with vae/ and scratch/scenes.npz (train_vae_v3's)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT/scratch")
    parser.add_argument("--snapshot", action="store_true",
                        help="only write the running checkpoint's EMA networks as a pipeline, OUT/pipeline-step<N>")
    parser.add_argument("--warm-start", default="toy", help="a version 2 model to start from ('none': scratch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--caption-dropout", type=float, default=0.1, help="fraction of captions replaced by \"\"")
    parser.add_argument("--colour-noise", type=float, default=0.3, help="fraction of captions naming a wrong colour")
    parser.add_argument("--save-every", type=float, default=180, help="seconds between checkpoints")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--unet-channels", type=channel_list,
                        help="the UNet's channels per resolution level, e.g. 64,128,128 (default: the base's, 64,128); "
                             "a resumed run keeps what it started with")
    parser.add_argument("--unet-layers", type=int, help="resnet (+ attention) layers per UNet block (default 1)")
    parser.add_argument("--min-radius", type=float,
                        help="redraw the scenes with one-shape scenes from this circumradius (fraction of the side) "
                             "to the world's largest (default: as the cached set was drawn)")
    parser.add_argument("--pair-min-radius", type=float,
                        help="the same for each shape of a pair, up to the world's largest pair shape")
    parser.add_argument("--agree-below", type=int, default=0,
                        help="t below which a caption's and the empty caption's eps are pulled together (0: off)")
    parser.add_argument("--agree-weight", type=float, default=10.0,
                        help="weight of that pull at t = 0, falling linearly to 0 at --agree-below")
    parser.add_argument("--scenes", type=int,
                        help="redraw the scene set with this many scenes, the same seed and shares (default: as "
                             "cached); more scenes show more of the two-shape captions")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        parser.error(f"--steps and --batch must be at least 1, not {args.steps} and {args.batch}")
    if not 0 <= args.agree_below <= 1000 or args.agree_weight < 0:
        parser.error(f"--agree-below {args.agree_below} / --agree-weight {args.agree_weight}: give a t in 0..1000 "
                     f"and a weight of at least 0")
    if args.scenes is not None and args.scenes < args.batch:
        parser.error(f"--scenes {args.scenes}: give at least one batch of scenes ({args.batch})")
    return args


def scene_set(path: Path, size: int, count: int | None = None, min_radius: float | None = None,
              pair_min_radius: float | None = None):
    """The scene set cached at `path`, redrawn with the same seed and pair share where a count or a smallest
    radius is asked that differs from the cached set's. Returns the scenes and their radius ranges."""
    cached = np.load(path)
    single, pair = stored_radii(cached)
    radii = ((min_radius, RADIUS_RANGE[1]) if min_radius is not None else single,
             (pair_min_radius, PAIR_RADIUS_RANGE[1]) if pair_min_radius is not None else pair)
    count = len(cached["images"]) if count is None else count
    return load_or_draw_v3(path, count, size, int(cached["seed"]), float(cached["pair_share"]), radii), radii


def encoded_scenes(vae, scenes, path: Path, radii=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The scenes' scaled posterior means and stds, cached at `path` (for scenes drawn with `radii`)."""
    cached = load_checkpoint(path)
    if cached is not None and len(cached["mean"]) == len(scenes) and cached.get("radii") == radii:
        return cached["mean"], cached["std"]
    means, stds = [], []
    for start in range(0, len(scenes), 256):
        mean, std = encode_posterior(vae, scenes.image_tensor(np.arange(start, min(start + 256, len(scenes)))), 32)
        means.append(mean)
        stds.append(std)
    save_checkpoint({"mean": torch.cat(means), "std": torch.cat(stds), "radii": radii}, path)
    return torch.cat(means), torch.cat(stds)


def save_pipeline(vae, text_encoder, tokenizer, unet, folder: Path):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=components.make_pipeline_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)


def save_snapshot(out: Path) -> Path:
    """The running checkpoint's EMA UNet and text encoder, with the VAE and tokenizer, as OUT/pipeline-step<N>."""
    from diffusers import AutoencoderKL

    from .tokenizer import load_tokenizer

    state = load_checkpoint(out / "scratch" / "unet.pt")
    if state is None:
        raise SystemExit(f"no checkpoint at {out / 'scratch' / 'unet.pt'} yet")
    vae = AutoencoderKL.from_pretrained(out / "vae", use_safetensors=True).eval()
    tokenizer = load_tokenizer(out / "pipeline" / "tokenizer")
    unet = components.make_unet(stored_sizes(out / "scratch"), vae.config.sample_size)
    text_encoder = components.make_text_encoder(components.FULL, tokenizer)
    unet.load_state_dict(state["ema_unet"])
    text_encoder.load_state_dict(state["ema_text"])
    folder = out / f"pipeline-step{state['step']}"
    save_pipeline(vae, text_encoder.eval(), tokenizer, unet.eval(), folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    args = parse_args(argv)
    if args.snapshot:
        print(f"wrote {save_snapshot(Path(args.out))}")
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    out = Path(args.out)
    scratch = out / "scratch"
    checkpoint = scratch / "unet.pt"
    if not args.resume and checkpoint.exists():
        checkpoint.unlink()
    vae = AutoencoderKL.from_pretrained(out / "vae", use_safetensors=True).eval()
    size = vae.config.sample_size
    scenes, radii = scene_set(scratch / "scenes.npz", size, args.scenes, args.min_radius, args.pair_min_radius)
    world_radii = radii == (RADIUS_RANGE, PAIR_RADIUS_RANGE)  # keyed None, as caches from before radii were stored
    mean, std = encoded_scenes(vae, scenes, scratch / "latents.pt", None if world_radii else radii)
    captions = [str(c) for c in scenes.captions]
    print(f"{len(scenes)} scenes encoded ({time.monotonic() - started:.0f} s)", flush=True)

    tokenizer = write_tokenizer(out / "pipeline" / "tokenizer", two_shapes=True)
    sizes = stored_sizes(scratch) if args.resume else unet_sizes(args.unet_channels, args.unet_layers)
    asked = unet_sizes(args.unet_channels or sizes.unet_channels, args.unet_layers or sizes.unet_layers)
    if asked != sizes:
        raise SystemExit(f"--unet-channels/--unet-layers: the run in {scratch} has {list(sizes.unet_channels)} and "
                         f"{sizes.unet_layers} per block; a resumed run keeps its sizes (start without --resume)")
    (scratch / SIZES_FILE).write_text(json.dumps({"unet_channels": list(sizes.unet_channels),
                                                  "unet_layers": sizes.unet_layers}))
    unet = components.make_unet(sizes, size)
    text_encoder = components.make_text_encoder(components.FULL, tokenizer)
    if args.warm_start != "none":
        from transformers import CLIPTokenizer

        old_tokenizer = CLIPTokenizer.from_pretrained(str(part(args.warm_start, "tokenizer")))
        old_vocab = old_tokenizer.get_vocab()
        rows = {new: old_vocab[token] for token, new in tokenizer.get_vocab().items() if token in old_vocab}
        unet_copied = warm_start(unet, UNet2DConditionModel.from_pretrained(part(args.warm_start, "unet")))
        text_copied = warm_start(text_encoder, CLIPTextModel.from_pretrained(part(args.warm_start, "text_encoder")),
                                 rows)
        print(f"warm start from {args.warm_start}: {unet_copied} UNet tensors, {text_copied} text encoder tensors "
              f"and {len(rows)} token embeddings", flush=True)
    abar = components.make_train_scheduler().alphas_cumprod
    parameters = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=1e-2)
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()

    def batch_loss(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(mean), (args.batch,), generator=generator)
        # 1. x_0 from the stored posterior; captions: some name a wrong colour, some are dropped to ""
        x_0 = sample_posterior(mean[index], std[index], generator)
        wrong = (torch.rand(args.batch, generator=generator) < args.colour_noise).tolist()
        dropped = (torch.rand(args.batch, generator=generator) < args.caption_dropout).tolist()
        which, shift = torch.randint(0, 2, (args.batch,), generator=generator), torch.randint(0, 5, (args.batch,),
                                                                                               generator=generator)
        texts = ["" if dropped[i] else with_other_colour(captions[k], int(which[i]), int(shift[i])) if wrong[i]
                 else captions[k] for i, k in enumerate(index.tolist())]
        # 2. x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t uniform over 0..999
        t = torch.randint(0, 1000, (args.batch,), generator=generator)
        eps = torch.randn(x_0.shape, generator=generator)
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x_0 + (1 - a).sqrt() * eps
        # 3. encode the distinct captions of this batch (and "") once, then predict eps; captioned x_t at
        #    t < T also without the caption, eps_c and eps_u pulled together with weight W (1 - t / T)
        used = sorted(set(texts) | {""})
        ids = tokenizer(used, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        encoded = text_encoder(ids)[0]
        pull = agreement_weights(t, texts, args.agree_below, args.agree_weight)
        return eps_loss(unet, x_t, t, eps, encoded[[used.index(text) for text in texts]], encoded[used.index("")],
                        pull)

    schedule = Schedule("unet v3", args.steps, args.lr, warmup=200, seed=args.seed, phase=UNET_V3_PHASE,
                        checkpoint=checkpoint, save_every_s=args.save_every, ema_decay=args.ema_decay,
                        report_every=250)
    losses = train_steps(schedule, {"unet": unet, "text_encoder": text_encoder}, optimizer, batch_loss,
                         averages={"ema_unet": (ema_unet, unet), "ema_text": (ema_text, text_encoder)})
    save_pipeline(vae, ema_text, tokenizer, ema_unet, out / "pipeline")
    plot_losses({"UNet + text encoder (eps MSE)": losses}, out / "pipeline" / "loss_curve.png")
    write_run_record(out / "pipeline", "toy v3 model", "train_unet_v3", argv, args.steps, args.batch, losses,
                     (time.monotonic() - started) / 60)
    print(f"saved the toy v3 pipeline to {out / 'pipeline'}", flush=True)


if __name__ == "__main__":
    main()
