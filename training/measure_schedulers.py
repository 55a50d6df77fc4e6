"""The measurements behind "Why v2 fails under LMS and PNDM" that run whole samplings: accuracy per scheduler,
LMS variants, the colour linearity of the latent space, and mid-trajectory colour flips against LMS's failures.
`python -m training.measure_eps_error` runs them (its docstring says what each measures)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from stepviz.engine.schedulers import make_scheduler
from stepviz.render.preview import uint8_pictures
from stepviz.toy.checker import inspect
from stepviz.toy.world import all_captions, draw_scene, parse_caption

from .evaluate import accuracy_table
from .extra_channels import pixels_from_uint8

ACCURACY_SCHEDULERS = ("ddim", "euler", "euler_a", "dpmpp_2m", "unipc", "lms", "pndm")


def scheduler_accuracy(pipe, seeds: int, lms_orders=(1, 2, 3, 4)) -> list[tuple[str, dict]]:
    rows = []
    for name in ACCURACY_SCHEDULERS:
        pipe.scheduler = make_scheduler(name, pipe.scheduler.config)
        rows.append((name, accuracy_table(pipe, seeds_per_prompt=seeds, previews=False)))
    for order in lms_orders:
        pipe.scheduler = make_scheduler("lms", pipe.scheduler.config)
        pipe.scheduler.step = functools.partial(pipe.scheduler.step, order=order)
        rows.append((f"lms, order {order}", accuracy_table(pipe, seeds_per_prompt=seeds, guidance_scales=(7.5,),
                                                           previews=False)))
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    return rows


def lms_variants(pipe, seeds: int, switch_steps=(9, 17)) -> list[tuple[str, dict]]:
    """LMS at other guidance scales, and with order 4 only before / only after step k (order 1, Euler, else)."""
    rows = []
    for scale in (1.0, 3.0, 5.0, 7.5):
        pipe.scheduler = make_scheduler("lms", pipe.scheduler.config)
        rows.append(("lms", accuracy_table(pipe, seeds_per_prompt=seeds, guidance_scales=(scale,), previews=False)))
    for k in switch_steps:
        for label, before, after in ((f"lms, order 4 before step {k}, then 1", 4, 1),
                                     (f"lms, order 1 before step {k}, then 4", 1, 4)):
            scheduler = make_scheduler("lms", pipe.scheduler.config)
            plain_step = scheduler.step

            def step(*args, _plain=plain_step, _scheduler=scheduler, _before=before, _after=after, _k=k, **kwargs):
                index = _scheduler.step_index or 0
                return _plain(*args, order=_before if index < _k else _after, **kwargs)

            scheduler.step = step
            pipe.scheduler = scheduler
            rows.append((label, accuracy_table(pipe, seeds_per_prompt=seeds, guidance_scales=(7.5,), previews=False)))
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    return rows


@torch.no_grad()
def colour_linearity(vae, shape: str = "square", count: int = 16) -> list[dict]:
    """Per colour and background: how often midpoints, the mean and extrapolations of same-colour latents decode
    to that colour."""
    from stepviz.toy.world import BACKGROUNDS, COLOURS

    factor = vae.config.scaling_factor
    size = vae.config.sample_size
    rows = []
    for colour in COLOURS:
        for background in BACKGROUNDS:
            images = np.stack([draw_scene(colour, shape, background, seed=19_000 + i, size=size).image
                               for i in range(count)])
            z = vae.encode(pixels_from_uint8(images)).latent_dist.mean * factor
            first, second = z[0::2], z[1::2]
            probes = {"drawn": z, "midpoint": (first + second) / 2, "mean of all": z.mean(0, keepdim=True),
                      "1.5 z1 - 0.5 z2": 1.5 * first - 0.5 * second}
            row = {"colour": colour, "background": background}
            for name, latents in probes.items():
                pictures = uint8_pictures(vae.decode(latents / factor).sample)
                named = [inspect(p)["colour"] for p in pictures]
                row[name] = (sum(n == colour for n in named), len(named), named)
            rows.append(row)
    return rows


@torch.no_grad()
def flips_against_failures(pipe, seeds: int, guidance: float = 7.5) -> dict:
    """Per evaluation picture: does DDIM's x0-hat name another colour than the prompt's at some step after the
    fifth (a mid-trajectory flip), and does LMS get colour and shape right? Counts of the four combinations."""
    from stepviz.toy.checker import check

    from .evaluate import generate, generate_recording

    prompts = [p for p in all_captions() for _ in range(seeds)]
    seed_list = [14_000 + i for _ in all_captions() for i in range(seeds)]
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    _, trail = generate_recording(pipe, prompts, seed_list, guidance)
    factor = pipe.vae.config.scaling_factor
    flipped = np.zeros(len(prompts), dtype=bool)
    for _, x0_hat in trail[5:]:
        colours = [inspect(p)["colour"] for p in uint8_pictures(pipe.vae.decode(x0_hat / factor).sample)]
        flipped |= np.array([c != parse_caption(p)[0] for c, p in zip(colours, prompts)])
    pipe.scheduler = make_scheduler("lms", pipe.scheduler.config)
    images = generate(pipe, prompts, seed_list, guidance)
    right = np.array([(r := check(i, p))["colour_ok"] and r["shape_ok"] for i, p in zip(images, prompts)])
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    return {(f, r): int(np.sum((flipped == f) & (right == r))) for f in (True, False) for r in (True, False)}


@torch.no_grad()
def colour_separation(vae, scenes: int = 6) -> dict[tuple[str, str], float]:
    """How far apart the latents of neighbouring colours are: one square drawn in every colour (same seed,
    seeds 19500.., both backgrounds), encoded and scaled; per colour pair the RMS per element of the latents'
    difference on the square's latent cells, averaged over the scenes. Below this noise level (sigma) the
    picture tells the colour apart."""
    import itertools

    from stepviz.toy.world import COLOURS

    size = vae.config.sample_size
    distances: dict[tuple[str, str], list[float]] = {}
    for seed, background in itertools.product(range(19_500, 19_500 + scenes), ("black", "white")):
        drawn = [draw_scene(colour, "square", background, seed=seed, size=size) for colour in COLOURS]
        z = vae.encode(pixels_from_uint8(np.stack([d.image for d in drawn]))).latent_dist.mean
        z = z * vae.config.scaling_factor
        cell = size // z.shape[-1]
        on_shape = torch.from_numpy(drawn[0].mask.reshape(z.shape[-1], cell, z.shape[-1], cell).mean(axis=(1, 3)) > 0.5)
        for a, b in itertools.combinations(range(len(COLOURS)), 2):
            key = (list(COLOURS)[a], list(COLOURS)[b])
            distances.setdefault(key, []).append(float((z[a] - z[b])[:, on_shape].pow(2).mean().sqrt()))
    return {key: float(np.mean(values)) for key, values in distances.items()}
