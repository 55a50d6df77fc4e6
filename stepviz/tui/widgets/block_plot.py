"""A textual-plot PlotWidget drawn in half blocks, without pan, zoom or focus (the keys are the app's), with
ticks the same number of cells apart (stepviz.render.axis_ticks): textual-plot's own ticks are round values placed
in whole cells, 2 or 3 rows apart on a short plot, and a label could land beside another's tick."""

from __future__ import annotations

from textual import on
from textual_hires_canvas import Canvas  # textual-plot's canvases (its own dependency)
from textual_plot import HiResMode, PlotWidget
from textual_plot.axis_formatter import AxisFormatter

from ...render.axis_ticks import CellTicks, cell_ticks

BLOCKS = HiResMode.HALFBLOCK  # solid enough for a projector; braille lines are too faint
Y_LABEL_WIDTH = 6  # the left margin (7) less the space before the axis


class GivenLabels(AxisFormatter):
    """The ticks and labels chosen by cell_ticks (the widget asks its formatter for the labels)."""

    def __init__(self, ticks: CellTicks | None = None) -> None:
        self.ticks = ticks

    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        return list(self.ticks.values) if self.ticks else []

    def get_labels_for_ticks(self, ticks) -> list[str]:
        labels = dict(zip(self.ticks.values, self.ticks.labels)) if self.ticks else {}
        return [labels.get(tick, "") for tick in ticks]


class BlockPlot(PlotWidget, can_focus=False):
    DEFAULT_CSS = "BlockPlot { height: 1fr; min-height: 3; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, allow_pan_and_zoom=False)
        self._ranges: tuple | None = None  # ((x low, x high), (y low, y high)) of the data, set by set_ranges
        self.ticks: tuple[CellTicks | None, CellTicks | None] = (None, None)  # (x, y) as drawn now

    def on_mount(self) -> None:
        self.margin_top, self.margin_bottom, self.margin_left = 0, 1, 7
        self.set_x_formatter(GivenLabels())
        self.set_y_formatter(GivenLabels())

    def on_resize(self) -> None:
        # a short plot keeps its rows for data and drops the x tick labels
        self.margin_bottom = 0 if self.size.height < 7 else 1
        self._place_ticks()

    @on(Canvas.Resize)
    def _redraw_at_the_canvas_size(self) -> None:
        """A canvas (the plot's or a margin's) got a new size after the plot drew: draw again at that size.
        textual-plot sizes its canvases only when asked to redraw with a layout, so a margin that reached its
        width a layout pass after the plot's own resize kept an empty buffer (the tick labels missing until
        the next step), and a plot that grew while a note arrived kept the old size's drawing."""
        self.refresh(layout=True)

    def set_ranges(self, x: tuple[float, float], y: tuple[float, float], whole_x: bool = False) -> None:
        """Show data over x (steps or t: ticks inside it; `whole_x`: whole numbers only) and y (values: the axis
        reaches the round ticks around them)."""
        self._ranges = (x, y, whole_x)
        self._place_ticks()

    def _place_ticks(self) -> None:
        """The limits and ticks for this size: the plot's cells inside its frame (textual-plot's scale rectangle)."""
        if self._ranges is None or not self.size:
            return
        (x_low, x_high), (y_low, y_high), whole_x = self._ranges
        columns = self.size.width - self.margin_left - 2
        rows = self.size.height - self.margin_top - self.margin_bottom - 2
        x = cell_ticks(x_low, x_high, columns, lambda label: len(label) + 1, most=10, whole=whole_x) \
            if self.margin_bottom else None
        y = cell_ticks(y_low, y_high, rows, lambda label: (1 if rows < 7 else 2) if len(label) <= Y_LABEL_WIDTH
                       else rows, most=6, cover=True)
        for ticks, (low, high), limits, set_ticks, formatter in (
                (x, (x_low, x_high), self.set_xlimits, self.set_xticks, self._x_formatter),
                (y, (y_low, y_high), self.set_ylimits, self.set_yticks, self._y_formatter)):
            formatter.ticks = ticks
            set_ticks(list(ticks.values) if ticks else [])
            limits(*((ticks.low, ticks.high) if ticks else (low, high)))
        self.ticks = (x, y)
