"""Plot ticks read as the screen and the exported PNGs show them: evenly spaced, one precision per axis, whole
steps numbered from 1, every axis named."""

from __future__ import annotations

import re

import pytest

from stepviz.render.axis_ticks import cell_ticks, decimals
from stepviz.run.settings import RunSettings

pytest.importorskip("textual")

from stepviz.tui.app import StepvizApp  # noqa: E402
from stepviz.tui.widgets.guidance_panel import GuidancePanel  # noqa: E402
from stepviz.tui.widgets.schedule_panel import SchedulePanel  # noqa: E402
from test_tui import settle  # noqa: E402
from test_tui_small_terminal import screen_text  # noqa: E402

Y_TICK = re.compile(r"^ *(-?\d+(?:\.\d+)?) [┫╋┣]")  # a y label, right-aligned before its tick mark


def rows_cells(values, low, high, cells):
    """The cell each value lands in (textual-plot's mapping: cells across [low, high])."""
    return [int((v - low) / (high - low) * cells) for v in values]


@pytest.mark.parametrize("low, high, cells, cover, whole", [
    (0.0, 1.0, 4, True, False), (0.0, 1.0, 19, True, False), (0.013, 1.93, 11, True, False),
    (1, 26, 29, False, True), (1, 26, 69, False, True), (1, 8, 30, False, True), (0, 999, 29, False, False),
    (1, 20, 69, False, True), (1, 51, 69, False, True),
    (0, 999, 69, False, False), (0.0, 47.6, 7, True, False), (0.98, 0.98, 6, True, False),
])
def test_cell_ticks_are_round_evenly_spaced_and_hold_the_data(low, high, cells, cover, whole):
    ticks = cell_ticks(low, high, cells, lambda label: len(label) + 1 if not cover else 1, cover=cover,
                       whole=whole)
    assert ticks is not None and len(ticks.values) >= 2
    cell = rows_cells(ticks.values, ticks.low, ticks.high, cells)
    assert len({b - a for a, b in zip(cell, cell[1:])}) == 1 and cell[1] - cell[0] == ticks.apart
    assert 0 <= min(cell) and max(cell) < cells
    assert ticks.low <= low and high <= ticks.high  # nothing drawn outside the frame
    step = ticks.values[1] - ticks.values[0]
    assert round(step / 10 ** __import__("math").floor(__import__("math").log10(step)), 6) in (1, 2, 2.5, 5)
    assert len({len(label.split(".")[-1]) if "." in label else 0 for label in ticks.labels}) == 1
    assert not whole or all(v == int(v) and v >= 1 for v in ticks.values)


def test_too_few_cells_give_no_ticks_and_decimals_follow_the_step():
    assert cell_ticks(0.0, 1.0, 1) is None
    assert (decimals(0.25), decimals(5.0), decimals(0.1), decimals(200.0)) == (2, 0, 1, 0)


def plot_ticks(app, panel) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(row, y label) and (column, x label) as drawn inside `panel` (a region of the screen): a y label on its
    tick's row; the x ticks are the marks on the bottom frame, each label drawn across its tick's column."""
    box = app.screen.query_one(panel).content_region
    lines = [line[box.x:box.right] for line in screen_text(app).splitlines()[box.y:box.bottom]]
    ys = [(row, match.group(1)) for row, line in enumerate(lines) if (match := Y_TICK.match(line))]
    frame = max(row for row, line in enumerate(lines) if "┗" in line)
    if frame + 1 >= len(lines):
        return ys, []
    marks = [column for column, char in enumerate(lines[frame]) if char in "┳╋"]
    labels = list(re.finditer(r"\d+(?:\.\d+)?", lines[frame + 1]))
    assert len(marks) == len(labels), (lines[frame], lines[frame + 1])
    assert all(label.start() <= mark < label.end() for mark, label in zip(marks, labels))
    return ys, [(mark, label.group()) for mark, label in zip(marks, labels)]


def evenly(positions) -> bool:
    gaps = {round(b - a, 1) for a, b in zip(positions, positions[1:])}
    return len(gaps) == 1


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_the_tui_plots_ticks_are_even_and_label_one_precision(tiny_pipe, size):
    settings = RunSettings(model="tiny", steps=20, height=32, width=32, seed=42, scheduler="ddim")
    app = StepvizApp(settings, pipe=tiny_pipe, graphics="halfcell")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for _ in range(4):
            await pilot.press("space")
            await settle(pilot)
        panels = [SchedulePanel] + ([GuidancePanel] if size == (160, 50) else [])  # 80x24: numbers only
        for panel in panels:
            ys, xs = plot_ticks(app, panel)
            assert len(ys) >= 2 and evenly([row for row, _ in ys]), (panel.__name__, ys, screen_text(app))
            assert len({len(label.partition(".")[2]) for _, label in ys}) == 1, ys
            values = [float(label) for _, label in ys]
            assert evenly(values[::-1]) and values[-1] == 0, ys  # read up from 0, one step apart
            assert len(xs) >= 2 and evenly([column for column, _ in xs]), (panel.__name__, xs)
            assert evenly([float(label) for _, label in xs]), xs
        _, steps = plot_ticks(app, GuidancePanel) if size == (160, 50) else (None, [(0, "1"), (1, "2")])
        assert all(float(label).is_integer() and float(label) >= 1 for _, label in steps)  # steps: 1..N
        assert "vs t" in str(app.screen.query_one(SchedulePanel).border_title)
        assert "vs step" in str(app.screen.query_one(GuidancePanel).border_title)


def test_the_exported_figures_number_whole_steps_from_1_and_name_every_axis(tiny_pipe):
    from stepviz import Stepper
    from stepviz.render.plots import build_norms_figure, build_schedule_figure

    stepper = Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=12, height=32, width=32, seed=1)
    records = stepper.run()
    for figure in (build_schedule_figure(records, viewed=0), build_norms_figure(records, viewed=0)):
        for axis in figure.axes:
            assert axis.get_ylabel(), axis
            low, high = axis.get_xlim()
            ticks = [t for t in axis.get_xticks() if low <= t <= high]
            assert ticks[0] >= 1 and all(float(t).is_integer() for t in ticks) and evenly(ticks), ticks
            assert ticks[1] - ticks[0] in (1, 2, 5, 10)
            assert axis.get_lines()[0].get_xdata()[0] == 1  # the first step is step 1, as on screen
        assert figure.axes[1].get_xlabel().startswith("step")
