"""The classroom screen: notes shown whole, the compare grid (fork and lesson runs), the look-back status,
the input picture, the key bar at 80 columns, quitting during a step."""

from __future__ import annotations

import time

import pytest
import torch
from tiny import scene_image

from stepviz.run.settings import CompareBranch, Event

pytest.importorskip("textual")

from test_tui import HeldUNet, main_screen, make_app, settle  # noqa: E402

from stepviz.tui.screens.compare import CompareScreen  # noqa: E402
from stepviz.tui.jobs import SetScheduler  # noqa: E402
from stepviz.tui.screens.main import MainScreen  # noqa: E402
from stepviz.tui.screens.notes_history import NotesHistory  # noqa: E402
from stepviz.tui.widgets.key_bar import Key, key_rows  # noqa: E402
from stepviz.tui.widgets.notes_panel import NotesPanel  # noqa: E402

SIZE = (120, 40)
LONG_NOTE = ("Before the first step: x_t is pure Gaussian noise. Each step will: (1) duplicate x_t for the two "
             "prompts, (2) scale it for the scheduler, (3) ask the UNet for the noise in it, once without and once "
             "with the prompt, (4) combine the two with the guidance scale, (5) let the scheduler remove a little "
             "of that noise. Press space to take step 1.")


@pytest.fixture
def pipe(tiny_pipe):
    yield tiny_pipe
    tiny_pipe.unet.__dict__.pop("forward", None)


def status(app) -> str:
    return str(main_screen(app).query_one("#status").render())


async def steps(pilot, count: int) -> None:
    for _ in range(count):
        await pilot.press("space")
        await settle(pilot)


async def test_a_long_note_scrolls_at_80x24_and_app_messages_do_not_replace_it(pipe):
    app = make_app(pipe, events=[Event(at_step=0, note=LONG_NOTE, pause=True)])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = main_screen(app).query_one(NotesPanel)
        assert panel.current.startswith(LONG_NOTE)
        # ~430 characters at 78 columns: 5 rows at 80x24, the rest scrolls (the pictures and plots keep theirs)
        assert panel.size.height == 5 and panel.virtual_size.height > panel.size.height
        await pilot.press("v")  # an app message: a notification and the history, not the panel
        await settle(pilot)
        assert panel.current.startswith(LONG_NOTE)
        assert "preview: approx" in panel.lines
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, NotesHistory)
        assert any(kind == "note" and LONG_NOTE in text for kind, text in app.screen.history)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_f_forks_at_the_step_looked_at(pipe):
    app = make_app(pipe, steps=6)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await steps(pilot, 4)
        await pilot.press("left", "left")  # looking at step 2
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        main, fork = app.session.steppers["main"], app.session.steppers["fork"]
        assert len(main.records) == 4 and len(fork.records) == 2  # the run keeps its steps; the fork is at 2
        assert [column.steps_taken for column in app.screen.views] == [4, 2]
        assert "fork from step 2" in str(app.screen.query_one("#branch-1 .branch-title").render())
        # lockstep: both columns show step 2; space steps the fork only (the run has step 3 already)
        assert "step 2/6" in str(app.screen.query_one("#branch-0 .branch-status").render())
        await pilot.press("space")
        await settle(pilot)
        assert len(main.records) == 4 and len(fork.records) == 3
        assert torch.equal(main.records[2].latents, fork.records[2].latents)  # same settings: same bits
        assert "step 3/6" in str(app.screen.query_one("#branch-0 .branch-status").render())
        assert "looking back" in str(app.screen.query_one("#branch-0 .branch-status").render())


async def test_forking_a_finished_run_at_its_end_asks_for_an_earlier_step(pipe):
    app = make_app(pipe, steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await steps(pilot, 3)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert "fork" not in app.session.steppers
        assert any("earlier step" in n.message for n in app._notifications)


async def test_the_compare_view_shows_and_answers_only_its_keys(pipe):
    app = make_app(pipe, steps=6)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await steps(pilot, 1)
        await pilot.press("f")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        keys = str(screen.query_one("#compare-keys").render())
        for shown in ("space", "tab", "esc", "back", "? help", "q quit"):
            assert shown in keys
        for absent in ("rewind", "←→", "export", "fork"):
            assert absent not in keys  # only keys that work here
        assert screen.selected == 1  # the fork is picked: g and s change it
        await pilot.press("tab")
        assert screen.selected == 0 and "pick A" in str(screen.query_one("#compare-keys").render())
        await pilot.press("tab", "g")
        await pilot.pause()
        app.screen.query_one("Input").value = "2"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        main, fork = app.session.steppers["main"], app.session.steppers["fork"]
        assert main.records[-1].guidance_scale == 7.5 and fork.records[-1].guidance_scale == 2.0
        await pilot.press("left", "b", "x")  # not compare keys: nothing happens
        await settle(pilot)
        assert len(main.records) == 2 and isinstance(app.screen, CompareScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert main_screen(app).views["main"].steps_taken == 2  # the main panels caught up
        assert "step 2/6" in status(app)


async def test_a_lessons_compare_runs_play_beside_it(pipe):
    compare = [CompareBranch("guidance 1", {"guidance_scale": 1.0}), CompareBranch("guidance 15",
                                                                                   {"guidance_scale": 15.0})]
    app = make_app(pipe, steps=5, compare=compare, events=[Event(at_step=3, note="Step three.")])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "c cmp" in str(main_screen(app).query_one("#keys").render())
        await steps(pilot, 2)
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [str(screen.query_one(f"#branch-{i} .branch-title").render()) for i in range(3)][1:] == \
            ["B: guidance 1", "C: guidance 15"]
        assert [v.steps_taken for v in screen.views] == [2, 2, 2]  # brought to the run's step
        await pilot.press("space")
        await settle(pilot)
        steppers = [app.session.steppers[b] for b in ("main", "compare-1", "compare-2")]
        assert [len(s.records) for s in steppers] == [3, 3, 3]
        assert [s.records[-1].guidance_scale for s in steppers] == [7.5, 1.0, 15.0]
        assert "Step three." in main_screen(app).query_one(NotesPanel).current  # the lesson's events go on
        assert screen.query_one("#compare-notes").display


async def test_seven_compare_runs_open_in_a_grid_that_keeps_their_pictures(pipe):
    """A lesson's run and 7 [[compare]] runs (the most a lesson may have): columns A-H, three to a row, each
    with room for its pictures, the grid scrolling to the run tab picks."""
    compare = [CompareBranch(f"guidance {n}", {"guidance_scale": float(n)}) for n in range(1, 8)]
    app = make_app(pipe, steps=3, compare=compare)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert str(screen.query_one("#branch-7 .branch-title").render()) == "H: guidance 7"
        await pilot.press("space")
        await settle(pilot)
        assert [len(app.session.steppers[b].records) for b in screen.branches] == [1] * 8
        assert all(screen.query_one(f"#previews-{n}").size.height >= 5 for n in range(8))
        grid = screen.query_one("#branches")
        assert grid.max_scroll_y > 0 and grid.scroll_y == 0
        for _ in range(7):
            await pilot.press("tab")
        await settle(pilot)
        assert screen.selected == 7 and grid.scroll_y > 0


async def test_looking_back_shows_the_scheduler_that_ran_that_step(pipe):
    app = make_app(pipe, steps=6)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await steps(pilot, 3)
        main_screen(app).run_edit(SetScheduler("dpmpp_2m", "main"))
        await settle(pilot)
        await steps(pilot, 3)
        assert "dpmpp_2m (vp, order 2, history 2/2)" in status(app)
        await pilot.press("left", "left", "left", "left")  # step 2 ran on DDIM
        await settle(pilot)
        assert "ddim (vp, order 1) · step 2/6" in status(app)
        assert "dpmpp_2m" not in status(app)


async def test_img2img_shows_its_input_picture(pipe):
    app = make_app(pipe, mode="img2img", image=scene_image(), strength=0.6)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        given = main_screen(app).query_one("#given-input")
        assert given.display and given.query_one(".picture--image").image is not None
        caption = str(main_screen(app).query_one("#x_t .picture--caption").render())
        assert "input noised" in caption  # as much as fits over the picture (120x40: three of 18 columns)
        assert not main_screen(app).query_one("#given-mask").display


async def test_q_during_a_held_step_leaves_at_once(pipe):
    app = make_app(pipe, steps=20)
    with HeldUNet(pipe) as held:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("space")
            await held.until_inside(pilot)
            await pilot.press("q")
            asked = time.monotonic()
        left = time.monotonic() - asked
        assert not held.gate.is_set()  # the step is still held: the app did not wait for it
    assert left < 2.0


def test_run_app_abandons_a_step_still_computing(monkeypatch):
    """After the window closes, a worker thread still computing (a step, a VAE decode) is not waited for,
    even when it does not hold the session's lock."""
    import threading

    from stepviz.run.session import RunSession
    from stepviz.tui import app as app_module

    gate = threading.Event()
    worker = threading.Thread(target=gate.wait, args=(10,))
    worker.start()
    exits = []
    monkeypatch.setattr(app_module.os, "_exit", exits.append)
    try:
        assert app_module.engine_threads_running()
        app_module.leave_without_waiting_for_the_engine(RunSession(None), 0)
        assert exits == [0]
    finally:
        gate.set()
        worker.join()


def test_the_key_bar_keeps_every_key_at_80_columns():
    from stepviz.tui.screens.main import MAIN_KEYS

    keys = [Key(*row) for row in MAIN_KEYS]
    text = key_rows(keys, 80).plain
    assert all(len(row) <= 80 for row in text.split("\n")) and len(text.split("\n")) <= 2
    for key in keys:
        assert f"{key.key} {key.short}" in text
    assert len(key_rows(keys, 200).plain.split("\n")) == 1
