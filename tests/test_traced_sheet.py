"""A lesson that traces a hand-written loop exports that loop's own slide beside the run's sheet.png."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from test_lessons_check import write_lesson

from stepviz.export.run_export import export_run
from stepviz.export.traced_sheet import traced_commands
from stepviz.run.lesson_file import load_lesson

TRACE_CLAIM = """
    [[events.expect]]
    trace = "course-loop ddim"
    first_divergence = "none"
    """


def test_the_traced_loop_gets_its_own_slide_listed_in_the_manifest(tmp_path):
    settings = load_lesson(write_lesson(tmp_path, TRACE_CLAIM))
    assert traced_commands(settings) == ["course-loop ddim"]
    out = export_run(settings, tmp_path / "out", kind="approx")
    traced = out / "sheet-traced-course-loop-ddim.png"
    assert traced.is_file()
    assert traced.name in json.loads((out / "manifest.json").read_text())["files"]
    picture, run_sheet = Image.open(traced), Image.open(out / "sheet.png")
    assert picture.size == run_sheet.size == (1920, 1080)  # one 16:9 slide each
    assert np.abs(np.asarray(picture, float) - np.asarray(run_sheet, float)).mean() > 1  # another run drawn


def test_a_lesson_without_trace_claims_writes_no_traced_slide(tmp_path):
    settings = load_lesson(write_lesson(tmp_path, ""))
    assert traced_commands(settings) == []
    out = export_run(settings, tmp_path / "out", kind="approx")
    assert not list(out.glob("sheet-traced-*"))
