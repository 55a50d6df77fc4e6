"""Guidance anatomy: the two branches' norms, their difference, the combined prediction, their cosine."""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from ...render.readouts import GUIDANCE_ROWS, guidance_series, guidance_text
from ...run.session import Shown
from .block_plot import BLOCKS, BlockPlot

COLOURS = {name: colour for name, _, colour in GUIDANCE_ROWS}
PLOT_ROWS = 5  # two ticks a row apart inside the frame, and the frame


class GuidancePanel(Vertical):
    shown: reactive[Shown | None] = reactive(None, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._numbers = guidance_text(None)
        self._plotted: Shown | None = None  # what the plot shows now (it is costly to redraw)

    def compose(self) -> ComposeResult:
        yield Static(self._numbers, id="guidance-numbers")
        yield BlockPlot(id="guidance-plot")

    def on_mount(self) -> None:
        self.border_title = "guidance anatomy: rms vs step"  # the plot's axes (the numbers say L2 and rms)

    def on_resize(self) -> None:
        self._show_numbers(self.shown)
        self._fit_plot()

    def _fit_plot(self) -> None:
        """The plot where it has rows for two ticks (at 80x24 the numbers take the panel: a one-row plot
        showed a line and no values)."""
        rows = self.content_size.height - (self._numbers.count("\n") + 1)
        self.query_one("#guidance-plot", BlockPlot).display = rows >= PLOT_ROWS

    def watch_shown(self, shown: Shown | None) -> None:
        self._show_numbers(shown)
        if shown is not None and shown.draws_like(self._plotted):
            return
        self._plotted = shown
        plot = self.query_one("#guidance-plot", BlockPlot)
        plot.clear()
        if shown is None or not shown.view.records:
            return
        highest = 0.0
        for name, (steps, values) in guidance_series(shown.view.records).items():
            plot.plot(steps, values, line_style=COLOURS[name], hires_mode=BLOCKS)
            highest = max([highest, *(v for v in values if math.isfinite(v))])  # a NaN step stays plottable
        if shown.record is not None:
            plot.add_v_line(shown.record.index + 1, "grey50")
        plot.set_ranges((1, max(shown.view.total_steps, 2)), (0.0, highest), whole_x=True)  # rms: read from 0

    def _show_numbers(self, shown: Shown | None) -> None:
        numbers = guidance_text(None if shown is None else shown.record, self.content_size.width)
        if numbers != self._numbers:  # an update costs a layout of the screen
            self._numbers = numbers
            self.query_one("#guidance-numbers", Static).update(numbers)
            self._fit_plot()
