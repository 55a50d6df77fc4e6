"""The noise schedule: alpha_cumprod (and sigma, scaled) against t, visited t's and the current one; for the flow
family (SD3, FLUX.1) sigma before and after the shift (flow_schedule.py)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive

from ...engine.flow_schedule import shifted, unshifted_sigmas
from ...engine.noise_scale import sigma_of
from ...render.readouts import grid_points_visited, visited_timesteps
from ...run.session import Shown
from .block_plot import BLOCKS, BlockPlot

ABAR, SIGMA, NOW = "#4fd6e8", "#ffd83d", "#ff3b3b"


def thinned(count: int, points: int) -> list[int]:
    """About `points` evenly spaced indices into `count` values, the first and the last included.

    A half-block plot has one column per cell: the 1000 training timesteps need not all be drawn.
    """
    if count <= points:
        return list(range(count))
    step = (count - 1) / (points - 1)
    return sorted({round(i * step) for i in range(points)})


class SchedulePanel(Vertical):
    shown: reactive[Shown | None] = reactive(None, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._plotted: Shown | None = None
        self._curves: tuple = ()  # (alphas_cumprod, points, ts, abar, sigma / sigma_max) of the last draw

    def compose(self) -> ComposeResult:
        yield BlockPlot(id="schedule-plot")

    def on_resize(self) -> None:
        self._plotted = None  # more or fewer columns: thin the curves again
        self.watch_shown(self.shown)

    def curves(self, abar: tuple[float, ...]) -> tuple[list[int], list[float], list[float]]:
        """(t, alpha_cumprod, sigma / sigma_max), four points per column of the plot."""
        points = max(4 * self.size.width, 64)
        if not self._curves or self._curves[0] is not abar or self._curves[1] != points:
            ts = thinned(len(abar), points)
            sigma_max = sigma_of(abar[-1])
            self._curves = (abar, points, ts, [abar[t] for t in ts], [sigma_of(abar[t]) / sigma_max for t in ts])
        return self._curves[2:]

    def watch_shown(self, shown: Shown | None) -> None:
        if shown is None or not shown.view.alphas_cumprod or shown.draws_like(self._plotted):
            return
        self._plotted = shown
        view, record = shown.view, shown.record
        if view.family == "flow" and view.schedule_shift is not None:
            self.draw_flow(view, record)
            return
        abar = view.alphas_cumprod
        ts, abar_points, sigma_points = self.curves(abar)
        plot = self.query_one("#schedule-plot", BlockPlot)
        plot.clear()
        plot.plot(ts, abar_points, line_style=ABAR, hires_mode=BLOCKS)
        plot.plot(ts, sigma_points, line_style=SIGMA, hires_mode=BLOCKS)
        visited = visited_timesteps(view.records[: (record.index + 1) if record else 0])
        if visited:
            plot.scatter(visited, [abar[int(round(t))] for t in visited], marker="●", marker_style="white")
        t_now = record.timestep if record else (view.grid[0] if view.grid else None)
        if t_now is not None:
            plot.add_v_line(t_now, NOW)
        plot.set_ranges((0, len(abar) - 1), (0.0, 1.0))
        self.border_title = f"[{ABAR}]alpha_cumprod[/], [{SIGMA}]sigma/{sigma_of(abar[-1]):.1f}[/] vs t"
        self.border_subtitle = f"[{NOW}]t now[/] · {grid_points_visited(view.grid, visited)}/{len(view.grid)} visited"

    def draw_flow(self, view, record) -> None:
        """sigma against the linear schedule u = t / 1000 it is made from: the diagonal without the shift, the
        curve s u / (1 + (s - 1) u) with it (SD3 s = 3: more of the steps spent at high noise); the steps taken
        at their sigma, and the step looked at."""
        s, n = view.schedule_shift, len(view.alphas_cumprod)
        points = max(4 * self.size.width, 64)
        ts = thinned(n, points)
        plot = self.query_one("#schedule-plot", BlockPlot)
        plot.clear()
        plot.plot(ts, [t / n for t in ts], line_style=ABAR, hires_mode=BLOCKS)
        plot.plot(ts, [shifted(t / n, s) for t in ts], line_style=SIGMA, hires_mode=BLOCKS)
        taken = view.records[: (record.index + 1) if record else 0]
        if taken:
            sigmas = [r.sigma for r in taken]
            plot.scatter([u * n for u in unshifted_sigmas(sigmas, s, None)], sigmas, marker="●", marker_style="white")
        sigma_now = record.sigma if record else (view.records[0].sigma if view.records else None)
        if sigma_now is not None:
            plot.add_v_line(unshifted_sigmas([sigma_now], s, None)[0] * n, NOW)
        plot.set_ranges((0, n - 1), (0.0, 1.0))
        self.border_title = f"[{ABAR}]sigma, no shift[/], [{SIGMA}]sigma, shift {s:.3g}[/] vs 1000 sigma before shift"
        self.border_subtitle = f"[{NOW}]step now[/] · {len(taken)}/{view.total_steps} taken"
