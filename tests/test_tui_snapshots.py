"""Snapshots of the main screen (pytest-textual-snapshot): tiny model, fixed seed, halfcell pictures.

Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest
from tiny import scene_image, square_mask, tiny_pipeline

from stepviz.run.settings import RunSettings

pytest.importorskip("pytest_textual_snapshot")

from stepviz.tui.app import StepvizApp  # noqa: E402


def app_for(**overrides) -> StepvizApp:
    settings = RunSettings(model="tiny", steps=8, height=32, width=32, seed=42, **{"scheduler": "ddim", **overrides})
    return StepvizApp(settings, pipe=tiny_pipeline(), graphics="halfcell")


async def three_steps(pilot) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("space")
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def test_main_screen_txt2img(snap_compare):
    assert snap_compare(app_for(), terminal_size=(120, 40), run_before=three_steps)


def test_main_screen_inpaint(snap_compare):
    app = app_for(mode="inpaint", image=scene_image(), mask_image=square_mask(), strength=1.0)
    assert snap_compare(app, terminal_size=(120, 40), run_before=three_steps)


def test_main_screen_small_terminal(snap_compare):
    assert snap_compare(app_for(), terminal_size=(80, 24), run_before=three_steps)
