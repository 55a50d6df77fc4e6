"""A textual-plot PlotWidget drawn in half blocks, without pan, zoom or focus (the keys are the app's)."""

from __future__ import annotations

from textual_plot import HiResMode, PlotWidget

BLOCKS = HiResMode.HALFBLOCK  # solid enough for a projector; braille lines are too faint


class BlockPlot(PlotWidget, can_focus=False):
    DEFAULT_CSS = "BlockPlot { height: 1fr; min-height: 3; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, allow_pan_and_zoom=False)

    def on_mount(self) -> None:
        self.margin_top, self.margin_bottom, self.margin_left = 0, 1, 7

    def on_resize(self) -> None:
        # a short plot keeps its rows for data and drops the x tick labels
        self.margin_bottom = 0 if self.size.height < 7 else 1
        # the canvases get their new size in this layout pass: draw again once it is done (else a plot that
        # grew or shrank while a note arrived kept the old size's drawing)
        self.call_after_refresh(self.refresh, layout=True)
