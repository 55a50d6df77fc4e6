"""`stepviz serve --shared`: ten browser tabs (websocket clients) on one engine process; each tab's own
process is a relay without torch; killing one tab's process leaves the others stepping."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
from pathlib import Path

import pytest

from test_serve_guard import start_server, stop

aiohttp = pytest.importorskip("aiohttp")

TABS = 10


class Tab:
    """One browser tab: a websocket to the server and the text its terminal received."""

    def __init__(self, ws):
        self.ws, self.text = ws, ""

    async def wait_for(self, pattern: str, seconds: float = 120) -> bool:
        """True once the terminal showed `pattern`; False if it did not within `seconds` or the tab closed."""
        try:
            return await asyncio.wait_for(self._read_until(pattern), seconds)
        except TimeoutError:
            return False

    async def _read_until(self, pattern: str) -> bool:
        while not re.search(pattern, self.text):
            message = await self.ws.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                self.text += message.data.decode("utf-8", "ignore")
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return False
        return True

    async def press(self, key: str) -> None:
        await self.ws.send_str(f'["stdin", "{key}"]')


def relay_processes(group: int) -> dict[int, str]:
    """pid -> /proc/pid/maps of every tab relay process (python -m stepviz.tui.shared_client) in a process group."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            in_group = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) == group
            if in_group and command[1:3] == [b"-m", b"stepviz.tui.shared_client"]:
                found[int(proc.name)] = (proc / "maps").read_text()
        except (OSError, IndexError, ValueError):
            continue
    return found


async def class_of_ten(port: int, group: int) -> None:
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(f"http://127.0.0.1:{port}/ws") for _ in range(TABS)]
        tabs = [Tab(ws) for ws in sockets]
        for tab in tabs:
            await tab.ws.send_str('["resize", {"width": 120, "height": 40}]')
        ready = await asyncio.gather(*(tab.wait_for("take a step") for tab in tabs))
        assert all(ready)  # the run is ready
        for tab in tabs:
            await tab.press(" ")
        assert all(await asyncio.gather(*(tab.wait_for(r"step 1/3") for tab in tabs)))

        relays = relay_processes(group)
        assert len(relays) == TABS
        assert not any("torch" in maps for maps in relays.values())  # no torch library in a tab's process
        os.kill(next(iter(relays)), signal.SIGKILL)
        await asyncio.sleep(1)
        assert len(relay_processes(group)) == TABS - 1

        for tab in tabs:
            if not tab.ws.closed:
                await tab.press(" ")
        stepped = await asyncio.gather(*(tab.wait_for(r"step 2/3", 60) for tab in tabs))
        assert sum(stepped) == TABS - 1  # every tab but the killed one took its second step
        for ws in sockets:
            await asyncio.wait_for(ws.close(), 10)


def test_ten_tabs_share_one_engine_and_one_killed_tab_leaves_the_others_stepping():
    process, port, printed = start_server("--shared")
    output: list[str] = []  # read on, or a full pipe would stop the server at its next log line
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()
    try:
        assert "one shared engine" in printed
        asyncio.run(class_of_ten(port, process.pid))
    finally:
        stop(process)


def test_a_tab_process_imports_no_torch(tmp_path):
    """The relay alone: its sys.modules after running has neither torch nor textual."""
    import subprocess
    import sys

    script = ("import sys; from stepviz.tui import shared_client; code = shared_client.main(['" + str(tmp_path / "no")
              + "']); print(code, 'torch' in sys.modules, 'textual' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["2", "False", "False"]
    assert "the shared engine at" in result.stderr and "does not answer" in result.stderr


async def test_a_shared_session_says_in_its_help_how_far_it_is_from_a_solo_run(tiny_pipe):
    from test_tui import SIZE, help_text_as_drawn, make_app, settle

    from stepviz.run.shared_engine import TOLERANCE, SharedEngine
    from stepviz.tui.app import StepvizApp
    from stepviz.tui.screens.help import HelpScreen

    with SharedEngine(tiny_pipe) as engine:
        other = engine.stepper(prompt="a blue square", num_inference_steps=3, height=32, width=32)
        settings = make_app(tiny_pipe).session.settings
        app = StepvizApp(settings, graphics="halfcell", engine=engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("space")
            await settle(pilot)
            assert app.session.steppers["main"].engine is engine and len(app.session.steppers["main"].records) == 1
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            drawn = help_text_as_drawn(app.screen)
            assert f"batched with 1 other sessions: final latents within {TOLERANCE['toy']:.1e} of a solo run" in drawn
            assert "--solo for bit-exact" in drawn
        del other
