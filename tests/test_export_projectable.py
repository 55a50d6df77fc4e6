"""Exports made to be projected: measured in the written PNGs and the handout, not in the code's constants."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from stepviz.export.run_export import export_run
from stepviz.render.strip import BACKGROUND
from stepviz.run.settings import CompareBranch, Event, RunSettings


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_pipe):
    """An img2img run of 12 steps (wraps past 8 columns) with an edit, one compared run, 32 px pictures."""
    from tiny import scene_image

    settings = RunSettings(model="tiny", scheduler="ddim", mode="img2img", image=scene_image(), strength=1.0,
                           steps=12, height=32, width=32, title="Projected",
                           events=[Event(at_step=5, set_guidance_scale=2.0)],
                           compare=[CompareBranch("guidance 1", {"guidance_scale": 1.0})])
    out = tmp_path_factory.mktemp("projected") / "out"
    export_run(settings, out, kind="approx", pipe=tiny_pipe)
    return out


def runs(values: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of True."""
    padded = np.concatenate([[False], values, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def tiles(path) -> tuple[list[list[tuple[int, int, int]]], np.ndarray]:
    """The picture tiles of a picture: per band of tiles, the (x, width, height) of each; and the ink mask.

    A band is a run of at least 100 pixel rows with ink across much of the width (a line of text has little);
    within it a tile is a run of at least 100 columns with ink somewhere in the band.
    """
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    ink = np.abs(pixels - np.array(BACKGROUND)).sum(axis=2) > 12
    bands = [(y, h) for y, h in runs(ink.mean(axis=1) > 0.08) if h >= 100]
    found = []
    for y, h in bands:
        columns = ink[y:y + h].any(axis=0)
        found.append([(x, w, h) for x, w in runs(columns) if w >= 100])
    return found, ink


def text_lines(ink: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> list[int]:
    """Heights of the text lines (runs of rows with ink) in a box."""
    return [height for _, height in runs(ink[y0:y1, x0:x1].any(axis=1))]


def test_strip_tiles_are_large_wrapped_at_8_and_labels_tall(exported):
    rows, ink = tiles(exported / "strip.png")
    widths = {min(w, h) for row in rows for _, w, h in row}
    assert min(widths) >= 128  # 32 px pictures enlarged to 128 px tiles
    assert [len(row) for row in rows] == [8, 8, 4, 4]  # 12 steps wrap: x_t and x0-hat rows of 8, then of 4
    with Image.open(exported / "strip.png") as strip:
        assert strip.width <= 1300  # a slide's width, not 3,000 px
        assert np.asarray(strip.convert("RGB"))[60:, 100:].size  # opened and read
    # the header over the first tile: "step 1", "t=...", "sigma=..." each at least 18 px tall at native size
    first_x = rows[0][0][0]
    column = ink[:, first_x + 60]
    tile_top = next(y for y, w in runs(column) if w >= 128)
    heights = text_lines(ink, first_x, first_x + 120, tile_top - 4 * 28 - 6, tile_top - 2)
    assert len(heights) >= 3 and min(heights) >= 18, heights


def test_the_sheet_is_one_slide_with_input_steps_and_result(exported):
    with Image.open(exported / "sheet.png") as sheet:
        assert sheet.size == (1920, 1080)
    rows, ink = tiles(exported / "sheet.png")
    assert min(min(w, h) for row in rows for _, w, h in row) >= 128
    assert max(len(row) for row in rows) <= 8
    assert any(len(row) == 2 for row in rows)  # the input picture and the result side by side
    assert (exported / "sheet-1-guidance-1.png").is_file()  # one sheet per run


def test_compare_and_animation_are_readable(exported):
    rows, _ = tiles(exported / "compare.png")
    assert min(min(w, h) for row in rows for _, w, h in row) >= 128 and max(len(row) for row in rows) <= 8
    with Image.open(exported / "steps.webp") as animation:
        assert animation.height >= 256 + 40


def test_the_handout_loads_nothing_from_outside_and_zooms_on_click(exported):
    page = (exported / "handout.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(http" not in page and "<script" not in page
    assert page.count('class="zoom"') >= 5 and "input:checked + img" in page
    assert "max-width: 1280px" in page  # tiles shown at their own size: a 1,170 px strip is not shrunk
    assert "after step 5" in page  # events numbered as the TUI numbers steps
