"""Every picture an export writes reads on a slide: shown as large as a 16:9 slide (1920x1080) allows, each
label it draws is at least 18 px tall, measured by rendering the label's font at its size (top of "H" to the
bottom of "g"). schedule.png and norms.png (matplotlib) are measured in test_plots_for_a_room.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from stepviz.export.run_export import export_run
from stepviz.export.seed_grid import Cell, counts, grid_image
from stepviz.run.lesson_file import load_lesson

SLIDE = (1920, 1080)
SMALLEST = 18  # px on the slide


DRAW_TEXT = ImageDraw.ImageDraw.text


def ink_height(font) -> int:
    """Rows of ink of "Hg" rendered in `font` at its size."""
    scratch = Image.new("L", (400, 300), 0)
    DRAW_TEXT(ImageDraw.Draw(scratch), (10, 10), "Hg", fill=255, font=font)
    rows = np.flatnonzero(np.asarray(scratch).max(axis=1) > 127)
    return int(rows[-1] - rows[0] + 1)


def slide_scale(size: tuple[int, int]) -> float:
    """How much a picture is scaled to be shown whole, as large as possible, on the slide."""
    return min(SLIDE[0] / size[0], SLIDE[1] / size[1])


@pytest.fixture
def drawn(monkeypatch):
    """(picture size, text, its height on the slide) for every label drawn while the test runs."""
    found = []

    def text(self, xy, words, *args, font=None, **kwargs):
        if str(words).strip():
            size = self._image.size
            found.append((size, str(words), ink_height(font) * slide_scale(size)))
        return DRAW_TEXT(self, xy, words, *args, font=font, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", text)
    return found


def lesson(name: str, model) -> object:
    return load_lesson(name).with_overrides(model=str(model), steps=25, height=32, width=32)


def assert_readable(drawn, folder):
    small = [(size, words, round(height, 1)) for size, words, height in drawn if height < SMALLEST]
    assert not small, small[:5]
    drawn_sizes = {size for size, _, _ in drawn}
    # plots measured elsewhere (test_plots_for_a_room.py); inputs as given
    unlabelled = {"schedule.png", "norms.png", "path.png", "input.png", "mask.png"}
    for name in json.loads((folder / "manifest.json").read_text())["files"]:
        if name.endswith(".png") and name not in unlabelled:
            with Image.open(folder / name) as picture:
                assert picture.size in drawn_sizes, f"{name}: no label measured on it"


def test_a_lesson_export_with_inputs_mask_blend_and_compared_runs(drawn, tiny_model_dir, tmp_path):
    from stepviz.models import load_pipeline

    out = tmp_path / "out"
    export_run(lesson("inpaint-blend", tiny_model_dir), out, kind="approx", pipe=load_pipeline(str(tiny_model_dir)))
    assert {"strip.png", "sheet.png", "blend.png", "compare.png"} <= set(json.loads(
        (out / "manifest.json").read_text())["files"])
    assert_readable(drawn, out)


def test_an_export_with_attention_maps(drawn, tiny_model_dir, tmp_path):
    from stepviz.models import load_pipeline
    from stepviz.run.settings import RunSettings

    out = tmp_path / "out"
    settings = RunSettings(model=str(tiny_model_dir), steps=25, height=32, width=32,
                           prompt="a red circle on a black background next to a small blue square")
    export_run(settings, out, kind="approx", pipe=load_pipeline(str(tiny_model_dir)), attention_steps=[1, 5, 10, 15,
                                                                                                         20, 25])
    with Image.open(out / "attention.png") as picture:
        assert picture.size == SLIDE
    assert_readable(drawn, out)


def test_the_seed_grid(drawn):
    seeds, scales = list(range(16)), (1.0, 3.0, 7.5, 15.0)
    right = {"colour_ok": True, "shape_ok": False, "background_ok": True}
    cells = [Cell(seed, scale, Image.new("RGB", (64, 64), (30, 30, 200)), {}, right) for seed in seeds
             for scale in scales]
    grid_image(cells, seeds, scales, "'a blue square on a white background', 25 steps", counts(cells, scales))
    assert drawn and all(height >= SMALLEST for _, _, height in drawn), min(drawn, key=lambda d: d[2])


def test_the_measure_fails_a_small_label(drawn):
    from stepviz.render.strip import label_font

    picture = Image.new("RGB", (1246, 2208))  # the old attention.png: a slide shows it at 49%
    ImageDraw.Draw(picture).text((0, 0), "on shape 42%", font=label_font(22))
    assert drawn[-1][2] < SMALLEST
