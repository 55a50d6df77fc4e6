"""The toy flow model: python -m training.train_flow --out DIR [--resume] [--snapshot]

A small SD3 transformer (StableDiffusion3Pipeline, no T5) trained by flow matching on the toy world's one-shape
scenes, in the shipped toy's latent space (its VAE, kept), with the toy's tokenizer and a CLIP text encoder
warm-started from the toy's:
1. draw the scenes (training.dataset, cached in DIR/scratch) and encode them once with the toy's VAE (posterior
   mean and std; each step draws x_0 from it);
2. x_t = (1 - sigma) x_0 + sigma eps, target v = eps - x_0; sigma drawn logit-normal as in the SD3 paper
   (Esser et al. 2024, "Scaling Rectified Flow Transformers", section 3.1: u = sigmoid(n), n ~ N(m, s)),
   then shifted by SD3's shift (3.0) as diffusers' SD3 trainers and the scheduler do;
3. captions as the toy's: about 10% dropped to "" (classifier-free guidance), 30% naming a wrong colour (so
   guidance 1 sometimes draws another colour, and guidance matters);
4. the target: eps - x_0, or with --teacher a trained v-prediction toy's estimate of its expectation given x_t
   and the caption, where the teacher covers sigma (training/flow_teacher.py): the same minimiser, far less
   variance in the target;
5. transformer and text encoder trained together (AdamW, warm-up + cosine LR, EMA), v MSE;
6. save a StableDiffusion3Pipeline folder to DIR/pipeline (safetensors) with FlowMatchEuler, shift 3.0.

Resumable: the checkpoint goes to DIR/scratch/flow.pt every few minutes; rerun with --resume. --snapshot writes
the running checkpoint's EMA networks as a pipeline folder, DIR/pipeline-step<N>, to measure a run in progress;
with --raw its own networks instead (not the EMA), DIR/raw-step<N>, to warm-start the next run from exactly
where this one stands.
--ship NAME copies DIR/NAME into stepviz/toy/weights as the shipped "toy-flow": its transformer, text encoder
and scheduler as parts of their own, the weights stored in float16 (half_weights.py); the VAE and tokenizer are
the toy's (checked to be the same weights and vocabulary), read
with SD3's shift_factor and the flow tokenizer's length (the parts' config values in model_index.json).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from . import flow_components as flow
from .checkpoint import load_checkpoint
from .dataset import CAPTIONS, EMPTY_CAPTION_INDEX, add_min_radius_option, load_or_draw, scene_radius_range
from .flow_teacher import VelocityTeacher
from .half_weights import halve_folder, same_at_half
from .loop import Schedule, plot_losses, train_steps
from .reporting import write_run_record
from .sources import part
from .train import encode_scenes
from .train_unet import other_colour_captions

FLOW_PHASE = 13  # step_generator phase, distinct from the other trainers'


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train_flow", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (DIR/pipeline, DIR/scratch)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT/scratch")
    parser.add_argument("--snapshot", action="store_true",
                        help="only write the running checkpoint's EMA networks as a pipeline, OUT/pipeline-step<N>")
    parser.add_argument("--raw", action="store_true",
                        help="with --snapshot: the checkpoint's own networks, not the EMA, as OUT/raw-step<N>")
    parser.add_argument("--ship", metavar="NAME", help="only copy OUT/NAME (e.g. pipeline) into the package")
    parser.add_argument("--base", default="toy", help="the toy model whose VAE, tokenizer and text encoder start it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=12000, help="training pictures drawn")
    add_min_radius_option(parser)
    parser.add_argument("--steps", type=int, default=4500)
    parser.add_argument("--until", type=int, default=0,
                        help="stop after this step (checkpoint written, no pipeline saved); the LR follows --steps")
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--layers", type=int, default=4, help="transformer blocks")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (32 features each)")
    parser.add_argument("--logit-mean", type=float, default=0.0, help="logit-normal sigma sampling: mean m")
    parser.add_argument("--logit-std", type=float, default=1.0, help="logit-normal sigma sampling: std s")
    parser.add_argument("--train-shift", type=float, default=flow.SHIFT, help="shift applied to the drawn sigmas")
    parser.add_argument("--caption-dropout", type=float, default=0.1, help="fraction of captions replaced by \"\"")
    parser.add_argument("--colour-noise", type=float, default=0.3, help="fraction of captions naming a wrong colour")
    parser.add_argument("--save-every", type=float, default=180, help="seconds between checkpoints")
    parser.add_argument("--teacher", metavar="MODEL",
                        help="a v-prediction toy (e.g. toy-v) whose velocity estimate is the target where it covers "
                             "the noise level (training/flow_teacher.py); the sample eps - x_0 elsewhere")
    parser.add_argument("--guidance-weight", type=float, default=0.0,
                        help="with --teacher: also predict each x_t without its caption and add this weight times "
                             "the error of the guidance direction (cond - uncond) against the teacher's")
    parser.add_argument("--warm-start", metavar="FOLDER",
                        help="start the transformer and text encoder from this flow pipeline folder")
    parser.add_argument("--warmup", type=int, default=300, help="learning-rate warm-up steps")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.guidance_weight and not args.teacher:
        parser.error(f"--guidance-weight {args.guidance_weight} needs --teacher (the direction is the teacher's)")
    if args.raw and not args.snapshot:
        parser.error("--raw goes with --snapshot (it picks which networks the snapshot writes)")
    if args.steps < 1 or args.batch < 1:
        parser.error(f"--steps and --batch must be at least 1, not {args.steps} and {args.batch}")
    return args


def build_networks(args: argparse.Namespace):
    """(transformer, text encoder, tokenizer, VAE): the toy's VAE and tokenizer, a warm-started text encoder."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    vae = AutoencoderKL.from_pretrained(part(args.base, "vae"), use_safetensors=True, shift_factor=flow.SHIFT_FACTOR)
    tokenizer = CLIPTokenizer.from_pretrained(str(part(args.base, "tokenizer")), model_max_length=flow.FLOW_TOKENS)
    toy_text = CLIPTextModel.from_pretrained(part(args.base, "text_encoder"), use_safetensors=True)
    side = vae.config.sample_size // 8
    transformer = flow.make_flow_transformer(layers=args.layers, heads=args.heads,
                                             text_width=toy_text.config.hidden_size, latent_side=side)
    text_encoder = flow.make_flow_text_encoder(toy_text)
    if args.warm_start:
        from safetensors.torch import load_file

        start = Path(args.warm_start)
        for name in ("transformer/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
            if not (start / name).is_file():
                raise SystemExit(f"--warm-start {start}: no {name} there; give a flow pipeline folder this trainer "
                                 "wrote (DIR/pipeline or DIR/pipeline-stepN)")
        transformer.load_state_dict(load_file(start / "transformer" / "diffusion_pytorch_model.safetensors"))
        text_encoder.load_state_dict(load_file(start / "text_encoder" / "model.safetensors"))
    return transformer, text_encoder, tokenizer, vae.eval()


def save_pipeline(vae, text_encoder, tokenizer, transformer, folder: Path) -> None:
    from diffusers import StableDiffusion3Pipeline
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    transformer = copy.deepcopy(transformer)
    transformer.set_attn_processor(JointAttnProcessor2_0())
    pipe = StableDiffusion3Pipeline(transformer=transformer.eval(), scheduler=flow.make_flow_scheduler(), vae=vae,
                                    text_encoder=text_encoder.eval(), tokenizer=tokenizer,
                                    text_encoder_2=text_encoder.eval(), tokenizer_2=tokenizer,
                                    text_encoder_3=None, tokenizer_3=None)
    pipe.save_pretrained(folder, safe_serialization=True)


def save_snapshot(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    state = load_checkpoint(out / "scratch" / "flow.pt")
    if state is None:
        raise SystemExit(f"no checkpoint at {out / 'scratch' / 'flow.pt'} yet")
    transformer, text_encoder, tokenizer, vae = build_networks(args)
    transformer.load_state_dict(state["transformer" if args.raw else "ema_transformer"])
    text_encoder.load_state_dict(state["text_encoder" if args.raw else "ema_text"])
    folder = out / f"{'raw' if args.raw else 'pipeline'}-step{state['step']}"
    save_pipeline(vae, text_encoder, tokenizer, transformer, folder)
    return folder


SHIPPED_NAME = "toy-flow"
OWN_PARTS = {"transformer": "transformer-flow", "text_encoder": "text_encoder-flow", "scheduler": "scheduler-flow"}
TOY_PARTS = {"vae": "vae", "tokenizer": "tokenizer", "preview_decoder": "preview_decoder"}


def ship(folder: Path) -> Path:
    """Copy the pipeline `folder` into stepviz/toy/weights as toy-flow (each part written under a temporary name,
    then renamed, the weights in float16); its VAE and tokenizer must be the toy's own (the same weights at half
    precision, the same vocabulary)."""
    import json
    import shutil

    from stepviz.models.folder_check import PART_CONFIG_KEY, PARTS_KEY
    from stepviz.models.loading import SHIPPED_WEIGHTS

    from transformers import CLIPTokenizer

    same_vae = same_at_half(SHIPPED_WEIGHTS / "vae" / "diffusion_pytorch_model.safetensors",
                            folder / "vae" / "diffusion_pytorch_model.safetensors")
    toy_tokens, own_tokens = (CLIPTokenizer.from_pretrained(str(place / "tokenizer")).get_vocab()
                              for place in (SHIPPED_WEIGHTS, folder))
    if not same_vae or toy_tokens != own_tokens:
        raise SystemExit(f"{folder}: its {'VAE' if not same_vae else 'tokenizer'} is not the toy's; the flow model "
                         "must use the toy's VAE and tokenizer")
    index = json.loads((folder / "model_index.json").read_text())
    index[PARTS_KEY] = {**{name: f"../{part}" for name, part in OWN_PARTS.items()},
                        "text_encoder_2": f"../{OWN_PARTS['text_encoder']}", "tokenizer_2": "../tokenizer",
                        **{name: f"../{part}" for name, part in TOY_PARTS.items()}}
    tokens = {"model_max_length": flow.FLOW_TOKENS}
    index[PART_CONFIG_KEY] = {"vae": {"shift_factor": flow.SHIFT_FACTOR}, "tokenizer": tokens, "tokenizer_2": tokens}
    for name, own in OWN_PARTS.items():
        temporary = SHIPPED_WEIGHTS / f"{own}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.copytree(folder / name, temporary)
        halve_folder(temporary)
        shutil.rmtree(SHIPPED_WEIGHTS / own, ignore_errors=True)
        temporary.replace(SHIPPED_WEIGHTS / own)
    (SHIPPED_WEIGHTS / SHIPPED_NAME).mkdir(exist_ok=True)
    temporary = SHIPPED_WEIGHTS / SHIPPED_NAME / "model_index.json.tmp"
    temporary.write_text(json.dumps(index, indent=2) + "\n")
    temporary.replace(temporary.with_suffix(""))
    return SHIPPED_WEIGHTS / SHIPPED_NAME


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.snapshot:
        print(f"wrote {save_snapshot(args)}")
        return
    if args.ship:
        print(f"wrote {ship(Path(args.out) / args.ship)}")
        return
    torch.manual_seed(args.seed)
    started = time.monotonic()
    out = Path(args.out)
    scratch = out / "scratch"
    checkpoint = scratch / "flow.pt"
    if not args.resume and checkpoint.exists():
        checkpoint.unlink()
    transformer, text_encoder, tokenizer, vae = build_networks(args)
    radius_range = scene_radius_range(args.min_radius)
    scenes = load_or_draw(scratch / "scenes.npz", args.scenes, vae.config.sample_size, args.seed, radius_range)
    cached = load_checkpoint(scratch / "latents.pt")
    if (cached is None or len(cached["mean"]) != len(scenes)
            or tuple(cached.get("radius_range", radius_range)) != tuple(radius_range)):
        with torch.no_grad():
            mean, std = encode_scenes(vae, scenes)
        torch.save({"mean": mean, "std": std, "radius_range": radius_range}, scratch / "latents.pt")
    else:
        mean, std = cached["mean"], cached["std"]
    caption_index = torch.from_numpy(scenes.caption_index)
    token_ids = tokenizer(CAPTIONS + [""], padding="max_length", max_length=flow.FLOW_TOKENS, truncation=True,
                          return_tensors="pt").input_ids
    print(f"{len(scenes)} scenes encoded ({time.monotonic() - started:.0f} s); transformer "
          f"{sum(p.numel() for p in transformer.parameters()) / 1e6:.2f} M parameters", flush=True)

    transformer.set_attn_processor(flow.CollapsedZeroRowsAttention(flow.T5_ROWS))
    parameters = list(transformer.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=1e-2)
    ema_transformer, ema_text = copy.deepcopy(transformer).eval(), copy.deepcopy(text_encoder).eval()
    teacher = VelocityTeacher(args.teacher, CAPTIONS + [""]) if args.teacher else None

    def batch_loss(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(mean), (args.batch,), generator=generator)
        # 1. x_0 from the stored posterior; captions: some name a wrong colour, some are dropped to ""
        x_0 = mean[index] + std[index] * torch.randn(mean[index].shape, generator=generator)
        caption = caption_index[index].clone()
        wrong = torch.rand(args.batch, generator=generator) < args.colour_noise
        caption[wrong] = other_colour_captions(caption[wrong], generator)
        caption[torch.rand(args.batch, generator=generator) < args.caption_dropout] = EMPTY_CAPTION_INDEX
        # 2. sigma = shift(sigmoid(n)), n ~ N(m, s); x_t = (1 - sigma) x_0 + sigma eps; v = eps - x_0
        n = args.logit_mean + args.logit_std * torch.randn(args.batch, generator=generator)
        sigma = flow.shifted(torch.sigmoid(n), args.train_shift)
        eps = torch.randn(x_0.shape, generator=generator)
        s = sigma.view(-1, 1, 1, 1)
        x_t = (1 - s) * x_0 + s * eps
        # 3. with --guidance-weight, each x_t a second time without its caption (the pair guidance combines)
        paired = args.guidance_weight > 0
        if paired:
            x_t, sigma, eps, x_0 = (torch.cat([x, x]) for x in (x_t, sigma, eps, x_0))
            caption = torch.cat([caption, torch.full_like(caption, EMPTY_CAPTION_INDEX)])
        # 4. encode the distinct captions of this batch once, then predict v
        used, where = torch.unique(caption, return_inverse=True)
        context, pooled = flow.encode_captions(text_encoder, token_ids[used])
        v_hat = flow.predict_velocity(transformer, x_t, sigma, context[where], pooled[where])
        # 5. the target: eps - x_0, or the teacher's estimate of its expectation where the teacher covers sigma
        target = eps - x_0
        covered = teacher.covers(sigma) if teacher is not None else torch.zeros_like(sigma, dtype=torch.bool)
        if covered.any():
            target[covered] = teacher.velocity(x_t[covered], sigma[covered], caption[covered])
        loss = (v_hat - target).pow(2).mean()
        if paired and covered.any():  # the guidance direction (cond - uncond) against the teacher's
            half = args.batch
            both = covered[:half]
            direction = (v_hat[:half] - v_hat[half:])[both] - (target[:half] - target[half:])[both]
            loss = loss + args.guidance_weight * direction.pow(2).mean() * both.float().mean()
        return loss

    schedule = Schedule("flow", args.steps, args.lr, warmup=args.warmup, seed=args.seed, phase=FLOW_PHASE,
                        checkpoint=checkpoint, save_every_s=args.save_every, ema_decay=args.ema_decay,
                        report_every=100, until=args.until)
    losses = train_steps(schedule, {"transformer": transformer, "text_encoder": text_encoder}, optimizer,
                         batch_loss, averages={"ema_transformer": (ema_transformer, transformer),
                                               "ema_text": (ema_text, text_encoder)})
    if len(losses) < args.steps:
        print(f"stopped at step {len(losses)} (--until); continue with --resume", flush=True)
        return
    save_pipeline(vae, ema_text, tokenizer, ema_transformer, out / "pipeline")
    plot_losses({"transformer + text encoder (v MSE)": losses}, out / "pipeline" / "loss_curve.png")
    write_run_record(out / "pipeline", "toy flow model", "train_flow", argv, args.steps, args.batch, losses,
                     (time.monotonic() - started) / 60)
    print(f"saved the toy flow pipeline to {out / 'pipeline'}", flush=True)


if __name__ == "__main__":
    main()
