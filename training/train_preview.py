"""The toy model's quick previews: linear latent -> RGB factors and a tiny decoder, fitted and measured.

    python -m training.train_preview --model DIR [--scenes 720] [--steps 2500] [--resume]   (DIR: what training.train
    wrote; the tiny decoder's checkpoint goes to DIR/scratch/preview_decoder.pt)
    python -m training.train_preview --model toy-depth --measure   (a shipped model, no training)

Both are fitted to the VAE decoder's own pictures of toy latents (every colour x shape x background):
1. least squares rgb = z @ F + b against the decoded pictures averaged down to latent resolution
   -> latent_rgb.json (what `stepviz.render.preview` uses when no decoder ships);
2. a tiny decoder in diffusers' AutoencoderTiny format, trained to copy the VAE decoder (the approach
   of TAESD, Bohan 2023, github.com/madebyollin/taesd) -> preview_decoder/, used when present.
Each is then measured on held-out latents: how often the checker's hue rule names the same colour on
the preview as on the full VAE decode. The latents are the encoder's means of drawn scenes, samples
around them and noised versions (x_t = sqrt(a) z + sqrt(1 - a) eps), plus the model's own x_t and
x0-hat over the last steps of DDIM runs at several guidance scales (its drawings are not always the
world's: a green circle with a blue heart must preview as the decoder draws it).
The VAE and UNet are not changed. Writes PREVIEW.md beside them with the figures and this command.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from stepviz.render.preview import (LATENT_RGB_FILE, PREVIEW_DECODER_DIR, approx_rgb_image, tiny_decoder_images,
                                    uint8_pictures)
from stepviz.toy.checker import inspect
from stepviz.toy.world import BACKGROUNDS, COLOURS, SHAPES, draw_scene, random_pair

from .extra_channels import pixels_from_uint8
from .loop import Schedule, train_steps
from .reporting import command_line, fit_latent_rgb
from .scenes_v3 import V3_SIZE
from .sources import SHIPPED_MODEL, load_toy_pipeline, part

# Scenes are draw_scene(cell i % 36, seed=BASE + i): the training set draws its seeds from
# default_rng(0).integers(2**31), so these fixed ranges are (with overwhelming odds) never training scenes.
FIT_SEED_BASE = 100_000
GENERATED_FIRST_SEED, HELD_OUT_GENERATED_SEED = 17_000, 18_000  # the evaluation set uses 14_000..14_003
GENERATION_SCALES, HELD_OUT_SCALES = (1.0, 3.0, 7.5, 12.0), (7.5, 1.0)
LAST_STEPS = 8  # x_t and x0-hat of the last steps of each 25-step run
ENCODER_BATCH = 8  # the encoder is not what previews use: a few pictures per step keep it cheap
ENCODER_LOSS_WEIGHT = 0.1
PREVIEW_PHASE = 11  # step_generator phase, distinct from the other training phases
HELD_OUT_SEED_BASE = 200_000
DECODER_CONFIG = dict(
    # 8x8 latents -> one block at 32 channels -> 16x16 RGB: under 10% of a toy step for both pictures
    decoder_block_out_channels=(32, 32), num_decoder_blocks=(1, 0),
    # the encoder (64x64 -> 8x8) is trained to copy the VAE encoder's means, so the folder is a whole VAE
    encoder_block_out_channels=(16, 16, 16, 16), num_encoder_blocks=(0, 1, 1, 1),
    latent_channels=4, scaling_factor=1.0,
)


def draw_scenes(seed_base: int, count: int, size: int = 64) -> np.ndarray:
    """uint8 images N x size x size x 3, cycling through every colour x shape x background; at version 3's
    size and above every other scene shows two shapes, as its training set does."""
    cells = list(itertools.product(COLOURS, SHAPES, BACKGROUNDS))
    pairs = size >= V3_SIZE

    def scene(i: int):
        if pairs and i % 2:
            return random_pair(np.random.default_rng(seed_base + i), size)
        return draw_scene(*cells[i % len(cells)], seed=seed_base + i, size=size)
    return np.stack([scene(i).image for i in range(count)])


def picture_size(unet_config) -> int:
    """The side in pixels of the pictures a toy pipeline draws (its VAE downsamples 8x)."""
    return int(unet_config["sample_size"]) * 8


@torch.no_grad()
def decoded_latents(vae, images: np.ndarray, seed: int, batch: int = 64) -> dict[str, torch.Tensor]:
    """Latents of the scenes in three kinds (mean, a sample, noised) and the VAE's decode of each.

    Returns {"means": N x 4 x h x w, "latents": 3N x 4 x h x w (means, then samples, then noised: latent i
    shows scene i % N), "decoded": 3N x 3 x H x W in [-1, 1]}.
    """
    generator = torch.Generator().manual_seed(seed)
    kinds: dict[str, list[torch.Tensor]] = {"mean": [], "sample": [], "noised": []}
    for start in range(0, len(images), batch):
        dist = vae.encode(pixels_from_uint8(images[start:start + batch])).latent_dist
        mean = dist.mean * vae.config.scaling_factor
        kinds["mean"].append(mean)
        spread = dist.std * vae.config.scaling_factor
        kinds["sample"].append(mean + spread * torch.randn(mean.shape, generator=generator))
        alpha = torch.empty(len(mean), 1, 1, 1).uniform_(0.4, 1.0, generator=generator)
        kinds["noised"].append(alpha.sqrt() * mean + (1 - alpha).sqrt() * torch.randn(mean.shape, generator=generator))
    latents = torch.cat([torch.cat(parts) for parts in kinds.values()])
    decoded = torch.cat([vae.decode(z / vae.config.scaling_factor).sample.clamp(-1, 1) for z in latents.split(batch)])
    return {"means": torch.cat(kinds["mean"]), "latents": latents, "decoded": decoded}


@torch.no_grad()
def generated_latents(pipe, first_seed: int, scales, steps: int = 25, batch: int = 64) -> dict[str, torch.Tensor]:
    """x_t and x0-hat over the last LAST_STEPS steps of the model's runs (every prompt once per scale), and the
    VAE's decode of each: {"latents": M x 4 x h x w, "decoded": M x 3 x H x W, "final": bool M (last step)}."""
    from .evaluate import generate_recording
    from stepviz.toy.world import all_captions

    latents, final = [], []
    for i, scale in enumerate(scales):
        prompts = all_captions()
        print(f"the model's runs at guidance {scale}: {len(prompts)} prompts x {steps} steps", flush=True)
        _, trail = generate_recording(pipe, prompts, [first_seed + 100 * i + k for k in range(len(prompts))],
                                      scale, steps)
        for k, (x_t, x0) in enumerate(trail[-LAST_STEPS:]):
            latents += [x_t, x0]
            final += [k == LAST_STEPS - 1] * (2 * len(prompts))
    latents = torch.cat(latents)
    vae = pipe.vae
    decoded = torch.cat([vae.decode(z / vae.config.scaling_factor).sample.clamp(-1, 1) for z in latents.split(batch)])
    return {"latents": latents, "decoded": decoded, "final": torch.tensor(final)}


def hue_agreement(previews: list[np.ndarray], decoded: np.ndarray) -> float:
    """Share of pictures whose preview the checker gives the same colour as the full decode."""
    return float(np.mean([inspect(p)["colour"] == inspect(d)["colour"] for p, d in zip(previews, decoded)]))


def shape_weight(decoded: torch.Tensor, far: float = 0.6) -> torch.Tensor:
    """1 on the background, 5 where a decoded picture is far (RGB distance in [-1, 1] units) from its border's
    median colour: the shape's few pixels weigh as much as the many background ones."""
    border = torch.cat([decoded[..., 0, :], decoded[..., -1, :], decoded[..., :, 0], decoded[..., :, -1]], dim=-1)
    background = border.median(dim=-1).values[..., None, None]
    return 1 + 4 * ((decoded - background).norm(dim=1, keepdim=True) > far).float()


def train_tiny_decoder(tiny, latents: torch.Tensor, decoded: torch.Tensor, pixels: torch.Tensor,
                       means: torch.Tensor, steps: int, checkpoint: Path, batch: int = 32, lr: float = 2e-3,
                       seed: int = 0, save_every_s: float = 120) -> list[float]:
    """Train the AutoencoderTiny in the one training loop (resumable from `checkpoint`): decoder to the VAE's
    decodes of `latents` (shape pixels weigh 5x), encoder from `pixels` to the VAE encoder's `means`."""
    pool = decoded.shape[-1] // tiny.decode(latents[:1]).sample.shape[-1]
    targets = torch.nn.functional.avg_pool2d(decoded, pool)
    weight = torch.nn.functional.avg_pool2d(shape_weight(decoded), pool)

    def batch_loss(step: int, generator: torch.Generator) -> torch.Tensor:
        pick = torch.randint(len(targets), (batch,), generator=generator)
        decoder_loss = (weight[pick] * (tiny.decode(latents[pick]).sample - targets[pick]) ** 2).mean()
        scenes = torch.randint(len(pixels), (ENCODER_BATCH,), generator=generator)
        encoder_loss = ((tiny.encode(pixels[scenes]).latents - means[scenes]) ** 2).mean()
        return decoder_loss + ENCODER_LOSS_WEIGHT * encoder_loss

    schedule = Schedule("preview decoder", steps, lr, warmup=steps // 20 + 1, seed=seed, phase=PREVIEW_PHASE,
                        checkpoint=checkpoint, save_every_s=save_every_s, report_every=250)
    losses = train_steps(schedule, {"tiny": tiny}, torch.optim.AdamW(tiny.parameters(), lr=lr, weight_decay=0.0),
                         batch_loss)
    tiny.eval()
    return losses


def _previews(latents: torch.Tensor, render) -> list[np.ndarray]:
    return [np.asarray(render(z[None])) for z in latents]


def save_tiny(tiny, folder: Path) -> None:
    """save_pretrained, less the `block_out_channels` entry diffusers records but AutoencoderTiny does not take
    (loading warns about it otherwise, on every preview's first use)."""
    tiny.save_pretrained(folder, safe_serialization=True)
    config = json.loads((folder / "config.json").read_text())
    config.pop("block_out_channels", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _load_or_make(cache: Path | None, make) -> dict:
    """`make()`'s data, kept in (and reused from) the cache file when one is given."""
    if cache is not None and cache.is_file():
        return torch.load(cache)
    data = make()
    if cache is not None:
        torch.save(data, cache)
    return data


def measure_shipped(model: str, count: int) -> None:
    """Print how often the model's tiny decoder names the colour its VAE decodes, on held-out drawn scenes."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    tiny = AutoencoderTiny.from_pretrained(part(model, PREVIEW_DECODER_DIR), use_safetensors=True).eval()
    size = picture_size(json.loads((Path(part(model, "unet")) / "config.json").read_text()))
    held = decoded_latents(AutoencoderKL.from_pretrained(part(model, "vae")).eval(),
                           draw_scenes(HELD_OUT_SEED_BASE, count, size), seed=2)
    views = _previews(held["latents"], lambda z: tiny_decoder_images(z, tiny)[0])
    decoded = uint8_pictures(held["decoded"])
    means = len(held["means"])
    print(f"{model}: the tiny decoder names the VAE decode's colour on {hue_agreement(views, decoded):.1%} of "
          f"{len(views)} held-out latents (seeds {HELD_OUT_SEED_BASE}..; means, samples, noised), "
          f"{hue_agreement(views[:means], decoded[:means]):.1%} of the {means} encoder means")


def main(argv: list[str] | None = None) -> None:
    from diffusers import AutoencoderTiny

    from stepviz.models.loading import SHIPPED

    parser = argparse.ArgumentParser(prog="python -m training.train_preview", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=SHIPPED_MODEL,
                        help="the pipeline folder to fit (written into); --measure: a shipped model's name too")
    parser.add_argument("--scenes", type=int, default=720, help="fitting scenes (20 of each of the 36 kinds)")
    parser.add_argument("--held-out", type=int, default=216, help="held-out scenes for the measure")
    parser.add_argument("--steps", type=int, default=2500, help="tiny decoder training steps")
    parser.add_argument("--cache", default=None, help="keep the latents and decodes in this .pt file (reused if there)")
    parser.add_argument("--measure", action="store_true",
                        help="only measure the folder's preview_decoder/ against its VAE on held-out drawn scenes")
    parser.add_argument("--resume", action="store_true",
                        help="continue the tiny decoder from its checkpoint, DIR/scratch/preview_decoder.pt")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.scenes, args.held_out, args.steps) < 1:
        parser.error("--scenes, --held-out and --steps must be at least 1")
    torch.set_num_threads(args.threads)
    started = time.time()
    if args.measure:
        measure_shipped(args.model, args.held_out)
        return
    if args.model in SHIPPED:
        parser.error(f"--model {args.model}: the fit is written into the model's folder; give the folder "
                     "`python -m training.train` wrote (the shipped models' parts are shared)")
    model = Path(args.model)
    pipe = load_toy_pipeline(model)
    size = picture_size(pipe.unet.config)
    images = draw_scenes(FIT_SEED_BASE, args.scenes, size)
    held_images = draw_scenes(HELD_OUT_SEED_BASE, args.held_out, size)
    print(f"drawing and decoding {args.scenes} + {args.held_out} scenes and the model's own runs (reused from "
          f"--cache when there)", flush=True)
    data = _load_or_make(Path(args.cache) if args.cache else None, lambda: {
        "fit": decoded_latents(pipe.vae, images, seed=1), "held": decoded_latents(pipe.vae, held_images, seed=2),
        "gen": generated_latents(pipe, GENERATED_FIRST_SEED, GENERATION_SCALES),
        "gen_held": generated_latents(pipe, HELD_OUT_GENERATED_SEED, HELD_OUT_SCALES),
    })
    fit, held, gen, gen_held = data["fit"], data["held"], data["gen"], data["gen_held"]
    print(f"{len(fit['latents'])} + {len(gen['latents'])} fitting latents, {len(held['latents'])} + "
          f"{len(gen_held['latents'])} held-out, ready in {time.time() - started:.0f} s", flush=True)

    latents, decoded = torch.cat([fit["latents"], gen["latents"]]), torch.cat([fit["decoded"], gen["decoded"]])
    factors, bias, rms = fit_latent_rgb(latents, decoded)
    torch.manual_seed(0)
    tiny = AutoencoderTiny(**DECODER_CONFIG)
    checkpoint = model / "scratch" / "preview_decoder.pt"  # only this file: scratch/ holds other trainers' too
    if not args.resume:
        checkpoint.unlink(missing_ok=True)
    losses = train_tiny_decoder(tiny, latents, decoded, pixels_from_uint8(images), fit["means"], args.steps,
                                checkpoint=checkpoint)

    renders = {
        "linear": lambda z: approx_rgb_image(z, torch.tensor(factors), torch.tensor(bias)),
        "tiny": lambda z: tiny_decoder_images(z, tiny)[0],
    }
    final = gen_held["final"]
    sets = {
        "drawn scenes' latents (means, samples, noised)": (held["latents"], held["decoded"]),
        f"the model's runs, x_t and x0-hat of the last {LAST_STEPS} steps": (gen_held["latents"], gen_held["decoded"]),
        "the model's runs, the final step": (gen_held["latents"][final], gen_held["decoded"][final]),
    }
    scores = {(name, label): hue_agreement(_previews(z, render), uint8_pictures(full))
              for name, render in renders.items() for label, (z, full) in sets.items()}
    with torch.no_grad():
        encoded = tiny.encode(pixels_from_uint8(held_images)).latents
    encoder_error = float((encoded - held["means"]).pow(2).mean().sqrt())

    (model / LATENT_RGB_FILE).write_text(json.dumps({"factors": factors, "bias": bias}, indent=1) + "\n")
    save_tiny(tiny, model / PREVIEW_DECODER_DIR)
    command = command_line("train_preview", argv)
    decoder_size = sum(p.numel() for p in tiny.decoder.parameters())
    report = [
        "# Quick previews of this model", "", "```", command.strip(), "```", "",
        f"Fitted on {len(fit['latents'])} latents of {args.scenes} drawn scenes (seeds {FIT_SEED_BASE}..; encoder "
        "means, samples, and noised sqrt(a) z + sqrt(1 - a) eps with a in 0.4..1) and on "
        f"{len(gen['latents'])} latents of the model's own 25-step DDIM runs (every prompt at guidance "
        f"{', '.join(map(str, GENERATION_SCALES))}, seeds {GENERATED_FIRST_SEED}..; x_t and x0-hat of the last "
        f"{LAST_STEPS} steps), each against the VAE's decode. Measured on held-out latents: {args.held_out} drawn "
        f"scenes (seeds {HELD_OUT_SEED_BASE}..) and runs at guidance {', '.join(map(str, HELD_OUT_SCALES))} "
        f"(seeds {HELD_OUT_GENERATED_SEED}..).", "",
        "Share of held-out latents whose preview the checker's hue rule gives the same colour as the VAE decode:", "",
        "| preview | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|",
        f"| linear `latent_rgb.json` (least squares with bias, RMS {rms:.3f} in [-1, 1]) | "
        + " | ".join(f"{scores[('linear', label)]:.1%}" for label in sets) + " |",
        f"| tiny decoder `preview_decoder/` (AutoencoderTiny, {decoder_size:,} decoder parameters, {args.steps} "
        "steps) | " + " | ".join(f"{scores[('tiny', label)]:.1%}" for label in sets) + " |", "",
        "A linear map cannot separate the toy's hues (its VAE's latents code colour non-linearly), so the quick "
        "preview uses the tiny decoder; its cost per step is in bench/p4_previews.py. The tiny encoder copies "
        f"the VAE encoder's means with RMS error {encoder_error:.3f} (latents have std ~1). Final loss (decoder + "
        f"{ENCODER_LOSS_WEIGHT} x encoder) {np.mean(losses[-100:]):.4f}; {time.time() - started:.0f} s on "
        f"{args.threads} thread(s).", "",
    ]
    (model / "PREVIEW.md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
