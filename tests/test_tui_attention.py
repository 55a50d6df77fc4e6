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
