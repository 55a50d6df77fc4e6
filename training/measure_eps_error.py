"""Why does a toy model draw right under one scheduler and wrong under another? The measurements, by --only name.

    python -m training.measure_eps_error [--model toy|DIR] [--out DIR] [--only NAME ...] [--seeds 2]

- eps: eps error per t. Held-out drawn scenes (seeds 18000..), encoded (posterior mean x scaling_factor), noised
  at t = 0..999 with fixed eps; mean squared error of the UNet's eps-hat against that eps, with the scene's
  caption, with "", and guided (s = 7.5), beside what a predictor that knows nothing of the data gets
  (eps-hat = sqrt(1 - abar) x_t, the best guess for unit-Gaussian latents) and the x0-hat error the eps error
  means (sigma^2 x it); and where training puts its noise levels (uniform t) against the sampler's calls.
- trajectories: one prompt and seed per scheduler, x0-hat = (x_in - sqrt(1 - abar_t) eps) / sqrt(abar_t) from
  the UNet's own input and guided eps at every step, decoded and named by the checker; and how much the
  guided eps changes from one model call to the next (what a multistep solver extrapolates).
- linearity: latents of drawn squares of one colour (seeds 19000..) mixed two by two, all 16 averaged, and
  extrapolated (1.5 z_1 - 0.5 z_2), decoded and named: a sampler's x0-hat is such a mean.
- schedulers: accuracy per scheduler (the evaluation set's prompts, --seeds seeds each, 25 steps, s = 7.5 and
  1.0) and LMS with its history cut to order 1..4 (the pipeline calls it with order 4).
- lms: LMS at other guidance scales, and with order 4 only before or only after a given step.
- flips: do DDIM's mid-trajectory colour flips predict LMS's failures?
- stiffness: the guided eps's largest eigenvalue times the step, per step, against the multistep stability
  bounds, and which way its direction moves the picture (measure_eps_error.stiffness).
- separation: how far apart the latents of one square drawn in each colour are (measure_schedulers).
Writes eps_error.png and trajectories.png to --out and prints markdown tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stepviz.engine.schedulers import make_scheduler
from stepviz.render.preview import uint8_pictures
from stepviz.toy.checker import inspect
from stepviz.toy.world import all_captions, draw_scene, parse_caption

from .extra_channels import pixels_from_uint8
from .measure_schedulers import (colour_linearity, colour_separation, flips_against_failures, lms_variants,
                                 scheduler_accuracy)
from .sources import SHIPPED_MODEL, load_toy_pipeline

HELD_OUT_FIRST_SEED = 18_000
T_GRID = (0, 50, 100, 200, 300, 400, 500, 600, 700, 800, 850, 900, 921, 941, 961, 981, 999)
TRAJECTORY_SCHEDULERS = ("ddim", "euler", "lms", "pndm", "dpmpp_2m")


@torch.no_grad()
def prompt_states(pipe, prompts: list[str]) -> torch.Tensor:
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    return pipe.text_encoder(ids)[0]


@torch.no_grad()
def eps_error_per_t(pipe, count: int, guidance: float = 7.5) -> list[dict]:
    """One row per t of T_GRID: MSE of eps-hat (caption, "", guided) and of the data-blind guess, vs true eps."""
    captions = all_captions()
    scenes = [draw_scene(*parse_caption(captions[i % len(captions)]), seed=HELD_OUT_FIRST_SEED + i,
                         size=pipe.vae.config.sample_size) for i in range(count)]
    x_0 = pipe.vae.encode(pixels_from_uint8(np.stack([s.image for s in scenes]))).latent_dist.mean
    x_0 = x_0 * pipe.vae.config.scaling_factor
    states = prompt_states(pipe, [s.caption for s in scenes])
    empty = prompt_states(pipe, [""]).expand_as(states)
    abar = pipe.scheduler.alphas_cumprod
    rows = []
    for t in T_GRID:
        eps = torch.randn(x_0.shape, generator=torch.Generator().manual_seed(t))
        a = abar[t]
        x_t = a.sqrt() * x_0 + (1 - a).sqrt() * eps
        steps = torch.full((count,), t)
        eps_text = pipe.unet(x_t, steps, states).sample
        eps_uncond = pipe.unet(x_t, steps, empty).sample
        guided = eps_uncond + guidance * (eps_text - eps_uncond)
        blind = (1 - a).sqrt() * x_t
        mse = {name: float((value - eps).pow(2).mean()) for name, value in
               (("caption", eps_text), ("empty", eps_uncond), ("guided", guided), ("blind", blind))}
        rows.append({"t": t, "sigma": float(((1 - a) / a).sqrt()), **mse,
                     "x0_error_caption": mse["caption"] * float((1 - a) / a)})
    return rows


def training_coverage(pipe, steps: int = 25) -> dict:
    """Share of uniform-t training samples and of a sampler's model calls at the high-noise end."""
    scheduler = make_scheduler("lms", pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    first = int(scheduler.timesteps[0])
    calls = np.asarray(scheduler.timesteps, dtype=float)
    return {"first_t": first, "first_sigma": float(scheduler.sigmas[0]),
            "train_share_900": 100 / 1000, "train_share_first": (1000 - first) / 1000,
            "calls_share_900": float(np.mean(calls >= 900)), "calls_first_sigma_max": float(scheduler.sigmas.max())}


@torch.no_grad()
def trajectory(pipe, scheduler_name: str, prompt: str, seed: int, guidance: float, steps: int = 25) -> dict:
    """x0-hat after every model call (from the UNet's input and guided eps), and eps's relative change."""
    scheduler = make_scheduler(scheduler_name, pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    side = pipe.unet.config.sample_size
    x = torch.randn((1, 4, side, side), generator=torch.Generator().manual_seed(seed)) * scheduler.init_noise_sigma
    states = torch.cat([prompt_states(pipe, [""]), prompt_states(pipe, [prompt])])
    abar = scheduler.alphas_cumprod
    x0_hats, changes, previous = [], [], None
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        eps_uncond, eps_text = pipe.unet(torch.cat([x_in, x_in]), t, states).sample.chunk(2)
        eps = eps_uncond + guidance * (eps_text - eps_uncond)
        low = int(np.floor(float(t)))
        a = abar[low] + (float(t) - low) * (abar[min(low + 1, 999)] - abar[low])  # timesteps may be fractional
        x0_hats.append((x_in - (1 - a).sqrt() * eps) / a.sqrt())
        if previous is not None:
            changes.append(float((eps - previous).norm() / eps.norm()))
        previous = eps
        x = scheduler.step(eps, t, x).prev_sample
    pictures = uint8_pictures(pipe.vae.decode(torch.cat(x0_hats) / pipe.vae.config.scaling_factor).sample)
    final = uint8_pictures(pipe.vae.decode(x / pipe.vae.config.scaling_factor).sample)[0]
    return {"x0_hats": torch.cat(x0_hats), "pictures": pictures, "colours": [inspect(p)["colour"] for p in pictures],
            "changes": changes, "final": final, "final_found": inspect(final)}


def plot_eps_error(rows: list[dict], coverage: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    ts = [r["t"] for r in rows]
    for key, label in (("caption", "eps-hat, caption"), ("empty", 'eps-hat, ""'), ("guided", "guided, s = 7.5"),
                       ("blind", "data-blind sqrt(1 - abar) x_t")):
        axis.plot(ts, [r[key] for r in rows], marker="o", ms=3, label=label)
    axis.axvline(coverage["first_t"], color="grey", ls="--", lw=1)
    label = f" t={coverage['first_t']}\n sigma={coverage['first_sigma']:.1f}"
    axis.text(coverage["first_t"], axis.get_ylim()[1] * 0.5, label, fontsize=8, color="grey", ha="right")
    axis.set(xlabel="t", ylabel="MSE vs true eps", yscale="log", title="eps error per t on held-out drawn scenes")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_trajectory_strip(runs: dict[str, dict], path: Path, every: int = 2) -> None:
    """One row per scheduler: the decoded x0-hat every `every` model calls, the final picture last."""
    from PIL import Image

    rows = []
    for run in runs.values():
        tiles = list(run["pictures"][::every]) + [np.full_like(run["final"], 128)[:, :4], run["final"]]
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((2, 2), (0, width - r.shape[1]), (0, 0)), constant_values=128) for r in rows]
    Image.fromarray(np.concatenate(rows)).save(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.measure_eps_error", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=SHIPPED_MODEL, help="a shipped model's name or a pipeline folder")
    parser.add_argument("--out", default=".", help="folder for eps_error.png and trajectories.png")
    parser.add_argument("--scenes", type=int, default=144, help="held-out scenes for the eps error")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per prompt for the accuracy per scheduler")
    parser.add_argument("--only", nargs="+", choices=tuple(SECTIONS),
                        help="run only these measurements (default: all, in this order)")
    parser.add_argument("--prompt", default="a green square on a black background", help="the trajectories' prompt")
    parser.add_argument("--seed", type=int, default=2, help="the trajectories' seed")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.scenes < 1 or args.seeds < 1:
        parser.error(f"--scenes and --seeds must be at least 1, not {args.scenes} and {args.seeds}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = load_toy_pipeline(args.model)
    for section in args.only or SECTIONS:
        SECTIONS[section](pipe, args, out)


def print_eps_error(pipe, args, out: Path) -> None:
    rows = eps_error_per_t(pipe, args.scenes)
    coverage = training_coverage(pipe)
    print("| t | sigma | MSE, caption | MSE, \"\" | MSE, guided 7.5 | MSE, data-blind | x0-hat MSE (caption) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['t']} | {r['sigma']:.2f} | {r['caption']:.4f} | {r['empty']:.4f} | {r['guided']:.4f} | "
              f"{r['blind']:.4f} | {r['x0_error_caption']:.3f} |")
    print(f"\nLMS/Euler, 25 steps, leading spacing: first t {coverage['first_t']}, "
          f"sigma {coverage['first_sigma']:.2f}; "
          f"training draws t uniformly: {coverage['train_share_900']:.1%} of its samples at t >= 900, "
          f"{coverage['train_share_first']:.1%} at t >= {coverage['first_t']}; the sampler spends "
          f"{coverage['calls_share_900']:.0%} of its model calls at t >= 900", flush=True)
    plot_eps_error(rows, coverage, out / "eps_error.png")


def print_trajectories(pipe, args, out: Path) -> None:
    runs = {}
    for guidance in (7.5, 1.0):
        for name in TRAJECTORY_SCHEDULERS:
            run = trajectory(pipe, name, args.prompt, args.seed, guidance)
            runs[f"{name}, s={guidance}"] = run
            print(f"\n{name}, s = {guidance}: x0-hat colour per step {run['colours']}; final "
                  f"{run['final_found']['colour']} {run['final_found']['shape']}; relative eps change per call "
                  f"{np.round(run['changes'], 2).tolist()}", flush=True)
    save_trajectory_strip({k: v for k, v in runs.items() if k.endswith("7.5")}, out / "trajectories.png")


def print_linearity(pipe, args, out: Path) -> None:
    print("\n| colour | background | drawn | midpoint of two | mean of 16 | 1.5 z1 - 0.5 z2 |")
    print("|---|---|---|---|---|---|")
    for row in colour_linearity(pipe.vae):
        cells = [f"{row[k][0]}/{row[k][1]}" for k in ("drawn", "midpoint", "mean of all", "1.5 z1 - 0.5 z2")]
        cells[2] = f"{row['mean of all'][2][0]}"
        print(f"| {row['colour']} | {row['background']} | " + " | ".join(cells) + " |", flush=True)


@torch.no_grad()
def stiffness(pipe, prompt: str, seed: int, guidance: float, steps: int = 25, iterations: int = 12) -> list[dict]:
    """Along Euler's trajectory (sigma space, x = x_0 + sigma eps): per step, the largest eigenvalue of d eps / dx
    (power iteration on finite differences) times the step h = sigma_next - sigma. An explicit multistep method
    of order k stays stable only while |h lambda| on the negative real axis is below 2 (Euler), 1 (order 2),
    6/11 (order 3), 3/10 (order 4, LMS's and PLMS's). Along that direction v also: how the unconditional,
    conditional and guided denoisers D = x - sigma eps follow it (g = v . dD/dx v; 1: follows the picture,
    0: ignores it), and the checker's colour of x0-hat -/+ v (scaled to 3/8 of x0-hat's norm), decoded."""
    scheduler = make_scheduler("euler", pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    side = pipe.unet.config.sample_size
    factor = pipe.vae.config.scaling_factor
    x = torch.randn((1, 4, side, side), generator=torch.Generator().manual_seed(seed)) * scheduler.init_noise_sigma
    states = torch.cat([prompt_states(pipe, [""]), prompt_states(pipe, [prompt])])
    rows = []
    for i, t in enumerate(scheduler.timesteps):
        sigma, sigma_next = float(scheduler.sigmas[i]), float(scheduler.sigmas[i + 1])

        def eps_parts(latents, _t=t, _sigma=sigma):
            x_in = latents / (_sigma**2 + 1) ** 0.5
            uncond, text = pipe.unet(torch.cat([x_in, x_in]), _t, states).sample.chunk(2)
            return uncond, text, uncond + guidance * (text - uncond)

        parts = eps_parts(x)
        v = torch.randn(x.shape, generator=torch.Generator().manual_seed(i))
        v /= v.norm()
        step = 1e-3 * max(sigma, 1.0)
        for _ in range(iterations):
            jv = (eps_parts(x + step * v)[2] - parts[2]) / step
            v = jv / jv.norm()
        moved = eps_parts(x + step * v)
        slopes = [float(((after - before) / step * v).sum()) for after, before in zip(moved, parts)]
        x0_hat = x - sigma * parts[2]
        offset = 3 / 8 * x0_hat.norm() * v
        pictures = uint8_pictures(pipe.vae.decode(torch.cat([x0_hat - offset, x0_hat + offset]) / factor).sample)
        rows.append({"step": i, "t": int(t), "sigma": sigma, "lambda": slopes[2],
                     "h_lambda": (sigma_next - sigma) * slopes[2],
                     "g": [1 - sigma * slope for slope in slopes],  # unconditional, conditional, guided
                     "colours": [inspect(p)["colour"] for p in pictures]})
        x = scheduler.step(parts[2], t, x).prev_sample
    return rows


def print_stiffness(pipe, args, out: Path) -> None:
    scales = (1.0, 3.0, 7.5)
    runs = [stiffness(pipe, args.prompt, args.seed, s) for s in scales]
    print("\n| step | t | sigma | " + " | ".join(f"h lambda, s = {s}" for s in scales)
          + " | s = 7.5: g uncond / cond / guided | x0-hat -/+ v |")
    print("|---|---|---|---|---|---|---|---|")
    for rows in zip(*runs):
        guided = rows[-1]
        print(f"| {rows[0]['step']} | {rows[0]['t']} | {rows[0]['sigma']:.2f} | "
              + " | ".join(f"{r['h_lambda']:+.2f}" for r in rows)
              + f" | {' / '.join(f'{g:+.2f}' for g in guided['g'])} | {' / '.join(map(str, guided['colours']))} |",
              flush=True)


def print_separation(pipe, args, out: Path) -> None:
    distances = colour_separation(pipe.vae)
    ranked = sorted(distances.items(), key=lambda item: item[1])
    print("\ncolour pairs, latent distance on the shape (RMS per element), nearest first: "
          + ", ".join(f"{a}-{b} {d:.2f}" for (a, b), d in ranked[:6])
          + f"; median over all {len(ranked)} pairs {np.median(list(distances.values())):.2f}", flush=True)


def print_accuracy(rows) -> None:
    print("\n| scheduler | guidance | colour right | shape right | both right | background right | pictures |")
    print("|---|---|---|---|---|---|---|")
    for name, table in rows:
        for scale, row in table.items():
            print(f"| {name} | {scale} | {row['colour']:.1%} | {row['shape']:.1%} | {row['both']:.1%} | "
                  f"{row['background']:.1%} | {row['n']} |", flush=True)


def print_flips(pipe, args, out: Path) -> None:
    counts = flips_against_failures(pipe, args.seeds)
    print("\n| DDIM's x0-hat after step 5 | LMS right | LMS wrong |\n|---|---|---|")
    for flipped, label in ((True, "names another colour at some step"), (False, "keeps the prompt's colour")):
        print(f"| {label} | {counts[(flipped, True)]} | {counts[(flipped, False)]} |", flush=True)


SECTIONS = {
    "eps": print_eps_error,
    "trajectories": print_trajectories,
    "linearity": print_linearity,
    "schedulers": lambda pipe, args, out: print_accuracy(scheduler_accuracy(pipe, args.seeds)),
    "lms": lambda pipe, args, out: print_accuracy(lms_variants(pipe, args.seeds)),
    "flips": print_flips,
    "stiffness": print_stiffness,
    "separation": print_separation,
}


if __name__ == "__main__":
    main()
