"""Every bad input is one line and exit 2, before anything runs, and leaves the file system as it was.

One table per way in: the command line (in-process), lesson files, and the Python API. Each CLI case
asserts the exit code, that stderr is one `stepviz: error:` line holding the gist, and that the working
folder and the output's parent hold exactly what they held before (no export, no partial folder).
The export-folder rules (--force, leftovers) are in test_export_folder.py; serve in test_serve_guard.py.
"""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from stepviz.cli import main
from stepviz.engine.checks import StepvizInputError
from stepviz.models import ModelLoadError

GiB = 2**30


def tree(folder):
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_model_dir, tiny_pipe):
    """Broken models, pictures and lessons, made once; `{name}` in a case's arguments is replaced by its path."""
    root = tmp_path_factory.mktemp("assets")
    made = {"tiny": tiny_model_dir}

    def model_copy(name):
        folder = root / name
        shutil.copytree(tiny_model_dir, folder)
        made[name] = folder
        return folder

    unet = next((model_copy("corrupt") / "unet").glob("*.safetensors"))
    unet.write_bytes(unet.read_bytes()[:200])
    (model_copy("badjson") / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline",')
    shutil.rmtree(model_copy("novae") / "vae")
    folder = model_copy("pickled")
    for weights in (folder / "unet").glob("*.safetensors"):
        import torch
        from safetensors.torch import load_file

        torch.save(load_file(weights), weights.with_suffix(".bin"))
        weights.unlink()
    import diffusers
    from tiny import tiny_components

    parts = tiny_components(unet_in_channels=5)
    for key in ("safety_checker", "requires_safety_checker"):
        parts.pop(key)
    diffusers.StableDiffusionDepth2ImgPipeline(depth_estimator=None, **parts).save_pretrained(root / "noestimator")
    made["noestimator"] = root / "noestimator"
    for name, size in (("pic", (32, 32)), ("pic1", (1, 1)), ("bigpic", (4096, 4096))):
        Image.new("RGB", size, (200, 30, 40)).save(root / f"{name}.png")
        made[name] = root / f"{name}.png"
    for name, text in LESSONS.items():
        (root / f"{name}.toml").write_text(text.format(**made), encoding="utf-8")
        made[name] = root / f"{name}.toml"
    return made


LESSONS = {
    "huge_steps": 'steps = 100000000000\n',
    "huge_scene": 'mode = "img2img"\nimage = {{ toy_scene = "a red circle on a black background", size = 40000 }}\n',
    "compare_bad_model": 'steps = 3\n\n[[compare]]\nlabel = "other"\nmodel = "{badjson}"\n',
    "compare_pickle": 'steps = 3\n\n[[compare]]\nlabel = "first"\nguidance_scale = 1.0\n\n[[compare]]\n'
                      'label = "pickled"\nmodel = "{pickled}"\n',
    "compare_no_picture": 'steps = 3\n\n[[compare]]\nlabel = "img"\nmode = "img2img"\n',
    "txt2img_strength": 'steps = 3\nstrength = 0.5\n',
    "txt2img_image": 'steps = 3\nimage = "{pic}"\n',
}

# (id, arguments after `stepviz export`, what the one line must say); {name} -> an asset's path
CLI_CASES = [
    # cases that held before this issue
    ("height-not-8", ["--height", "30"], "multiple of 8"),
    ("width-not-8", ["--width", "33"], "multiple of 8"),
    ("steps-0", ["--steps", "0"], ">= 1"),
    ("guidance-nan", ["--guidance", "nan"], "finite"),
    ("guidance-inf", ["--guidance", "inf"], "finite"),
    ("strength-1.5", ["--mode", "img2img", "--image", "{pic}", "--strength", "1.5"], "[0, 1]"),
    ("seed-negative", ["--seed", "-3"], "2**63"),
    ("scheduler-unknown", ["--scheduler", "fast"], "scheduler='fast' is unknown"),
    ("mode-unknown", ["--mode", "video"], "mode='video' is unknown"),
    ("every-0", ["--every", "0"], "--every 0"),
    ("image-missing-img2img", ["--mode", "img2img", "--image", "/no/such.png"], "no such file"),
    ("image-missing-inpaint", ["--mode", "inpaint", "--image", "/no/such.png"], "no such file"),
    ("mask-missing-inpaint", ["--mode", "inpaint", "--image", "{pic}"], "needs mask_image"),
    ("image-not-a-picture", ["--mode", "img2img", "--image", "{badjson}/model_index.json"], "not a readable image"),
    ("depth-map-missing", ["--mode", "depth2img", "--model", "{noestimator}", "--image", "{pic}",
                           "--depth-map", "/no/depth.png"], "no such file"),
    ("model-missing", ["--model", "/no/such/model"], "not found"),
    ("model-not-a-pipeline", ["--model", "{pic}"], "not a diffusers pipeline folder"),
    ("model-corrupt-weights", ["--model", "{corrupt}"], "truncated or corrupt"),
    ("model-pickle-only", ["--model", "{pickled}"], "pickle file (.bin)"),
    ("mode-unfit-for-model", ["--mode", "depth2img", "--image", "{pic}"], "needs a UNet with 5"),
    ("lesson-unknown", ["no-such-lesson"], "loop-anatomy"),
    ("out-is-a-file", ["--out", "{pic}"], "is a file"),
    # section 2: tracebacks that are one line now
    ("steps-above-train-timesteps", ["--steps", "1001"], "at most 1000 steps"),
    ("steps-past-t999-leading", ["--steps", "1000"], "puts a step at t=1000"),
    ("model-index-bad-json", ["--model", "{badjson}"], "model_index.json is not valid JSON"),
    ("model-component-missing", ["--model", "{novae}"], "component 'vae' is missing"),
    ("image-1x1-img2img", ["--mode", "img2img", "--image", "{pic1}"], "1x1 pixels is too small"),
    ("height-100000-width-100000", ["--height", "100000", "--width", "100000"], "100000x100000 needs at least"),
    ("depth2img-without-estimator", ["--mode", "depth2img", "--model", "{noestimator}", "--image", "{pic}"],
     "no depth estimator"),
    ("strength-leaves-no-step", ["--mode", "img2img", "--image", "{pic}", "--strength", "0.1", "--steps", "5"],
     "leaves no step to run"),
    ("txt2img-strength", ["--strength", "0.5"], "strength is used by mode='img2img' or"),
    ("txt2img-image", ["--image", "{pic}"], "image is used by mode="),
    ("img2img-mask", ["--mode", "img2img", "--image", "{pic}", "--mask", "{pic}"], "mask_image is used by"),
    ("out-empty", ["--out", ""], "--out '' is empty"),
    ("out-dot-dot-force", ["--out", "x/..", "--force"], "the working folder"),
    # lessons: the whole file, every [[compare]] run, before the first step
    ("lesson-steps-1e11", ["{huge_steps}"], "at most 1000 steps"),
    ("lesson-toy-scene-40000", ["{huge_scene}"], "image (line 2): a toy scene of size 40000x40000 needs"),
    ("lesson-compare-bad-model", ["{compare_bad_model}"], "[[compare]] #1 (other, line 3): "),
    ("lesson-compare-pickle", ["{compare_pickle}"], "[[compare]] #2 (pickled, line 7): the unet weights"),
    ("lesson-compare-no-picture", ["{compare_no_picture}"], "[[compare]] #1 (img, line 3): mode='img2img' needs"),
    ("lesson-txt2img-strength", ["{txt2img_strength}"], "strength is used by"),
    ("lesson-txt2img-image", ["{txt2img_image}"], "image is used by"),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("a user's file")
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("case, args, gist", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_the_command_line_refuses_with_one_line(case, args, gist, assets, workdir, capsys):
    args = [a.format(**assets) for a in args]
    if "--out" not in args:
        args += ["--out", "export"]
    before = tree(workdir.parent)
    code = main(["export", "--preview", "approx", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("stepviz: error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert gist in err, err
    assert tree(workdir.parent) == before  # nothing written, nothing deleted, no partial folder


def test_a_size_is_refused_against_the_memory_there_is(assets, workdir, capsys, monkeypatch):
    from stepviz.engine import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 2 * GiB)
    for args, size in ((["--height", "100000"], "100000x64"),
                       (["--mode", "img2img", "--image", str(assets["bigpic"])], "4096x4096")):
        assert main(["export", *args, "--out", "x"]) == 2
        err = capsys.readouterr().err
        assert f"a picture of {size} needs at least" in err and "2.0 GiB is available" in err
        assert "use at most about" in err
    assert sorted(p.name for p in workdir.iterdir()) == ["notes.txt"]


def test_the_estimate_matches_the_measured_toy_decode():
    from stepviz.engine.memory import largest_square, run_bytes

    # measured: one toy step and decode at 512x512 took ~110 + ~185 MiB (see engine/memory.py)
    assert 150 * 2**20 < run_bytes(512, 512, 25) < 400 * 2**20
    assert run_bytes(1024, 1024, 25) > 3.5 * run_bytes(512, 512, 25)
    side = largest_square(25, 8 * GiB)
    assert run_bytes(side, side, 25) <= 8 * GiB < run_bytes(side + 8, side + 8, 25)


def test_a_lesson_saved_with_a_byte_order_mark_is_read(tmp_path):
    from stepviz.run.lesson_file import load_scenario

    lesson = tmp_path / "bom.toml"
    lesson.write_text('title = "saved on Windows"\nsteps = 3\n', encoding="utf-8-sig")
    assert lesson.read_bytes().startswith(b"\xef\xbb\xbf")
    settings = load_scenario(lesson)
    assert (settings.title, settings.steps) == ("saved on Windows", 3)


SERVE_CASES = [
    ("port-in-use", ["--port", "{busy}"], "Address already in use"),
    ("port-70000", ["--port", "70000"], "1..65535"),
    ("port-negative", ["--port", "-1"], "1..65535"),
    ("port-0", ["--port", "0"], "1..65535"),
    ("host-unknown", ["--host", "no-such-host.invalid"], "not an address of this machine"),
    ("max-sessions-0", ["--max-sessions", "0"], ">= 1"),
    ("model-pickle-only", ["--model", "{pickled}"], "pickle file"),
]


@pytest.mark.parametrize("case, args, gist", SERVE_CASES, ids=[c[0] for c in SERVE_CASES])
def test_serve_refuses_at_start_with_one_line(case, args, gist, assets, workdir, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = [a.format(busy=busy.getsockname()[1], **assets) for a in args]
        code = main(["serve", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and gist in err, err


# ---------------------------------------------------------------- the Python API
def _stepper(pipe, **kwargs):
    from stepviz import Stepper

    return Stepper(pipe, **{"prompt": "a red circle", "num_inference_steps": 2, "height": 32, "width": 32, **kwargs})


API_CASES = [
    ("device-nope", lambda a, p: _load(a, device="nope"), ValueError, "device='nope' is unknown"),
    ("device-tpu", lambda a, p: _load(a, device="tpu"), ValueError, "device='tpu' is unknown"),
    ("device-cuda-absent", lambda a, p: _load(a, device="cuda:7"), ValueError, "is not available"),
    ("pickle-only", lambda a, p: _load(a, model="pickled"), ModelLoadError, "allow_pickle=True"),
    ("component-missing", lambda a, p: _load(a, model="novae"), ModelLoadError, "component 'vae' is missing"),
    ("model-index-bad-json", lambda a, p: _load(a, model="badjson"), ModelLoadError, "not valid JSON"),
    ("scheduler-not-a-scheduler", lambda a, p: _stepper(p, scheduler=5), StepvizInputError, "scheduler=5 is not"),
    ("steps-1001", lambda a, p: _stepper(p, num_inference_steps=1001), StepvizInputError,
     "at most 1000"),
    ("steps-1000-leading", lambda a, p: _stepper(p, num_inference_steps=1000), StepvizInputError,
     "past the last trained timestep 999"),
    ("txt2img-strength", lambda a, p: _stepper(p, strength=0.5), StepvizInputError, "strength is used by"),
    ("txt2img-image", lambda a, p: _stepper(p, image=Image.new("RGB", (32, 32))), StepvizInputError,
     "image is used by"),
    ("img2img-1x1",
     lambda a, p: _stepper(p, mode="img2img", image=Image.new("RGB", (1, 1)), height=None, width=None),
     StepvizInputError, "too small"),
    ("rewind-true", lambda a, p: _stepper(p).rewind(True), StepvizInputError, "rewind k=True"),
    ("size-beyond-memory", lambda a, p: _stepper(p, height=100000, width=100000), StepvizInputError,
     "needs at least"),
]


def _load(assets, model="tiny", **kwargs):
    from stepviz import load_pipeline

    return load_pipeline(str(assets[model]), **kwargs)


@pytest.mark.parametrize("case, call, error, gist", API_CASES, ids=[c[0] for c in API_CASES])
def test_the_api_refuses_with_one_line(case, call, error, gist, assets, tiny_pipe):
    with pytest.raises(error) as caught:
        call(assets, tiny_pipe)
    assert gist in str(caught.value) and "\n" not in str(caught.value)


def test_as_many_steps_as_trained_timesteps_run_when_spaced_trailing(tiny_pipe):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(tiny_pipe.scheduler.config, timestep_spacing="trailing")
    stepper = _stepper(tiny_pipe, num_inference_steps=1000, scheduler=scheduler)
    stepper.step()
    assert int(stepper.timesteps[0]) == 999 and len(stepper.records) == 1


def test_a_uniform_depth_map_is_used_flat_and_said(tiny_pipe):
    import diffusers
    import torch
    from tiny import tiny_components

    from stepviz import Stepper

    parts = tiny_components(unet_in_channels=5)
    for key in ("safety_checker", "requires_safety_checker"):
        parts.pop(key)
    pipe = diffusers.StableDiffusionDepth2ImgPipeline(depth_estimator=None, **parts)
    stepper = Stepper(pipe, prompt="a red circle", num_inference_steps=2, mode="depth2img",
                      image=Image.new("RGB", (32, 32), (90, 90, 90)), depth_map=torch.full((1, 32, 32), 0.5))
    record = stepper.step()  # no NaN: the watchdog does not blame the UNet
    assert record.nonfinite is None and torch.equal(stepper.extra_channels["depth"], torch.zeros(1, 1, 4, 4))
    assert any("one value everywhere" in notice for notice in stepper.notices)


def test_a_finished_run_says_what_to_do_in_a_sentence(tiny_pipe):
    from stepviz.engine import RunFinishedError
    from stepviz.run.session import describe_failure

    stepper = _stepper(tiny_pipe)
    stepper.run()
    with pytest.raises(RunFinishedError) as caught:
        stepper.set_scheduler("euler")
    title, text = describe_failure(caught.value)
    assert title == "Nothing left to change" and text == "the run is finished: rewind first, then swap the scheduler"
    assert "RuntimeError" not in title + text


def test_training_checkpoints_never_unpickle_code(tmp_path):
    import pickle

    import torch

    from training.checkpoint import load_checkpoint, save_checkpoint

    state = {"model": {"w": torch.ones(2)}, "losses": [0.5, 0.25], "sensitivity": [(0, 0.1)], "step": 3}
    save_checkpoint(state, tmp_path / "ok.pt")
    assert load_checkpoint(tmp_path / "ok.pt")["losses"] == [0.5, 0.25]
    torch.save({"step": 1, "payload": Image.new("RGB", (1, 1))}, tmp_path / "code.pt")  # any class: refused
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tmp_path / "code.pt")


def test_the_export_help_documents_exit_codes_and_symlinks(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "3 the NaN/Inf watchdog stopped the run" in text and "a symlink is followed" in text


def test_a_step_ctrl_c_could_not_interrupt_is_refused_before_anything_runs(workdir, capsys):
    """--height 100000 on the toy: one attention call over 100k latent pixels (minutes of one C++ call, deaf to
    Ctrl-C) is refused in one line naming the work, before the model loads and before any folder is made."""
    import time

    started = time.monotonic()
    assert main(["export", "--height", "100000", "--out", "big"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "100000x64" in err and "multiply-adds" in err and "Ctrl-C" in err
    assert time.monotonic() - started < 10 and not (workdir / "big").exists()
    assert not any(p.name.startswith(".big") for p in workdir.iterdir())


def test_the_attention_work_bound_lets_usual_sizes_run():
    from stepviz.engine import memory

    sd15 = dict(scale=8, unet_channels=(320, 640, 1280, 1280), levels=(0, 1, 2, 3), vae_channels=(128, 256, 512, 512))
    memory.check_step_work("a picture of", 1024, 1024, "cpu", **sd15)  # SD 1.5 at 1024 px on a CPU: slow, allowed
    with pytest.raises(StepvizInputError, match="at most about"):
        memory.check_step_work("a picture of", 2048, 2048, "cpu", **sd15)
    memory.check_step_work("a picture of", 2048, 2048, "cuda", **sd15)
