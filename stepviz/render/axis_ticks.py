"""Axis ticks that read well on a grid of cells (a terminal plot's rows or columns): round values (1, 2, 2.5 or 5
times a power of ten), the same number of cells apart, labelled with the same number of decimals.

A terminal plot places a value in whole cells, so ticks at round values land 2 or 3 rows apart unless the axis's
limits are chosen with them: `cell_ticks` picks the step and the limits together. Pure arithmetic: no Textual.
"""

from __future__ import annotations

import math
from typing import NamedTuple

NICE = (1.0, 2.0, 2.5, 5.0)


class CellTicks(NamedTuple):
    low: float  # the axis's limits to set: the first cell's low edge ...
    high: float  # ... and the last cell's high edge
    values: tuple[float, ...]  # the ticks, each in the middle of its cell, `apart` cells from the next
    labels: tuple[str, ...]
    apart: int


def decimals(step: float) -> int:
    """How many decimals label multiples of `step` exactly (0.25 -> 2, 5 -> 0, 0.1 -> 1)."""
    for places in range(0, 10):
        if abs(round(step, places) - step) <= step * 1e-6:
            return places
    return 10


def tick_labels(values, step: float) -> tuple[str, ...]:
    places = decimals(step)
    return tuple(f"{0.0 if abs(v) < step * 1e-6 else v:.{places}f}" for v in values)


def nice_steps(span: float):
    """Round steps from well under `span` upwards."""
    power = math.floor(math.log10(span)) - 3
    while True:
        for nice in NICE:
            yield nice * 10.0 ** power
        power += 1


def cell_ticks(low: float, high: float, cells: int, label_cells=lambda label: 1, most: int = 6,
               cover: bool = False, whole: bool = False) -> CellTicks | None:
    """Ticks for data in [low, high] on an axis of `cells` cells, counted from the low end (a plot's columns left
    to right, or its rows bottom to top), with every tick's label fitting before the next tick.

    The ticks are multiples of one round step (a whole number if `whole`: steps 1..N), `apart` whole cells
    apart, 2 to `most` of them; `cover` extends the axis to the multiples of the step around the data (a value
    axis reads from a round number), else the ticks are the multiples inside the data's range (steps 1..N: no
    tick at 0). `label_cells(label)`: the cells a label needs before the next tick (its width plus a space
    across, 1 up a column of rows). Whole cells per step leave some cells past the data: of the first few
    steps that fit, the smallest that leaves at most a fifth of the axis empty, else the one that leaves least.
    None when `cells` is too few for two ticks.
    """
    if not (math.isfinite(low) and math.isfinite(high)) or cells < 2:
        return None
    if high - low <= 1e-12 * max(1.0, abs(low)):
        pad = abs(low) * 0.1
        low, high = (low - pad, high + pad) if pad else (low, low + 1.0)
    fitting: list[tuple[float, CellTicks]] = []
    for step in nice_steps(high - low):
        if step > 10 * (high - low) or len(fitting) == 3:
            break
        if whole and step != round(step):
            continue
        first, last = low, high
        if cover:
            first, last = math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step
        lowest, highest = math.ceil(first / step - 1e-9), math.floor(last / step + 1e-9)
        if not 2 <= highest - lowest + 1 <= most:
            continue
        apart = math.floor((cells - (1 if cover else 2)) * step / (last - first) + 1e-9)
        values = tuple(k * step for k in range(lowest, highest + 1))
        labels = tick_labels(values, step)
        if apart >= 1 and all(label_cells(label) <= apart for label in labels):
            # every tick in the middle of its cell (on a cell's edge, rounding put some a cell early), the
            # data's low end in the first or second cell
            before = math.ceil((values[0] - first) * apart / step - 1e-9)
            axis_low = values[0] - (before + 0.5) * step / apart
            span = cells * step / apart
            fitting.append((1 - (high - low) / span, CellTicks(axis_low, axis_low + span, values, labels, apart)))
    if not fitting:
        return None
    return next((ticks for empty, ticks in fitting if empty <= 0.2), min(fitting)[1])
