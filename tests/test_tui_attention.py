"""The attention screen (`a`): a token's map and its share on the foreground, token keys, the zoom grid."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("textual")

from test_tui import main_screen, make_app, settle  # noqa: E402

from stepviz.run.settings import Event  # noqa: E402
from stepviz.tui.screens.attention import AttentionScreen  # noqa: E402
from stepviz.tui.widgets.attention_panel import AttentionGrid, AttentionPanel  # noqa: E402

SIZE = (120, 40)


def static_text(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


def test_attention_screen_picks_tokens_and_zooms(tiny_pipe):
    async def scenario():
        # an event after the first step: a new view with as many records as the one before it
        app = make_app(tiny_pipe, steps=4, events=[Event(at_step=1, set_guidance_scale=3.0)])
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("a")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, AttentionScreen)
            assert "take a step" in static_text(screen, "#attention-tokens")
            for _ in range(2):
                await pilot.press("space")
                await settle(pilot)
            await asyncio.sleep(0.4)  # the screen polls for the new step
            await settle(pilot)
            tokens = static_text(screen, "#attention-tokens")
            assert "1:<start>" in tokens and "3:red" in tokens
            numbers = static_text(screen, "#attention-numbers")
            assert numbers.startswith("'a': ") and "outside" in numbers
            await pilot.press("3")
            await settle(pilot)
            assert static_text(screen, "#attention-numbers").startswith("'red': ")
            await pilot.press("down")
            await settle(pilot)
            assert static_text(screen, "#attention-numbers").startswith("'circle': ")
            record = app.session.steppers["main"].records[1]
            shown = screen.query_one("#attention-map").query_one(".picture--image").image
            assert shown is not None and record.cross_attention is not None
            await pilot.press("z")
            await settle(pilot)
            grid = screen.query_one(AttentionGrid)
            assert grid.display and not screen.query_one(AttentionPanel).display
            count = len(record.cross_attention)
            captions = [str(c.query_one(".picture--caption").render()) for c in grid.children if c.display]
            assert len(captions) == count and captions[2].startswith("red ")
            await pilot.press("u")
            await settle(pilot)
            await pilot.press("left")  # look back: the maps of the first step
            await settle(pilot)
            await asyncio.sleep(0.4)
            await settle(pilot)
            assert main_screen(app).index == 0 and "step 1/" in static_text(screen, "#attention-status")
            await pilot.press("escape")
            await settle(pilot)
            assert app.screen is main_screen(app)

    asyncio.run(scenario())


def test_attention_screen_needs_only_its_run_window(tiny_pipe):
    """Opened in a bare app with no main screen, over a session: it draws the step looked at, asks the window
    for steps and looks, and closes, touching nothing else of the run."""
    from textual.app import App

    from stepviz.run.session import MAIN, RunSession, Shown
    from stepviz.run.settings import RunSettings
    from stepviz.tui.screens.attention import RunWindow

    session = RunSession(RunSettings(model="tiny", steps=3, height=32, width=32, scheduler="ddim"), tiny_pipe)
    session.load()
    session.step()
    asked, looked = [], {"index": None}

    def look(delta: int) -> None:
        asked.append(("look", delta))
        looked["index"] = -1 if delta < 0 else None

    window = RunWindow(shown=lambda: Shown(session.view(MAIN), looked["index"]),
                       step=lambda: asked.append(("step",)), look=look, pipe=session.pipe)

    async def scenario():
        app = App()
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(AttentionScreen(window))
            await settle(pilot)
            screen = app.screen
            assert static_text(screen, "#attention-numbers").startswith("'a': ")
            await pilot.press("space")
            await pilot.press("left")
            await settle(pilot)
            assert asked == [("step",), ("look", -1)]
            assert "take a step" in static_text(screen, "#attention-tokens")  # index -1: the start, no maps
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, AttentionScreen)

    asyncio.run(scenario())


def test_the_attention_screen_shows_the_lessons_note_and_follows_it(tiny_pipe):
    async def scenario():
        app = make_app(tiny_pipe, steps=4, events=[Event(at_step=0, note="Press a, then step."),
                                                   Event(at_step=2, note="Look at the word 'circle' now.")])
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("a")
            await settle(pilot)
            await asyncio.sleep(0.3)
            screen = app.screen
            assert isinstance(screen, AttentionScreen)
            assert "Press a, then step." in static_text(screen, "#attention-note")
            for _ in range(2):
                await pilot.press("space")
                await settle(pilot)
            await asyncio.sleep(0.5)
            await pilot.pause()
            assert "Look at the word 'circle' now." in static_text(screen, "#attention-note")

    asyncio.run(scenario())
