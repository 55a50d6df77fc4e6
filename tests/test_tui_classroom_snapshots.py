"""Snapshots of the classroom screen at 80x24 and 160x50: a lesson note (whole at 160x50; at 80x24 up to 5 rows,
then it scrolls, so the pictures and plots keep their rows), a lesson's compare grid,
the look-back status after a scheduler swap, img2img with its input picture (tiny model, fixed seed).

Update after an intended change with `pytest tests/test_tui_classroom_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest
from test_tui import settle
from tiny import scene_image, tiny_pipeline

from stepviz.run.settings import CompareBranch, Event, RunSettings

pytest.importorskip("pytest_textual_snapshot")

from stepviz.tui.app import StepvizApp  # noqa: E402
from stepviz.tui.jobs import SetScheduler  # noqa: E402
from stepviz.tui.screens.main import MainScreen  # noqa: E402

SIZES = [(80, 24), (160, 50)]
NOTE = ("Before the first step: x_t is pure Gaussian noise (x_T ~ N(0, I)). Each step will: (1) duplicate x_t for "
        "the two prompts, (2) scale it for the scheduler, (3) ask the UNet for the noise in it, once without and "
        "once with the prompt, (4) combine the two with the guidance scale, (5) let the scheduler remove a little "
        "of that noise. Press space to take step 1.")


def app_for(**overrides) -> StepvizApp:
    settings = RunSettings(model="tiny", steps=8, height=32, width=32, seed=42, **{"scheduler": "ddim", **overrides})
    return StepvizApp(settings, pipe=tiny_pipeline(), graphics="halfcell")


async def drawn(pilot, tries: int = 40, agreeing: int = 3) -> None:
    """Wait until `agreeing` screenshots in a row, each after the app went idle and 50 ms more, are the same.
    A plot redraws its ticks after the refresh that gave it its size (call_after_refresh), and a screen under
    a dialog is not redrawn: a key that opens one must come after that frame, or the snapshot depends on the
    machine's speed (a fixed 0.2 s wait, then two agreeing screenshots, were not enough on loaded runs)."""
    last, same = None, 0
    for _ in range(tries):
        await pilot.pause()
        await pilot.pause(0.05)
        shot = pilot.app.export_screenshot()
        same = same + 1 if shot == last else 1
        if same >= agreeing:
            return
        last = shot


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await settle(pilot)
        await drawn(pilot)
        await pilot.press(key)
    await settle(pilot)
    pilot.app.clear_notifications()  # toasts time out: what they said is in the notes history
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_a_lesson_note_shown_whole(snap_compare, size):
    app = app_for(title="Anatomy", events=[Event(at_step=0, note=NOTE, pause=True)])
    assert snap_compare(app, terminal_size=size, run_before=lambda pilot: press(pilot))


@pytest.mark.parametrize("size", SIZES)
def test_the_compare_grid_of_a_lesson(snap_compare, size):
    compare = [CompareBranch("guidance 1", {"guidance_scale": 1.0}), CompareBranch("guidance 15",
                                                                                   {"guidance_scale": 15.0})]
    app = app_for(title="Guidance", compare=compare)
    assert snap_compare(app, terminal_size=size, run_before=lambda pilot: press(pilot, "space", "space", "c",
                                                                                  "space"))


async def swap_then_look_back(pilot) -> None:
    await press(pilot, "space", "space", "space")
    screen = next(s for s in pilot.app.screen_stack if isinstance(s, MainScreen))
    screen.run_edit(SetScheduler("dpmpp_2m", "main"))
    await press(pilot, "space", "space", "space", "left", "left", "left", "left")


@pytest.mark.parametrize("size", SIZES)
def test_the_look_back_status_after_a_scheduler_swap(snap_compare, size):
    assert snap_compare(app_for(), terminal_size=size, run_before=swap_then_look_back)


@pytest.mark.parametrize("size", SIZES)
def test_img2img_with_its_input_picture(snap_compare, size):
    app = app_for(mode="img2img", image=scene_image(), strength=0.75)
    assert snap_compare(app, terminal_size=size, run_before=lambda pilot: press(pilot, "space"))


@pytest.mark.parametrize("keys", [("g",), ("s",), ("question_mark",), ("space", "a")],
                         ids=["guidance", "scheduler", "help", "attention"])
def test_a_dialog_at_80x24_keeps_its_way_out(snap_compare, keys):
    assert snap_compare(app_for(), terminal_size=(80, 24), run_before=lambda pilot: press(pilot, *keys))
