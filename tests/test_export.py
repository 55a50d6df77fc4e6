"""Headless export: every ready lesson exports on a tiny model into files that re-open; atomic writes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from stepviz.engine.records import FLOAT_FIELDS
from stepviz.export.run_export import export_run
from stepviz.export.strip import export_strip
from stepviz.run.lesson_file import load_scenario
from stepviz.lessons.shipped import list_scenarios

FAST = dict(steps=3, height=32, width=32)


@pytest.fixture(scope="module")
def tiny_loaded(tiny_model_dir):
    from stepviz.models import load_pipeline

    return load_pipeline(str(tiny_model_dir))


@pytest.fixture(scope="module")
def tiny_inpaint_dir(tmp_path_factory):
    from tiny import tiny_pipeline

    folder = tmp_path_factory.mktemp("tiny-inpaint")
    tiny_pipeline("StableDiffusionInpaintPipeline", unet_in_channels=9).save_pretrained(folder)
    return folder


def fast_lesson(name, model):
    settings = load_scenario(name)
    steps = 7 if settings.mode == "img2img" else FAST["steps"]  # strength 0.15 of 7 steps leaves 1 to run
    return settings.with_overrides(model=str(model), **dict(FAST, steps=steps))


def check_outputs(out: Path, settings, frames: int, animation="steps.webp"):
    manifest = json.loads((out / "manifest.json").read_text())
    for name in manifest["files"]:
        assert (out / name).is_file(), name
    with Image.open(out / "strip.png") as strip:
        strip.load()
        assert strip.width > 100 and strip.height > 100
    with Image.open(out / animation) as animated:
        assert animated.n_frames == frames
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == frames == manifest["steps_run"]
    assert set(FLOAT_FIELDS) <= set(rows[0]) and list(rows[0])[0] == "step" and "index" not in rows[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["step"] for row in metrics] == list(range(1, frames + 1))  # numbered as the TUI numbers them
    assert float(rows[-1]["sigma"]) == pytest.approx(metrics[-1]["sigma"])
    page = (out / "index.html").read_text()
    assert page.count("data:image/") >= 4 and "src=\"strip.png\"" not in page
    if settings.compare:
        assert len(manifest["compare"]) == len(settings.compare)
        assert (out / "compare.png").is_file()
    return manifest


@pytest.fixture(scope="module")
def tiny_depth_pipe():
    import diffusers
    from tiny import tiny_components

    parts = tiny_components(unet_in_channels=5)
    for key in ("safety_checker", "requires_safety_checker"):
        parts.pop(key)
    return diffusers.StableDiffusionDepth2ImgPipeline(depth_estimator=None, **parts)


@pytest.mark.parametrize("name", [name for name, _ in list_scenarios()])
def test_every_lesson_exports_on_a_tiny_model(name, tmp_path, tiny_model_dir, tiny_inpaint_dir, tiny_loaded,
                                              tiny_depth_pipe):
    settings = load_scenario(name)
    if settings.model == "toy-inpaint":
        settings, pipe = settings.with_overrides(model=str(tiny_inpaint_dir), **FAST), None
    elif settings.model == "toy-depth":  # built in memory: the lesson's own depth map, no estimator
        settings, pipe = settings.with_overrides(**FAST), tiny_depth_pipe
    elif settings.model == "toy-flow":  # its branches set a flow model's shift, or name the toy: shipped models
        settings, pipe = settings.with_overrides(steps=FAST["steps"]), None
    else:
        settings, pipe = fast_lesson(name, tiny_model_dir), tiny_loaded
    out = tmp_path / "out"
    export_run(settings, out, kind="approx", every=2, pipe=pipe)
    manifest = check_outputs(out, settings, frames=len(json.loads((out / "metrics.json").read_text())))
    assert manifest["title"] == settings.title
    assert (out / "blend.png").is_file() == (settings.mode == "inpaint" and settings.model != str(tiny_inpaint_dir))
    assert (out / "input.png").is_file() == (settings.mode != "txt2img")
    assert (out / "mask.png").is_file() == (settings.mode == "inpaint")
    extra_channels = settings.model == str(tiny_inpaint_dir) or settings.mode == "depth2img"
    assert (out / "extra_channels.png").is_file() == extra_channels
    assert ("The extra input channels" in (out / "handout.html").read_text()) == extra_channels
    page = (out / "index.html").read_text()
    assert ('"extra_channels":{"formula"' in page) == extra_channels
    assert ('"inputs":[{' in page) == (settings.mode != "txt2img")  # the page shows what the run starts from
    assert ('"blend":[{' in page) == (out / "blend.png").is_file()
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging folder left


def test_manifest_records_versions_weights_events_and_steps(tmp_path, tiny_model_dir, tiny_loaded):
    settings = fast_lesson("schedulers", tiny_model_dir).with_overrides(steps=4)
    settings.events[1].at_step = 2  # the DDIM -> Euler swap, moved inside the short run
    out = tmp_path / "out"
    export_run(settings, out, kind="channels", every=1, animation_format="gif", pipe=tiny_loaded)
    manifest = check_outputs(out, settings, frames=4, animation="steps.gif")
    assert set(manifest["versions"]) >= {"stepviz", "diffusers", "transformers", "torch"}
    assert manifest["model"]["id"] == str(tiny_model_dir)
    assert len(manifest["model"]["weights_sha256"]) == 64
    assert manifest["seed"] == settings.seed and manifest["steps_run"] == 4
    assert [c["scheduler"] for c in manifest["scheduler_configs"]] == ["ddim", "euler"]
    assert manifest["scheduler_configs"][1]["at_step"] == 2
    assert manifest["scheduler_configs"][1]["config"]["_class_name"] == "EulerDiscreteScheduler"
    swap = [e for e in manifest["events"] if e["set_scheduler"]]
    assert swap == [dict(swap[0], at_step=2, applied=True, set_scheduler="euler")]
    unreached = [e for e in manifest["events"] if not e["applied"]]
    assert unreached and all("ended after 4 steps" in e["why"] for e in unreached)
    assert [e["action"] for e in manifest["edits"]] == ["set_scheduler"]
    assert [c["label"] for c in manifest["compare"]] == ["DDIM", "Euler", "DPM++ 2M", "LMS"]


def test_weights_hash_is_the_same_for_the_same_files(tiny_model_dir, tmp_path):
    import shutil

    from stepviz.export.manifest import weights_hash

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert weights_hash(copy)[0] == weights_hash(tiny_model_dir)[0]
    unet = next((copy / "unet").glob("*.safetensors"))
    data = bytearray(unet.read_bytes())
    data[-1] ^= 1
    unet.write_bytes(bytes(data))
    assert weights_hash(copy)[0] != weights_hash(tiny_model_dir)[0]


def test_full_decode_export_with_a_mid_run_guidance_change(tmp_path, tiny_model_dir, tiny_loaded):
    settings = fast_lesson("guidance", tiny_model_dir).with_overrides(compare=[])
    settings.events[2].at_step = 1
    export_run(settings, tmp_path / "out", kind="full", every=1, pipe=tiny_loaded)
    rows = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [row["guidance_scale"] for row in rows] == [7.5, 1.0, 1.0]


def test_a_non_empty_folder_is_refused_without_force(tmp_path, tiny_model_dir, tiny_loaded):
    from stepviz.engine.checks import StepvizInputError

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    settings = fast_lesson("loop-anatomy", tiny_model_dir)
    with pytest.raises(StepvizInputError, match="--force"):
        export_run(settings, out, kind="approx", pipe=tiny_loaded)
    assert os.listdir(out) == ["mine.txt"]
    with pytest.raises(StepvizInputError, match="not an earlier stepviz export"):  # --force: stepviz's own only
        export_run(settings, out, kind="approx", force=True, pipe=tiny_loaded)
    assert os.listdir(out) == ["mine.txt"] and sorted(os.listdir(tmp_path)) == ["out"]


def test_an_empty_existing_folder_is_used(tmp_path, tiny_model_dir, tiny_loaded):
    out = tmp_path / "out"
    out.mkdir()
    export_run(fast_lesson("loop-anatomy", tiny_model_dir), out, kind="approx", pipe=tiny_loaded)
    assert (out / "strip.png").is_file()


def test_export_strip_for_the_tui_writes_unique_files(tmp_path, tiny_pipe):
    from stepviz.engine import Stepper

    stepper = Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=3, height=32, width=32)
    stepper.run()
    first = export_strip(stepper, tmp_path, kind="approx")
    second = export_strip(stepper, tmp_path, kind="full", every=2)
    assert first != second and first.name.startswith("stepviz-strip-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])  # no temp files
    with Image.open(second) as image:
        assert image.width > 2 * 128


def test_sigint_during_an_export_leaves_nothing(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "stepviz", "export", "--model", str(tiny_model_dir), "--steps", "999",
         "--height", "32", "--width", "32", "--preview", "approx", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 45
    while not any(p.name.startswith(".out.stepviz-partial") for p in tmp_path.iterdir()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the export never started"
        time.sleep(0.05)
    time.sleep(1.0)  # into the denoising loop
    assert process.poll() is None, "the export finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_python_drops_in_a_finalizer_still_stops_the_export(tmp_path, tiny_model_dir, tiny_loaded, capsys):
    """Python drops a KeyboardInterrupt raised inside __del__ (a Ctrl-C while the model loads often lands in
    one); the export remembers it, stops at its next step and leaves nothing, without a traceback."""
    from stepviz.export import run_export

    class Finalizer:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)  # the handler runs here, inside __del__

    settings = fast_lesson("loop-anatomy", tiny_model_dir)
    with run_export._interrupts_honoured():
        Finalizer()
        with pytest.raises(KeyboardInterrupt):
            export_run(settings, tmp_path / "out", kind="approx", pipe=tiny_loaded)
    assert list(tmp_path.iterdir()) == []
    assert "Traceback" not in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was
