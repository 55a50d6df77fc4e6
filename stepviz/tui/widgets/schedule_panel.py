"""The noise schedule: alpha_cumprod (and sigma, scaled) against t, visited t's and the current one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive

from ..readouts import visited_timesteps
from ..session import Shown
from .block_plot import BLOCKS, BlockPlot


ABAR, SIGMA, NOW = "#4fd6e8", "#ffd83d", "#ff3b3b"


def sigma_of(abar: float) -> float:
    return ((1.0 - abar) / abar) ** 0.5


class SchedulePanel(Vertical):
    shown: reactive[Shown | None] = reactive(None, always_update=True)

    def compose(self) -> ComposeResult:
        yield BlockPlot(id="schedule-plot")

    def watch_shown(self, shown: Shown | None) -> None:
        if shown is None or not shown.view.alphas_cumprod:
            return
        view, record = shown.view, shown.record
        abar = view.alphas_cumprod
        ts = list(range(len(abar)))
        sigma_max = sigma_of(abar[-1])
        plot = self.query_one("#schedule-plot", BlockPlot)
        plot.clear()
        plot.plot(ts, abar, line_style=ABAR, hires_mode=BLOCKS)
        plot.plot(ts, [sigma_of(a) / sigma_max for a in abar], line_style=SIGMA, hires_mode=BLOCKS)
        visited = visited_timesteps(view.records[: (record.index + 1) if record else 0])
        if visited:
            plot.scatter(visited, [abar[int(round(t))] for t in visited], marker="●", marker_style="white")
        t_now = record.timestep if record else (view.grid[0] if view.grid else None)
        if t_now is not None:
            plot.add_v_line(t_now, NOW)
        plot.set_xlimits(0, len(abar) - 1)
        plot.set_ylimits(0, 1.05)
        caption = (f"[{ABAR}]alpha_cumprod[/] [{SIGMA}]sigma/{sigma_max:.1f}[/] vs t, "
                   f"[{NOW}]t now[/], {len(visited)}/{len(view.grid)} visited")
        self.border_title = caption
