"""A real browser: JupyterLab on 127.0.0.1 with a token, the shipped notebook opened in headless Chromium
(the system's, driven over its own DevTools protocol), its cells run up to the debugger, "step" clicked,
and the x_t picture checked to change. A screenshot is written to $STEPVIZ_SCREENSHOT (or the test's
temporary folder).

Run by hand: `STEPVIZ_BROWSER=1 python -m pytest tests/test_notebook_browser.py` (about a minute), with
Debian's `chromium` (/usr/bin/chromium, or $STEPVIZ_CHROMIUM) and JupyterLab installed. Skipped otherwise:
CI installs no browser (that would need root and a Debian mirror in .ci/run, and a minute of a shared
machine per run), and the headless widget tests cover every control without one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("STEPVIZ_CHROMIUM", "/usr/bin/chromium")
NOTEBOOK = Path(__file__).resolve().parents[1] / "stepviz" / "lessons" / "unit3.ipynb"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,2200", "--remote-debugging-port=0"]

pytestmark = [
    pytest.mark.skipif(os.environ.get("STEPVIZ_BROWSER") != "1", reason="a real browser: set STEPVIZ_BROWSER=1"),
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, deadline: float, process: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args[2]} ended early (exit {process.returncode})"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket (aiohttp)."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive()).data)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, expression: str, deadline: float, pause: float = 0.5, explain: str = "''"):
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(pause)
        raise TimeoutError(f"{expression[:120]} (page: {await self.evaluate(explain)})")


# the notebook in JupyterLab's main area (headless, nothing has focus, so shell.currentWidget stays null)
PANEL = "[...jupyterapp.shell.widgets('main')].find(w => w.sessionContext)"
# the debugger's widget in the page: its "step" button, its status line and its x_t picture's bytes
FIND = """(() => {
  const steps = [...document.querySelectorAll('button.widget-button')].filter(b => b.textContent.trim() === 'step');
  if (!steps.length) return null;
  const box = steps[0].closest('.widget-vbox');
  return box;
})()"""
STATUS = f"""(() => {{
  const box = {FIND}; const pre = box && box.querySelector('pre');
  return pre ? pre.textContent : '';
}})()"""
PICTURE = f"""(async () => {{
  const box = {FIND}; const img = box && box.querySelector('.widget-image, img');
  if (!img || !img.src) return '';
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  if (!bytes.length) return '';
  let h = 0; for (const b of bytes) h = (h * 31 + b) >>> 0;
  return bytes.length + ':' + h;
}})()"""


async def drive(devtools_port: int, lab_url: str, deadline: float, screenshot: Path) -> tuple[str, str, str]:
    import aiohttp

    with urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json", timeout=5) as response:
        page = next(t for t in json.load(response) if t["type"] == "page")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tools = DevTools(ws)
            try:
                return await steps(tools, lab_url, deadline, screenshot)
            except BaseException:
                shot = await tools.call("Page.captureScreenshot", format="png")
                screenshot.with_suffix(".failed.png").write_bytes(base64.b64decode(shot["data"]))
                raise


async def steps(tools: DevTools, lab_url: str, deadline: float, screenshot: Path) -> tuple[str, str, str]:
    await tools.call("Page.enable")
    await tools.call("Page.navigate", url=lab_url)
    await tools.until(f"!!(window.jupyterapp && {PANEL})", deadline, explain="document.title + ' | ' + location.href")
    await tools.evaluate(f"jupyterapp.shell.activateById({PANEL}.id)")  # notebook commands act on it
    await tools.until(f"{PANEL}.sessionContext.ready.then(() => {PANEL}.sessionContext.session.kernel.status"
                      " === 'idle')", deadline)
    # run the cells up to the one that shows the debugger (the first that builds a Debugger)
    count = await tools.evaluate(f"""(() => {{
        const nb = {PANEL}.content;
        const cells = nb.widgets.map(c => c.model.sharedModel.getSource());
        return cells.findIndex(s => s.startsWith('debugger = Debugger(')) + 1; }})()""")
    assert count > 0
    await tools.evaluate(f"{PANEL}.content.activeCellIndex = 0")
    for _ in range(count):
        await tools.evaluate("jupyterapp.commands.execute('notebook:run-cell-and-select-next')")
    await tools.until(f"!!{FIND}", deadline)
    await tools.until(f"{STATUS}.includes('step 0/')", deadline)
    before = await tools.until(PICTURE, deadline)
    await tools.evaluate(f"{FIND}.querySelector('button.widget-button').click()")
    await tools.until(f"{STATUS}.includes('step 1/')", deadline)
    after = await tools.until(f"(async () => {{ const p = await {PICTURE}; return p !== '{before}' && p; }})()",
                              deadline)
    await tools.evaluate(f"{PANEL}.content.activeCellIndex = {count - 1}")  # Lab scrolls to the active cell
    await asyncio.sleep(0.5)
    await tools.evaluate(f"{FIND}.scrollIntoView()")
    await asyncio.sleep(1.0)
    shot = await tools.call("Page.captureScreenshot", format="png")
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return before, after, await tools.evaluate(STATUS)


def test_jupyterlab_in_chromium_steps_and_the_picture_changes(tmp_path):
    pytest.importorskip("jupyterlab")
    pytest.importorskip("aiohttp")
    root = Path(__file__).resolve().parents[1]
    folder = tmp_path / "lab"
    folder.mkdir()
    text = NOTEBOOK.read_text(encoding="utf-8").replace("STEPS = 25", "STEPS = 4")
    (folder / "unit3.ipynb").write_text(text, encoding="utf-8")
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.terminals_enabled=False", *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "lab.log").open("wb"))
    profile = tmp_path / "chromium-profile"
    browser = None
    try:
        deadline = time.monotonic() + 150
        wait_for(f"http://127.0.0.1:{port}/api/status?token={token}", deadline, lab)
        browser = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (profile / "DevToolsActivePort").is_file():
            assert time.monotonic() < deadline and browser.poll() is None, "Chromium did not start"
            time.sleep(0.2)
        devtools_port = int((profile / "DevToolsActivePort").read_text().split()[0])
        screenshot = Path(os.environ.get("STEPVIZ_SCREENSHOT", tmp_path / "jupyterlab-step.png"))
        before, after, status = asyncio.run(drive(devtools_port, f"http://127.0.0.1:{port}/lab/tree/unit3.ipynb"
                                                  f"?token={token}", deadline, screenshot))
        assert before != after and "step 1/" in status
        assert screenshot.stat().st_size > 10_000
    finally:
        for process in (browser, lab):
            if process is not None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
