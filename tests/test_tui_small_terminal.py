"""Every dialog and screen read at 80x24: its text and its way out (cancel, close, back, quit) drawn whole.

The screen is read as the terminal shows it (every layer composited), not widget by widget: a label that ran
past the dialog's edge was cut there although the widget held the whole text.
"""

from __future__ import annotations

import io

import pytest

pytest.importorskip("textual")

from rich.console import Console  # noqa: E402
from textual.screen import ModalScreen  # noqa: E402

from stepviz.tui.screens.attention import AttentionScreen  # noqa: E402
from stepviz.tui.screens.compare import CompareScreen  # noqa: E402
from stepviz.tui.screens.guidance_dialog import GuidanceDialog  # noqa: E402
from stepviz.tui.screens.help import HelpScreen  # noqa: E402
from stepviz.tui.screens.notes_history import NotesHistory  # noqa: E402
from stepviz.tui.screens.scheduler_picker import SchedulerPicker  # noqa: E402
from stepviz.tui.screens.start_failed import StartFailed  # noqa: E402
from test_tui import make_app, settle  # noqa: E402

SMALL = (80, 24)
LOAD_ERROR = ("could not load the weights in /home/teacher/models/sd15: Error while deserializing header: "
              "HeaderTooLarge (the file is not a safetensors file)")


def screen_text(app) -> str:
    """The whole terminal as plain text, as drawn: the screen on top over the ones below it."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, force_terminal=True,
                      legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def drawn(app, words: str) -> bool:
    """True when `words` are on screen, perhaps wrapped over lines, inside the top screen's own box (a dialog's
    region: the screen below shows beside it)."""
    box = app.screen.children[0].region if isinstance(app.screen, ModalScreen) else app.screen.region
    lines = screen_text(app).splitlines()[box.y:box.bottom]
    inside = [line[box.x:box.right].strip(" │┃█▌▐▊▎") for line in lines]
    return words in " ".join(" ".join(inside).split())


@pytest.mark.parametrize("keys, screen, words", [
    (["g"], GuidanceDialog, ["from the next step on", "enter to apply, escape to cancel"]),
    (["s"], SchedulerPicker, ["(family: vp or sigma latent space; * = now)", "deis", "escape to cancel"]),
    (["question_mark"], HelpScreen, ["stepviz: keys", "escape to close"]),
    (["n"], NotesHistory, ["every note so far", "escape to close"]),
    (["space", "space", "left", "f"], CompareScreen, ["fork from step 1", "esc back", "q quit"]),
    (["space", "a"], AttentionScreen, ["token", "esc back", "? help", "q quit"]),
])
async def test_each_dialog_is_readable_whole_at_80x24(tiny_pipe, keys, screen, words):
    app = make_app(tiny_pipe)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        assert isinstance(app.screen, screen)
        for text in words:
            assert drawn(app, text), f"{text!r} not drawn whole at 80x24:\n{screen_text(app)}"


async def test_the_start_failed_screen_is_readable_whole_at_80x24(tiny_pipe):
    app = make_app(tiny_pipe)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.push_screen(StartFailed("could not load the model", LOAD_ERROR))
        await settle(pilot)
        for text in ("The run could not start: could not load the model", LOAD_ERROR, "Quit (q)"):
            assert drawn(app, text), f"{text!r} not drawn whole at 80x24:\n{screen_text(app)}"


async def test_the_status_line_keeps_the_viewed_step_whole_at_80x24(tiny_pipe):
    app = make_app(tiny_pipe, steps=8)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        for key in ("space", "space", "space", "left", "left"):
            await pilot.press(key)
            await settle(pilot)
        for text in ("ddim (vp, order 1) · step 1/8", "guidance 7.5 · looking back (3 taken)"):
            assert drawn(app, text), f"{text!r} not drawn whole at 80x24:\n{screen_text(app)}"


async def test_a_notification_covers_neither_the_note_nor_the_status_at_80x24(tiny_pipe):
    from textual.widgets._toast import Toast, ToastRack

    app = make_app(tiny_pipe)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await settle(pilot)
        app.notify("the model is still loading: step 1 follows once it is", title="Wait")
        for _ in range(5):
            await pilot.pause()
        toast = app.screen.get_child_by_type(ToastRack).query_one(Toast).region
        for panel in ("#notes", "#status"):
            assert not toast.overlaps(app.screen.query_one(panel).region), panel


async def test_img2img_captions_fit_their_pictures_at_80x24(tiny_pipe):
    from tiny import scene_image

    app = make_app(tiny_pipe, mode="img2img", image=scene_image(), strength=0.75)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert drawn(app, "x_start x0-hat input"), screen_text(app)  # three pictures, 11 columns
        await pilot.press("space")
        await settle(pilot)
        assert drawn(app, "x_t step 1 x0-hat input"), screen_text(app)
