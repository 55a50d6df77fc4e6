"""Leaving the TUI: `q` from every screen and dialog, and kill -INT / -TERM end it with the terminal restored
(alternate screen and mouse reporting off). A real pty and a real process for the signals."""

from __future__ import annotations

import os
import signal

import pytest
from test_tui import settle
from test_tui_start import ESCAPES, read_until, start_tui
from tiny import tiny_pipeline

from stepviz.run.settings import RunSettings
from stepviz.tui.app import StepvizApp

LEAVE_ALTERNATE_SCREEN, MOUSE_OFF = b"\x1b[?1049l", b"\x1b[?1000l"


@pytest.mark.parametrize("opens", ["s", "question_mark", "n", "a"])
async def test_q_quits_from_every_dialog_and_screen(opens):
    """(The guidance dialog's text field takes q as a character: escape closes it, then q quits.)"""
    settings = RunSettings(model="tiny", steps=3, height=32, width=32, seed=1, scheduler="ddim")
    app = StepvizApp(settings, pipe=tiny_pipeline(), graphics="halfcell")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        screens = len(app.screen_stack)
        await pilot.press(opens)
        await settle(pilot)
        assert len(app.screen_stack) == screens + 1 or opens == "a", app.screen_stack
        await pilot.press("q")
        await settle(pilot)
        assert app._exit, f"q did not quit from {type(app.screen).__name__}"


@pytest.mark.parametrize("number, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_tui_with_the_terminal_restored(tiny_model_dir, number, code):
    master, process = start_tui(tiny_model_dir, 30, 100)
    try:
        before = read_until(master, process, lambda raw: b"space" in ESCAPES.sub(b"", raw), 90)
        assert process.poll() is None, before.decode(errors="replace")
        process.send_signal(number)
        after = read_until(master, process, lambda raw: process.poll() is not None, 30)
        assert process.wait(10) == code
        assert LEAVE_ALTERNATE_SCREEN in after and MOUSE_OFF in after, after[-300:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        os.close(master)
