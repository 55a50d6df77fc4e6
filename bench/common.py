"""Shared bits of the benchmarks: interleaved timing and the models they run on."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def interleaved(runs: dict, repeats: int, clock=time.perf_counter) -> dict[str, float]:
    """Median seconds of each callable, run A, B, A, B, ... so machine noise hits both alike.

    clock=time.process_time counts this process's CPU seconds only: steadier than wall time while other
    jobs share the cores (with one torch thread).
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            started = clock()
            fn()
            times[name].append(clock() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def timed_pair(label: str, runs: dict, repeats: int, settings: str) -> float:
    """Warm both up, time them interleaved, print `label settings a=..s b=..s ratio=..` (b / a); the ratio."""
    import torch

    (a, run_a), (b, run_b) = runs.items()
    with torch.no_grad():
        run_a(), run_b()  # warm-up
        medians = interleaved(runs, repeats)
    ratio = medians[b] / medians[a]
    print(f"{label} {settings} {a}={medians[a]:.3f}s {b}={medians[b]:.3f}s ratio={ratio:.3f}")
    return ratio


def large_random_pipeline(resolution: int = 128):
    """SD 1.x's UNet widths (320, 640, 1280, 1280) with random weights, a tiny VAE and text encoder.

    The UNet dominates the compute, as in a real checkpoint; `resolution` keeps it affordable on a CPU.
    """
    import diffusers
    import torch
    from tiny import tiny_components

    parts = tiny_components()
    torch.manual_seed(0)
    parts["unet"] = diffusers.UNet2DConditionModel(
        sample_size=resolution // 8, cross_attention_dim=16, attention_head_dim=8,
        block_out_channels=(320, 640, 1280, 1280),
    ).eval()
    pipe = diffusers.StableDiffusionPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_options(steps: int, scheduler: str = "ddim"):
    """The options every benchmark takes: model, steps, scheduler, picture size."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="toy", help="'toy', a diffusers folder, or 'large' (SD widths, random)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--scheduler", default=scheduler)
    parser.add_argument("--size", type=int, default=None, help="height = width in pixels")
    return parser


def finished_run(args):
    """(pipe, Stepper) after running args.steps steps on args.model."""
    import stepviz
    import torch

    pipe = model_pipeline(args.model)
    size = dict(height=args.size, width=args.size) if args.size else {}
    st = stepviz.Stepper(pipe, prompt="a red circle on a black background", seed=0,
                         num_inference_steps=args.steps, scheduler=args.scheduler, **size)
    with torch.no_grad():
        st.run()
    return pipe, st


def model_pipeline(name: str):
    import stepviz

    if name == "large":
        return large_random_pipeline()
    return stepviz.load_pipeline(name)
