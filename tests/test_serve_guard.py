"""`stepviz serve` talks only to its own page: Origin and Host checked, a token beyond loopback, a session
limit with a clear page, and nothing loaded from outside. Real servers in subprocesses (the point here)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

aiohttp = pytest.importorskip("aiohttp")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(*options) -> tuple[subprocess.Popen, int, str]:
    """A `stepviz serve` on a free port; (process, port, the first lines it printed)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "stepviz", "serve", "--port", str(port), "--steps", "3",
                                *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    printed = ""
    deadline = time.monotonic() + 60
    while "stepviz: serving on" not in printed:
        assert process.poll() is None and time.monotonic() < deadline, printed
        printed += process.stdout.readline()
    while True:  # the line is printed just before the server listens
        assert process.poll() is None and time.monotonic() < deadline, printed
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, port, printed
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    """The server and the app processes it started (one process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


def get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def websocket_status(url: str, origin: str | None = None, hold: float = 0.0, then=None) -> int:
    """The handshake's answer (101 when a session starts); with `then`, called while the session is open."""
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.send_str('["resize", {"width": 80, "height": 24}]')
                if then is not None:
                    await asyncio.sleep(hold)
                    then()
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


@pytest.fixture(scope="module")
def loopback_server():
    process, port, printed = start_server()
    yield port, printed
    stop(process)


def test_a_foreign_origin_cannot_start_a_session(loopback_server):
    port, _ = loopback_server
    url = f"http://127.0.0.1:{port}/ws"
    assert asyncio.run(websocket_status(url, origin="http://evil.example.com")) == 403
    assert asyncio.run(websocket_status(url, origin=f"http://127.0.0.1:{port}")) == 101


def test_a_rebound_host_name_is_refused_on_loopback(loopback_server):
    port, _ = loopback_server
    status, page = get(f"http://127.0.0.1:{port}/", {"Host": f"evil.example.com:{port}"})
    assert status == 403 and "answers only on this machine" in page


def test_the_page_loads_nothing_from_outside(loopback_server):
    port, printed = loopback_server
    assert f"http://127.0.0.1:{port}/" in printed and "warning" not in printed and "token" not in printed
    status, page = get(f"http://127.0.0.1:{port}/")
    assert status == 200
    outside = [u for u in re.findall(r"(?:https?|wss?)://[^\"' )]+", page) if f"127.0.0.1:{port}" not in u]
    assert outside == [] and "googleapis" not in page
    for asset in re.findall(r'(?:href|src|url\()="?(static/[^"\')]+)', page):
        assert get(f"http://127.0.0.1:{port}/{asset}")[0] == 200, asset  # the font too, served locally


def test_beyond_loopback_every_session_needs_the_token_and_the_limit_has_a_page():
    process, port, printed = start_server("--host", "0.0.0.0", "--max-sessions", "1")
    try:
        assert "warning: serving on 0.0.0.0, beyond this machine" in printed
        token = re.search(r"\?token=([\w-]+)", printed).group(1)
        assert len(token) >= 16
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/")[0] == 403 and get(f"{base}/?token=wrong")[0] == 403
        status, page = get(f"{base}/?token={token}")
        assert status == 200 and f"/ws/{token}" in page
        assert asyncio.run(websocket_status(f"{base}/ws")) == 403
        assert asyncio.run(websocket_status(f"{base}/ws/wrong")) == 403
        seen = {}

        def while_open():
            seen["page"] = get(f"{base}/?token={token}")

        assert asyncio.run(websocket_status(f"{base}/ws/{token}", hold=1.0, then=while_open)) == 101
        status, page = seen["page"]
        assert status == 503 and "at most 1 session at once" in page
    finally:
        stop(process)
