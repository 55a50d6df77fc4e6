"""Guidance anatomy: the two branches' norms, their difference, the combined prediction, their cosine."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from ..readouts import GUIDANCE_ROWS, guidance_series, guidance_text
from ..session import Shown
from .block_plot import BLOCKS, BlockPlot

COLOURS = {name: colour for name, _, colour in GUIDANCE_ROWS}


class GuidancePanel(Vertical):
    shown: reactive[Shown | None] = reactive(None, always_update=True)

    def compose(self) -> ComposeResult:
        yield Static(guidance_text(None), id="guidance-numbers")
        yield BlockPlot(id="guidance-plot")

    def on_mount(self) -> None:
        self.border_title = "guidance anatomy (norms over the steps)"

    def on_resize(self) -> None:
        self.watch_shown(self.shown)

    def watch_shown(self, shown: Shown | None) -> None:
        record = None if shown is None else shown.record
        self.query_one("#guidance-numbers", Static).update(guidance_text(record, self.content_size.width))
        plot = self.query_one("#guidance-plot", BlockPlot)
        plot.clear()
        if shown is None or not shown.view.records:
            return
        for name, (steps, values) in guidance_series(shown.view.records).items():
            plot.plot(steps, values, line_style=COLOURS[name], hires_mode=BLOCKS)
        if record is not None:
            plot.add_v_line(record.index + 1, "grey50")
        plot.set_xlimits(0.5, max(shown.view.total_steps, 2) + 0.5)
