"""Lessons in the TUI: opened at a chosen step, and played by themselves at a pace."""

from __future__ import annotations

import asyncio

import pytest

from stepviz.run.settings import Event, RunSettings

pytest.importorskip("textual")

from test_tui import settle  # noqa: E402

from stepviz.tui.app import StepvizApp  # noqa: E402
from stepviz.tui.screens.main import MainScreen  # noqa: E402
from stepviz.tui.widgets.notes_panel import NotesPanel  # noqa: E402

SIZE = (120, 40)
EVENTS = [Event(at_step=0, note="First note."), Event(at_step=2, set_guidance_scale=2.0, note="Second note."),
          Event(at_step=4, note="Third note.", pause=True)]


def make_app(pipe, **overrides) -> StepvizApp:
    settings = RunSettings(model="tiny", steps=6, height=32, width=32, events=list(EVENTS), **overrides)
    return StepvizApp(settings, pipe=pipe, graphics="halfcell")


def notes(app) -> str:
    screen = next(s for s in app.screen_stack if isinstance(s, MainScreen))
    return "\n".join(screen.query_one(NotesPanel).lines)


async def test_start_at_a_step_applies_the_events_before_it(tiny_pipe):
    app = make_app(tiny_pipe, start_at=3)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        stepper = app.session.steppers["main"]
        assert len(stepper.records) == 3
        assert stepper.guidance_scale == 2.0  # the event at step 2 was applied on the way
        text = notes(app)
        assert "started at step 3" in text and "First note." in text and "Second note." in text
        assert "Third note." not in text
        await pilot.press("space")
        await settle(pilot)
        assert len(stepper.records) == 4 and "Third note." in notes(app)


async def test_auto_play_holds_at_each_note_then_goes_on(tiny_pipe):
    app = make_app(tiny_pipe, auto_pace=1.0)
    async with app.run_test(size=SIZE):
        stepper = None
        seen = []
        for _ in range(600):  # up to ~30 s on a busy machine
            await asyncio.sleep(0.05)
            stepper = app.session.steppers.get("main")
            if stepper is not None:
                seen.append(len(stepper.records))
                if stepper.done:
                    break
        assert stepper is not None and stepper.done  # nobody pressed a key
        assert {0, 2, 4} <= set(seen)  # it stood at each note for a while
        assert "Third note." in notes(app)


async def test_pausing_stops_a_lesson_that_plays_itself(tiny_pipe):
    app = make_app(tiny_pipe, auto_pace=0.3)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(600):  # the run is loaded (waiting for every worker would let it play on meanwhile)
            if "main" in app.session.steppers:
                break
            await asyncio.sleep(0.05)
        await pilot.pause()
        await pilot.press("p")  # holding at a note (or playing towards the next) counts as playing: p pauses
        await asyncio.sleep(0.2)
        await pilot.pause()
        taken = len(app.session.steppers["main"].records)
        await asyncio.sleep(1.0)
        await pilot.pause()
        assert len(app.session.steppers["main"].records) == taken < 6
        await pilot.press("p")  # and p plays on
        for _ in range(200):
            await asyncio.sleep(0.05)
            if len(app.session.steppers["main"].records) > taken:
                break
        assert len(app.session.steppers["main"].records) > taken


def current_note(app) -> str:
    screen = next(s for s in app.screen_stack if isinstance(s, MainScreen))
    return screen.query_one(NotesPanel).current


async def test_the_note_shown_belongs_to_the_step_shown(tiny_pipe):
    """Looking back or rewinding shows the note of that step; stepping on again brings the later note back."""
    app = make_app(tiny_pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(3):
            await pilot.press("space")
            await settle(pilot)
        assert current_note(app).startswith("Second note.")
        await pilot.press("left", "left")  # step 1
        await settle(pilot)
        assert current_note(app).startswith("First note.")
        await pilot.press("right")  # step 2: the second note came there
        await settle(pilot)
        assert current_note(app).startswith("Second note.")
        await pilot.press("left", "b")  # rewind to step 1
        await settle(pilot)
        assert len(app.session.steppers["main"].records) == 1 and current_note(app).startswith("First note.")
        await pilot.press("space")
        await settle(pilot)
        assert current_note(app).startswith("Second note.")
