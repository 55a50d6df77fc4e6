"""The smaller cases of the trust round: abbreviated serve options, an absurd ?fontsize=, a disk that fails,
prompts that are not text, a long prompt's attention picture, --attention-steps checked before the run, and
the notebook Debugger's own arguments."""

from __future__ import annotations

import errno

import pytest
from PIL import Image

from stepviz import Stepper
from stepviz.cli import main
from stepviz.engine.checks import StepvizInputError


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("args", [["--max", "1"], ["--no-tok"], ["--max-sess", "2"]])
def test_serve_refuses_abbreviated_options_at_once(args, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", *args])
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_a_font_size_of_5000_digits_gives_the_default_page():
    from stepviz.tui.serve_guard import page_font_size

    assert page_font_size("9" * 5000) == 16 and page_font_size("24") == 24 and page_font_size("7") == 16
    assert page_font_size("-3") == 16 and page_font_size("١٢") == 16 and page_font_size("") == 16


def test_a_disk_that_fails_is_one_line_exit_1_and_nothing_half_written(workdir, monkeypatch, capsys):
    import stepviz.export.run_export as run_export

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "strip.png")

    monkeypatch.setattr(run_export, "write_export", full_disk)
    assert main(["export", "--steps", "2", "--out", "handout"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("prompt, negative", [(None, None), (123, None), ("a red circle", 5)])
def test_a_prompt_that_is_not_text_is_one_line(tiny_pipe, prompt, negative):
    with pytest.raises(StepvizInputError, match="not allowed") as caught:
        Stepper(tiny_pipe, prompt=prompt, negative_prompt=negative, num_inference_steps=2, height=32, width=32)
    assert "\n" not in str(caught.value)


def test_a_77_token_prompts_attention_picture_fits_a_slide(tiny_model_dir, workdir):
    from stepviz.export.run_export import export_run
    from stepviz.models import load_pipeline
    from stepviz.run.settings import RunSettings

    prompt = " ".join(["a red circle on a black background"] * 12)
    settings = RunSettings(model=str(tiny_model_dir), steps=2, height=32, width=32, prompt=prompt)
    out = export_run(settings, workdir / "out", kind="approx", pipe=load_pipeline(str(tiny_model_dir)))
    with Image.open(out / "attention.png") as picture:
        width, height = picture.size
    assert width <= 2000 and height <= 2600, (width, height)


@pytest.mark.parametrize("value, gist", [("", "not a list of steps"), ("99", "not in the run: use steps 1..3"),
                                         ("0", "not in the run")])
def test_attention_steps_are_checked_before_the_run(workdir, capsys, value, gist):
    assert main(["export", "--steps", "3", "--attention-steps", value, "--out", "handout"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and gist in err
    assert not (workdir / "handout").exists()


@pytest.mark.parametrize("call, gist", [
    (lambda d: d.set_preview("nope"), "kind='nope'"),
    (lambda d: d.look("a"), "look('a')"),
    (lambda d: d.look(-1), "look(-1)"),
    (lambda d: d.step("a"), "step('a')"),
    (lambda d: d.step(0), "step(0)"),
])
def test_the_notebook_debugger_refuses_its_own_bad_arguments(tiny_pipe, call, gist):
    pytest.importorskip("ipywidgets")
    from stepviz.notebook import Debugger

    debugger = Debugger(tiny_pipe, prompt="a red circle", num_inference_steps=2, height=32, width=32)
    try:
        with pytest.raises(StepvizInputError) as caught:
            call(debugger)
        assert gist in str(caught.value) and "\n" not in str(caught.value)
    finally:
        debugger.close()
