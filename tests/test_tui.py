"""The terminal UI on a tiny random model: every key, the worker never blocking, failures kept alive."""

from __future__ import annotations

import asyncio
import threading

import pytest
from tiny import scene_image, square_mask

from stepviz.run.settings import Event, RunSettings

pytest.importorskip("textual")

from stepviz.tui.app import StepvizApp  # noqa: E402
from stepviz.tui.screens.compare import CompareScreen  # noqa: E402
from stepviz.tui.screens.guidance_dialog import GuidanceDialog  # noqa: E402
from stepviz.tui.screens.help import HelpScreen  # noqa: E402
from stepviz.tui.screens.main import MainScreen  # noqa: E402
from stepviz.tui.screens.scheduler_picker import SchedulerPicker  # noqa: E402
from stepviz.tui.widgets.notes_panel import NotesPanel  # noqa: E402
from stepviz.tui.widgets.preview_panel import PreviewPanel  # noqa: E402

SIZE = (120, 40)


@pytest.fixture
def pipe(tiny_pipe):
    """The session's tiny pipeline (tests that slow or break its UNet put it back)."""
    yield tiny_pipe
    tiny_pipe.unet.__dict__.pop("forward", None)


def make_app(pipe, steps: int = 6, **overrides) -> StepvizApp:
    settings = RunSettings(model="tiny", steps=steps, height=32, width=32, **{"scheduler": "ddim", **overrides})
    return StepvizApp(settings, pipe=pipe, graphics="halfcell")


async def settle(pilot) -> None:
    """Wait for every worker, then for the messages they posted."""
    from textual.worker import WorkerCancelled

    for _ in range(3):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:  # a newer picture request replaced an older one
            pass
        await pilot.pause()


def main_screen(app) -> MainScreen:
    return next(s for s in app.screen_stack if isinstance(s, MainScreen))


def notes_text(app) -> str:
    return "\n".join(main_screen(app).query_one(NotesPanel).lines)


def main_stepper(app):
    return app.session.steppers["main"]


class HeldUNet:
    """Holds every UNet call of `pipe` until the test calls `release()` (a step "still computing")."""

    def __init__(self, pipe):
        self.pipe, self.gate, self.entered = pipe, threading.Event(), threading.Event()

    def __enter__(self):
        original = self.pipe.unet.forward

        def held(*args, **kwargs):
            self.entered.set()
            assert self.gate.wait(10), "the test never released the UNet"
            return original(*args, **kwargs)

        self.pipe.unet.forward = held
        return self

    def release(self) -> None:
        self.gate.set()

    def __exit__(self, *exc) -> None:
        self.gate.set()
        del self.pipe.unet.forward

    async def until_inside(self, pilot) -> None:
        """Wait (at most 2.5 s) until the worker is inside a held UNet call."""
        for _ in range(50):
            if self.entered.is_set():
                return
            await pilot.pause(0.05)
        raise AssertionError("no UNet call started")


async def test_step_look_back_and_rewind(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(app)
        assert screen.views["main"].steps_taken == 0
        for _ in range(3):
            await pilot.press("space")
            await settle(pilot)
        assert len(main_stepper(app).records) == 3
        status = str(screen.query_one("#status").render())
        assert "step 3/6" in status and "cpu float32" in status and "predicts eps" in status
        await pilot.press("left")
        await pilot.press("left")
        await settle(pilot)
        assert screen.index == 0
        assert "step 1/6" in str(screen.query_one("#status").render())
        await pilot.press("right")
        assert screen.index == 1
        await pilot.press("b")  # keep steps 1..2
        await settle(pilot)
        assert len(main_stepper(app).records) == 2
        assert screen.index is None
        assert "rewound to step 2" in notes_text(app)
        await pilot.click("#timeline", offset=(1, 0))  # a mouse click on the timeline's first cell
        await settle(pilot)
        assert screen.index == 0
        assert "step 1/6" in str(screen.query_one("#status").render())


async def test_play_and_pause(pipe):
    app = make_app(pipe, steps=5)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert main_stepper(app).done
        assert not main_screen(app).playing
        assert main_screen(app).views["main"].steps_taken == 5
        await pilot.press("space")  # finished: a notification, no crash
        await settle(pilot)
        assert len(main_stepper(app).records) == 5


async def test_play_pause_stops_between_steps(pipe):
    gate = threading.Event()
    app = make_app(pipe, steps=20)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        original = pipe.unet.forward

        def slowed(*args, **kwargs):
            gate.wait(5)
            return original(*args, **kwargs)

        pipe.unet.forward = slowed
        try:
            await pilot.press("p")
            await pilot.pause(0.1)
            await pilot.press("p")  # pause while a step computes
            assert not main_screen(app).playing
            gate.set()
            await settle(pilot)
        finally:
            del pipe.unet.forward
        assert 1 <= len(main_stepper(app).records) < 20


async def test_keys_answered_while_a_step_computes(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with HeldUNet(pipe) as held:
            await pilot.press("space")
            await held.until_inside(pilot)
            await pilot.press("v")  # answered while the UNet is held
            assert main_screen(app).kind == "approx"  # from the full decode, the default on a small model
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
            assert len(main_stepper(app).records) == 0  # the step is still held
            held.release()
            await settle(pilot)
        assert len(main_stepper(app).records) == 1


async def test_rewind_while_a_step_computes_waits_and_cancels(pipe):
    app = make_app(pipe, steps=20)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(2):
            await pilot.press("space")
            await settle(pilot)
        with HeldUNet(pipe) as held:
            await pilot.press("left")
            await pilot.press("p")
            await held.until_inside(pilot)
            main_screen(app).index = 0
            await pilot.press("b")  # rewind to step 1 while step 3 is held
            held.release()
            await settle(pilot)
        assert len(main_stepper(app).records) == 1
        assert main_screen(app).views["main"].steps_taken == 1


async def test_guidance_change_and_bad_value(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, GuidanceDialog)
        dialog = app.screen
        dialog.query_one("Input").value = ""
        await pilot.press(*"abc", "enter")
        await pilot.pause()
        assert isinstance(app.screen, GuidanceDialog)  # refused, still open
        assert "not allowed" in str(dialog.query_one("#dialog-error").render())
        dialog.query_one("Input").value = ""
        await pilot.press("3", ".", "5", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert main_stepper(app).guidance_scale == 3.5
        await pilot.press("space")
        await settle(pilot)
        assert main_stepper(app).records[-1].guidance_scale == 3.5
        assert "guidance 3.5" in str(main_screen(app).query_one("#status").render())
        await pilot.press("g")  # the old value is selected: typing replaces it; the mouse applies
        await pilot.pause()
        await pilot.press("2")
        await pilot.click("#apply")
        await settle(pilot)
        assert main_stepper(app).guidance_scale == 2.0


async def test_scheduler_swap_from_the_list(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SchedulerPicker)
        picker = app.screen.query_one("OptionList")
        assert "vp" in str(picker.get_option("ddim").prompt) and "order 1" in str(picker.get_option("ddim").prompt)
        picker.highlighted = picker.get_option_index("euler")
        await pilot.press("enter")
        await settle(pilot)
        assert main_stepper(app).scheduler_name == "euler"
        await pilot.press("space")
        await settle(pilot)
        assert main_stepper(app).records[-1].scheduler == "euler"
        assert "euler (sigma, order 1)" in str(main_screen(app).query_one("#status").render())


async def test_preview_cycle_draws_each_kind(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        panel = main_screen(app).query_one(PreviewPanel)
        seen = []
        for _ in range(3):
            await pilot.press("v")
            await settle(pilot)
            seen.append((main_screen(app).kind, panel.border_title))
            assert panel.query_one("#x0 .picture--image").image is not None
        assert [k for k, _ in seen] == ["approx", "channels", "full"]
        assert "VAE decode" in seen[2][1]


async def test_fork_compares_two_branches(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("g")
        await pilot.pause()
        app.screen.query_one("Input").value = "1"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        main, fork = app.session.steppers["main"], app.session.steppers["fork"]
        assert len(main.records) == len(fork.records) == 2
        assert main.records[-1].guidance_scale == 7.5 and fork.records[-1].guidance_scale == 1.0
        assert not bool((main.latents == fork.latents).all())
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_a_failure_in_the_compare_view_is_shown_there_and_the_view_stays(pipe):
    """The compare view reports through the main screen's EngineJobs: a refused edit becomes a Failed
    notification on the compare screen, which then shows the runs unchanged."""
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        screen.change_guidance(1, float("nan"))
        await settle(pilot)
        assert app.screen is screen
        assert any(n.title == "Not allowed" and "nan" in n.message for n in app._notifications)
        assert [view.steps_taken for view in screen.views] == [0, 0]


async def test_export_writes_a_strip_into_the_working_folder(pipe, tmp_path, monkeypatch):
    pytest.importorskip("stepviz.export.run_export")
    monkeypatch.chdir(tmp_path)
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(2):
            await pilot.press("space")
            await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        written = list(tmp_path.glob("*.png"))
        assert len(written) == 1
        assert written[0].name in notes_text(app)
        assert any(n.title == "Exported" and written[0].name in n.message for n in app._notifications)


async def test_export_page_replays_the_run_with_its_edits_into_a_new_folder(pipe, tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    app = make_app(pipe, steps=4)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        main_stepper(app).set_guidance_scale(3.0)  # an edit made here, from step 2 on
        await pilot.press("space")
        await settle(pilot)
        await pilot.press("X")
        await settle(pilot)
        folders = list(tmp_path.glob("stepviz-export-*"))
        assert len(folders) == 1 and (folders[0] / "index.html").is_file() and (folders[0] / "handout.html").is_file()
        manifest = json.loads((folders[0] / "manifest.json").read_text())
        assert [(e["at_step"], e["set_guidance_scale"], e["note"]) for e in manifest["events"]] == [
            (1, 3.0, "guidance scale set to 3 in the TUI")]
        assert [row["guidance_scale"] for row in json.loads((folders[0] / "metrics.json").read_text())] == [
            7.5, 3.0, 3.0, 3.0]
        assert any(n.title == "Exported" and folders[0].name in n.message for n in app._notifications)


def help_text_as_drawn(screen) -> str:
    """Every line the help screen's text widget draws, scrolled or not, as plain text."""
    from textual.geometry import Region
    from textual.widgets import Static

    text = screen.query_one(Static)
    lines = text.render_lines(Region(0, 0, text.size.width, text.virtual_size.height))
    return "\n".join(" ".join(strip.text.split()) for strip in lines)


async def test_help_lists_keys_and_formulas(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        drawn = help_text_as_drawn(app.screen)
        assert app.screen.prediction_type == "epsilon"
        for text in ("eps_hat = eps_uncond + s (eps_text - eps_uncond)", "scale_model_input", "sqrt(sigma^2 + 1)",
                     "(x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)", "alpha_cumprod"):
            assert text in drawn
        for key in ("space", "b", "g", "s", "v", "f", "x", "q"):  # each key starts a row of the keys table
            assert any(line.startswith(f"{key} ") for line in drawn.splitlines()), key
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_quit_while_a_step_computes(pipe):
    app = make_app(pipe, steps=20)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with HeldUNet(pipe) as held:
            await pilot.press("p")
            await held.until_inside(pilot)
            await pilot.press("q")
            held.release()
            await pilot.pause()
    assert app.return_code in (0, None)
    assert len(main_stepper(app).records) <= 2  # the held step finished, no new one started


async def test_nan_shows_a_notification_and_the_app_stays_alive(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        original = pipe.unet.forward
        pipe.unet.forward = lambda *a, **k: (original(*a, **k)[0] * float("nan"),)
        try:
            await pilot.press("space")
            await settle(pilot)
        finally:
            del pipe.unet.forward
        assert "NaN/Inf" in notes_text(app)
        assert any(n.title == "NaN/Inf" for n in app._notifications)
        await pilot.press("left")  # still answering
        await pilot.press("b")
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert main_stepper(app).records[-1].nonfinite is None


async def test_lesson_events_notes_and_pause(pipe):
    events = [Event(at_step=0, note="Watch x0-hat sharpen."),
              Event(at_step=2, set_guidance_scale=2.0, note="Guidance down to 2.", pause=True)]
    app = make_app(pipe, title="A lesson", events=events)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "A lesson" in notes_text(app) and "Watch x0-hat sharpen." in notes_text(app)
        await pilot.press("p")
        await settle(pilot)
        assert len(main_stepper(app).records) == 2  # paused by the lesson
        assert main_stepper(app).guidance_scale == 2.0
        assert "Guidance down to 2." in notes_text(app)


async def test_model_loads_in_a_worker_when_no_pipe_is_given(tiny_model_dir):
    app = StepvizApp(RunSettings(model=str(tiny_model_dir), steps=3, height=32, width=32))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert len(main_stepper(app).records) == 1


async def test_space_pressed_while_the_model_loads_takes_step_1_once_it_is_loaded(tiny_model_dir):
    settings = RunSettings(model=str(tiny_model_dir), steps=3, height=32, width=32)
    loaded, load = threading.Event(), settings.load_pipeline
    settings.load_pipeline = lambda progress=None: loaded.wait(30) and load()  # loads when the key is pressed
    app = StepvizApp(settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("space")
        assert not main_screen(app).views
        loaded.set()
        await settle(pilot)
        await settle(pilot)
        assert len(main_stepper(app).records) == 1
        assert main_screen(app).query_one("#status").shown.record.index == 0  # step 1's numbers on screen


async def test_a_model_that_cannot_load_shows_why_and_the_way_out(tmp_path):
    from textual.widgets import Static

    from stepviz.tui.screens.start_failed import StartFailed

    app = StepvizApp(RunSettings(model=str(tmp_path / "nowhere"), steps=3))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, StartFailed)  # not a screen left on "loading the model..."
        shown = " ".join(str(label.render()) for label in app.screen.query(Static))
        assert "not found" in shown and "Quit (q)" in str(app.screen.query_one("#quit").label)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 2


async def test_inpaint_shows_the_blend(pipe):
    app = make_app(pipe, mode="inpaint", image=scene_image(), mask_image=square_mask())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        blend = main_screen(app).query_one("#blend")
        assert blend.display
        assert blend.query_one("#blend-mask .picture--image").image is not None


def extra_pipe(in_channels: int):
    """A tiny 9-channel inpainting or 5-channel Depth2Img pipeline, or SD3's 33-channel inpainting transformer."""
    import diffusers
    from tiny import tiny_components

    if in_channels == 33:
        from tiny_flow import tiny_flow_pipeline

        return tiny_flow_pipeline("StableDiffusion3InpaintPipeline", inpainting=True)
    parts = tiny_components(unet_in_channels=in_channels)
    if in_channels == 5:
        for key in ("safety_checker", "requires_safety_checker"):
            parts.pop(key)
        pipe = diffusers.StableDiffusionDepth2ImgPipeline(depth_estimator=None, **parts)
    else:
        pipe = diffusers.StableDiffusionInpaintPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("in_channels, shown, formula", [
    (9, ("mask", "masked_image_latents"), "UNet input [x_t, m, E(masked image)]: 4 + 1 + 4 = 9 channels"),
    (5, ("depth",), "UNet input [x_t, depth]: 4 + 1 = 5 channels"),
    (33, ("mask", "masked_image_latents"),
     "transformer input [x_t, m, E(masked image)]: 16 + 1 + 16 = 33 channels"),
])
async def test_extra_unet_channels_are_shown_from_the_start(in_channels, shown, formula):
    import torch
    from textual.markup import escape

    if in_channels in (9, 33):
        inputs = dict(mode="inpaint", image=scene_image(), mask_image=square_mask())
        if in_channels == 33:  # the SD3 pipeline's own flow scheduler
            inputs.update(scheduler=None, guidance_scale=7.0)
    else:
        ramp = torch.linspace(0, 1, 32)
        depth_map = (ramp[None, :] + ramp[:, None])[None]
        inputs = dict(mode="depth2img", image=scene_image(), strength=0.8, depth_map=depth_map)
    app = make_app(extra_pipe(in_channels), **inputs)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        panel = main_screen(app).query_one("#extra-channels")
        assert panel.display and panel.border_title == escape(formula)  # shown as written, brackets too
        assert not main_screen(app).query_one("#blend").display
        for role in ("mask", "masked_image_latents", "depth"):
            picture = panel.query_one(f"#extra-{role}")
            assert picture.display == (role in shown)
            if role in shown:  # before the first step: the channels are fixed for the whole run
                assert picture.query_one(".picture--image").image is not None
        before = {role: panel.query_one(f"#extra-{role} .picture--image").image for role in shown}
        await pilot.press("space")
        await settle(pilot)
        assert main_stepper(app).records and panel.display
        for role in shown:  # drawn once per preview kind, not again at every step
            assert panel.query_one(f"#extra-{role} .picture--image").image is before[role]
        if "masked_image_latents" in shown:  # the caption counts the VAE's channels: SD 4, SD3 16
            caption = panel.query_one("#extra-masked_image_latents .picture--caption").render()
            assert f"({4 if in_channels == 9 else 16})" in str(caption)
        if in_channels == 5:  # near (high values) is light: the ramp's far corner dark, near corner light
            depth = panel.query_one("#extra-depth .picture--image").image.convert("L")
            assert depth.getpixel((0, 0)) == 0 and depth.getpixel((depth.width - 1, depth.height - 1)) == 255


def test_serve_command_keeps_run_options_only():
    from stepviz.tui.serve import tui_command

    command = tui_command(["serve", "--host", "127.0.0.1", "--port=8123", "--model", "/tmp/m", "--prompt", "a b"])
    assert command.endswith("-m stepviz tui --model /tmp/m --prompt 'a b' --graphics halfcell")
    assert "8123" not in command and "--host" not in command


def test_serve_answers_on_loopback(tiny_model_dir):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "stepviz", "serve", "--port", str(port), "--model", str(tiny_model_dir),
              "--steps", "3", "--height", "32", "--width", "32", "--scheduler", "ddim"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        page = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert page is not None, process.stdout.read1().decode() if process.poll() is not None else "no answer"
        assert "textual" in page.lower() and f"127.0.0.1:{port}" in page
        screen = asyncio.run(_browser_session(port, deadline=time.monotonic() + 60))
        assert b"step 1/3" in screen  # the app started behind the page and answered a key
    finally:
        process.terminate()
        process.wait(10)


async def _browser_session(port: int, deadline: float) -> bytes:
    """What a browser tab would receive: connect to the app's websocket, wait for step 0, press space."""
    import json
    import time

    import aiohttp

    received = b""

    async def read_until(marker: bytes) -> None:
        nonlocal received
        while marker not in received and time.monotonic() < deadline:
            try:
                message = await ws.receive(timeout=2)
            except TimeoutError:
                continue
            if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                return
            received += message.data if isinstance(message.data, bytes) else message.data.encode()

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws?width=120&height=40") as ws:
            await ws.send_str(json.dumps(["resize", {"width": 120, "height": 40}]))
            await read_until(b"step 0/3")
            await ws.send_str(json.dumps(["stdin", " "]))
            await read_until(b"step 1/3")
    return received


async def test_out_of_memory_is_a_notification(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)

        def exhausted(*args, **kwargs):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

        pipe.unet.forward = exhausted
        try:
            await pilot.press("space")
            await settle(pilot)
        finally:
            del pipe.unet.forward
        assert any(n.title == "Out of memory" for n in app._notifications)
        await pilot.press("space")  # alive, and the run goes on
        await settle(pilot)
        assert len(main_stepper(app).records) == 1


async def test_play_ends_showing_the_last_step(pipe):
    """Auto-play repaints a few times a second with the newest step; the last one is always shown."""
    app = make_app(pipe, steps=7)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert main_stepper(app).done
        assert "step 7/7" in str(main_screen(app).query_one("#status").render())
        assert "7 of 7 steps taken" in str(main_screen(app).query_one("#timeline").render())


async def test_steps_taken_behind_the_help_are_shown_on_return(pipe):
    app = make_app(pipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with HeldUNet(pipe) as held:
            await pilot.press("space")
            await held.until_inside(pilot)
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            held.release()
            await settle(pilot)
            assert main_screen(app).views["main"].steps_taken == 1
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert "step 1/6" in str(main_screen(app).query_one("#status").render())
        await pilot.press("question_mark")  # the help opens again (it is kept, not rebuilt)
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")


def test_the_first_frame_needs_no_torch():
    """The app and its main screen import without torch: the window opens before the model loads."""
    import subprocess
    import sys

    code = ("import sys, stepviz.tui.app, stepviz.tui.screens.main; "
            "print(sorted({'torch', 'diffusers'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_schedule_curves_are_thinned_to_the_plot_width():
    from stepviz.tui.widgets.schedule_panel import thinned

    ts = thinned(1000, 100)
    assert ts[0] == 0 and ts[-1] == 999 and len(ts) == 100 and ts == sorted(ts)
    assert thinned(20, 100) == list(range(20))


def test_a_thread_count_the_user_set_is_kept(monkeypatch):
    from stepviz.tui.app import leave_a_core_for_the_ui

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert leave_a_core_for_the_ui() is None


def test_help_names_a_v_prediction_model_after_v():
    from stepviz.tui.screens.help import help_text

    text = help_text("v_prediction")
    assert "v_hat = v_uncond + s (v_text - v_uncond)" in text and "`v_prediction`" in text
    assert "sqrt(abar_t) x_t - sqrt(1 - abar_t) v_hat" in text  # x0-hat from v, VP family
    assert "x / (sigma^2 + 1) - sigma v_hat / sqrt(sigma^2 + 1)" in text  # and in the sigma family
    assert "eps_hat" not in text and "eps_uncond" not in text
