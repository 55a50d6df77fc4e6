"""Matplotlib figures of a run: the noise schedule and the guidance norms, per step.

Pure functions from StepRecords to PNG files or binary file objects. Figures are built with matplotlib's
object API (`Figure`, no pyplot), so nothing here picks or switches the process's matplotlib backend.
Steps are numbered from 1 as everywhere in stepviz (step k: after k steps, the record at index k - 1).
Edits (guidance or scheduler changes) are marked with a dashed line at the step they applied;
`viewed` (the notebook's timeline: a record index) marks the step looked at with a red line.
Ticks: whole steps at round multiples (1, 2, 5, 10...), every label of an axis with the same decimals.
Two sizes: SCREEN for the notebook's panels, SLIDE for exports (1920x1080, every text at least 18 px tall,
so a projected slide reads from the back of the room).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..engine.prediction import prediction_for
from .readouts import NORM_ROWS, angle_degrees
from .strip import change_label

STEP_LABEL = "step (numbered from 1, as on screen)"


@dataclass(frozen=True)
class PlotSize:
    inches: tuple[float, float]
    dpi: int
    font_points: float  # tick labels; titles and axis labels a little larger, legends and notes a little smaller

    def style(self) -> dict:
        base = self.font_points
        return {"font.size": base, "axes.titlesize": base * 1.15, "axes.labelsize": base * 1.05,
                "xtick.labelsize": base, "ytick.labelsize": base, "legend.fontsize": base * 0.9}


SCREEN = PlotSize((7, 5.2), 100, 8)
SLIDE = PlotSize((12.8, 7.2), 150, 10)  # 1920x1080 px; the smallest text (0.9 x 10 pt) is 18.75 px


def norm_fields(prediction_type: str = "epsilon") -> tuple[tuple[str, str], ...]:
    """(record field, label) per plotted norm, in the symbol of what the UNet predicts (ε, v or x₀)."""
    p = prediction_for(prediction_type).pretty
    return tuple((field, label.format(p=p)) for field, _, label, _ in NORM_ROWS)


def _mark_changes(axis, records) -> None:
    """A dashed line, labelled as the strips label it (change_label), wherever guidance or scheduler changed."""
    for index in range(1, len(records)):
        text = change_label(records, index)
        if not text:
            continue
        families = (records[index - 1].family, records[index].family)
        if families == ("vp", "sigma"):  # the swap rescales the latents: say why std(x_t) jumps there
            text += "  (x_t × √(σ²+1): the sigma family's scale)"
        elif families == ("sigma", "vp"):
            text += "  (x_t ÷ √(σ²+1): the VP family's scale)"
        step = records[index].index + 1  # numbered from 1, as on screen
        axis.axvline(step, color="0.4", linestyle="--", linewidth=1)
        axis.annotate(text, (step, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                      textcoords="offset points", fontsize="medium", color="0.25")


def _mark_viewed(axis, viewed: int | None) -> None:
    if viewed is not None:
        axis.axvline(viewed + 1, color="red", linewidth=1.2, alpha=0.7)


def _finish(figure) -> Figure:
    """Whole steps on every x axis, at round multiples; laid out for saving."""
    for axis in figure.axes:
        axis.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 5, 10], integer=True))
        if axis.dataLim.width == 0:  # one step so far: a step either side, not matplotlib's +-0.05
            axis.set_xlim(axis.dataLim.x0 - 1, axis.dataLim.x0 + 1)
    figure.tight_layout()
    return figure


def _save(figure, path, size: PlotSize):
    """Write the figure as PNG to a path (returned as a Path) or to a binary file object."""
    path = path if hasattr(path, "write") else Path(path)
    figure.savefig(path, dpi=size.dpi)
    return path


def schedule_figure(records, path: Path, branches: dict[str, list] | None = None, viewed: int | None = None,
                    size: PlotSize = SCREEN) -> Path:
    """schedule.png: see build_schedule_figure."""
    with matplotlib.rc_context(size.style()):
        return _save(build_schedule_figure(records, branches, viewed, size), path, size)


def build_flow_schedule_figure(records, branches: dict[str, list] | None = None, viewed: int | None = None,
                               size: PlotSize = SCREEN) -> Figure:
    """The flow family's schedule per step: sigma with the run's shift and without it (the even schedule it
    was made from: sigma = s u / (1 + (s - 1) u)), and 1 - sigma, the picture's share of x_t. Other runs
    (compare branches, a fork) as thinner lines labelled with their shift; a VP/sigma run at the flow sigma of
    the same x0 : eps mix, sigma / (1 + sigma) (engine/noise_scale.py)."""
    from ..engine.flow_schedule import unshifted_sigmas

    figure = Figure(figsize=size.inches, dpi=size.dpi)
    top, bottom = figure.subplots(2, 1, sharex=True)
    steps = [r.index + 1 for r in records]
    sigmas = [r.sigma for r in records]
    first = records[0]
    ours, width = ("this run, ", 2.4) if branches else ("", None)
    top.plot(steps, sigmas, "o-", color="C0", linewidth=width, label=f"{ours}σ, {_flow_shift(first)}")
    top.plot(steps, unshifted_sigmas(sigmas, first.shift, first.mu), "o--", color="C1",
             label=f"{ours}σ without the shift")
    bottom.plot(steps, [r.alpha_cumprod for r in records], "o-", color="C0", linewidth=width)
    for n, (label, other) in enumerate((branches or {}).items(), start=2):
        if not other:
            continue
        other_steps, other_sigmas = [r.index + 1 for r in other], [_as_flow_sigma(r) for r in other]
        # open markers of their own shape: a run on the same schedule as another stays visible under it
        style = dict(color=f"C{n}", linewidth=1.6, marker="s^Dv"[(n - 2) % 4], markersize=7, fillstyle="none")
        top.plot(other_steps, other_sigmas, label=_branch_label(label, other[0]), **style)
        bottom.plot(other_steps, [1.0 - sigma for sigma in other_sigmas], **style)
    top.set_ylabel("σ  (noise share)")
    top.set_ylim(-0.02, 1.02)
    top.set_title("Flow schedule: x_t = (1 − σ) x0 + σ ε; the shift keeps σ high for more of the steps")
    return _finish_schedule(figure, top, bottom, "1 − σ  (picture's share)", records, viewed)


def _flow_shift(record) -> str:
    return f"shift {record.shift:g}" if record.shift is not None else f"mu {record.mu:.3g} (s = e^mu)"


def _as_flow_sigma(record) -> float:
    from ..engine.noise_scale import flow_sigma_of

    return record.sigma if record.family == "flow" else flow_sigma_of(record.sigma)


def _branch_label(label: str, record) -> str:
    """A compared run's legend entry: its label, and its schedule where the label does not say it."""
    if record.family != "flow":
        return f"{label} ({record.family}: σ/(1+σ), the same x0 : ε mix)"
    shift = _flow_shift(record)
    return label if shift in label else f"{label} ({shift})"


def norms_figure(records, path: Path, viewed: int | None = None, size: PlotSize = SCREEN) -> Path:
    """norms.png: see build_norms_figure."""
    with matplotlib.rc_context(size.style()):
        return _save(build_norms_figure(records, viewed, size), path, size)


def build_schedule_figure(records, branches: dict[str, list] | None = None, viewed: int | None = None,
                          size: PlotSize = SCREEN) -> Figure:
    """sigma_t (log scale) and abar_t per step; other runs (compare branches) as thin lines. A flow run
    (SD3, FLUX.1): build_flow_schedule_figure."""
    if records and records[0].family == "flow":
        return build_flow_schedule_figure(records, branches, viewed, size)
    figure = Figure(figsize=size.inches, dpi=size.dpi)
    top, bottom = figure.subplots(2, 1, sharex=True)
    steps = [r.index + 1 for r in records]
    top.plot(steps, [max(r.sigma, 1e-4) for r in records], "o-", label="this run", color="C0")
    bottom.plot(steps, [r.alpha_cumprod for r in records], "o-", color="C0")
    for n, (label, other) in enumerate((branches or {}).items(), start=1):
        top.plot([r.index + 1 for r in other], [max(r.sigma, 1e-4) for r in other], "-", linewidth=1,
                 color=f"C{n}", label=label)
        bottom.plot([r.index + 1 for r in other], [r.alpha_cumprod for r in other], "-", linewidth=1,
                    color=f"C{n}")
    top.set_yscale("log")
    top.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0.1, 1, 10: not 10^-1
    top.set_ylabel("σ_t  (noise level)")
    top.set_title("Noise schedule: σ_t = √((1 − ᾱ_t) / ᾱ_t) at each step's timestep")
    return _finish_schedule(figure, top, bottom, "ᾱ_t  (signal kept)", records, viewed)


def _finish_schedule(figure: Figure, top, bottom, signal_label: str, records, viewed: int | None) -> Figure:
    """The schedule figure's lower axis labelled with the signal's share, both axes gridded and marked with
    the run's edits and the step viewed."""
    bottom.set_ylabel(signal_label)
    bottom.set_xlabel(STEP_LABEL)
    bottom.set_ylim(-0.02, 1.02)
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
        _mark_changes(axis, records)
        _mark_viewed(axis, viewed)
    top.legend()
    return _finish(figure)


def build_norms_figure(records, viewed: int | None = None, size: PlotSize = SCREEN) -> Figure:
    """The two predictions' norms (eps, v or x0; L2, and RMS on the right), the guidance direction, the latents'
    spread and the angle between the two predictions."""
    figure = Figure(figsize=size.inches, dpi=size.dpi)
    top, bottom = figure.subplots(2, 1, sharex=True)
    steps = [r.index + 1 for r in records]
    prediction_type = records[0].prediction_type if records else "epsilon"
    p = prediction_for(prediction_type).pretty
    for field, label in norm_fields(prediction_type):
        top.plot(steps, [getattr(r, field) for r in records], "o-", markersize=3, label=label)
    top.set_ylabel("L2 norm (all latent elements)")
    if records:  # the same curves read as per-element RMS = L2 / sqrt(n), the TUI's scale
        root_n = records[0].noise_pred_uncond.numel() ** 0.5
        rms_axis = top.secondary_yaxis("right", functions=(lambda v: v / root_n, lambda v: v * root_n))
        rms_axis.set_ylabel("RMS per element")
    top.set_title(f"Guidance: {p}̂ = {p}_uncond + s ({p}_text − {p}_uncond)\n"
                  f"(the UNet's prediction_type: {prediction_type})")
    top.legend()
    bottom.plot(steps, [r.latents_std for r in records], "s-", markersize=3, color="C5", label="std(x_t)")
    bottom.plot(steps, [r.pred_original_std for r in records], "^-", markersize=3, color="C6", label="std(x̂_0)")
    bottom.set_ylabel("std of the latents")
    angle = bottom.twinx()  # cos(uncond, text) is 0.99.. in nearly every run: the angle tells runs apart
    angle.plot(steps, [angle_degrees(r.cos_uncond_text) for r in records], "o-", markersize=3, color="C4",
               label=f"angle({p}_uncond, {p}_text)")
    angle.set_ylabel("angle in degrees", color="C4")
    angle.set_ylim(bottom=0)
    bottom.set_xlabel(STEP_LABEL)
    lines = bottom.get_lines() + angle.get_lines()
    bottom.legend(lines, [line.get_label() for line in lines])
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
        _mark_changes(axis, records)
        _mark_viewed(axis, viewed)
    return _finish(figure)
