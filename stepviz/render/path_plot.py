"""path.png: how straight each run's path is and how big its steps are, every run of a lesson on one slide.

    top     d_t: x_t's distance from the straight line between the run's start noise and its final latents
            (engine/path_geometry.py), per step
    bottom  the step size: how much of the noise's weight in x_t one step removes. A flow run's x_t holds
            sigma eps (the step size is sigma - sigma_next); a VP run's holds sqrt(1 - abar) eps, the same
            number for a sigma-family run on the VP scale (sigma / sqrt(1 + sigma^2)).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from .plots import SLIDE, STEP_LABEL, PlotSize, _finish, _save


def noise_weight(sigma: float, family: str) -> float:
    """The weight of eps in x_t (on the VP scale for the VP and sigma families): sigma for a flow run,
    sqrt(1 - abar) = sigma / sqrt(1 + sigma^2) for the others."""
    return sigma if family == "flow" else sigma / (1.0 + sigma * sigma) ** 0.5


def step_sizes(records) -> list[float]:
    """The noise weight each step removes."""
    return [noise_weight(r.sigma, r.family) - noise_weight(r.sigma_next, r.family) for r in records]


def path_figure(runs: list[tuple[str, list, list[float]]], path: Path, size: PlotSize = SLIDE) -> Path:
    """path.png: see build_path_figure."""
    with matplotlib.rc_context(size.style()):
        return _save(build_path_figure(runs, size), path, size)


def build_path_figure(runs: list[tuple[str, list, list[float]]], size: PlotSize = SLIDE) -> Figure:
    """runs: (label, records, d_t per step) for each run, the main run first (drawn thicker)."""
    figure = Figure(figsize=size.inches, dpi=size.dpi)
    top, bottom = figure.subplots(2, 1, sharex=True)
    for n, (label, records, distances) in enumerate(runs):
        if not records:
            continue
        steps = [r.index + 1 for r in records]
        family = "flow" if records[0].family == "flow" else f"{records[0].family}, {records[0].scheduler}"
        style = dict(color=f"C{n}", linewidth=2.4 if n == 0 else 1.6, markersize=4)
        top.plot(steps, distances, "o-", label=f"{label} ({family})", **style)
        bottom.plot(steps, step_sizes(records), "o-", **style)
    top.set_ylabel("distance from\nthe line")
    top.set_title("How straight is the path? |x_t − the line x_T → x_0| / |x_0 − x_T|")
    top.set_ylim(bottom=0)
    top.legend()
    bottom.set_ylabel("step size")
    bottom.set_title("Step size: the noise weight one step removes (flow: σ − σ_next; VP: of √(1 − ᾱ))")
    bottom.set_xlabel(STEP_LABEL)
    bottom.set_ylim(bottom=0)
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    return _finish(figure)
