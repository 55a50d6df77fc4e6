"""Bad input on the command line: non-zero exit, a short message, no traceback, nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from stepviz.cli import main
from tiny import scene_image


@pytest.fixture(scope="module")
def corrupt_model_dir(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("corrupt") / "model"
    shutil.copytree(tiny_model_dir, folder)
    unet = next((folder / "unet").glob("*.safetensors"))
    unet.write_bytes(unet.read_bytes()[:200])
    return folder


@pytest.fixture(scope="module")
def pickle_model_dir(tiny_pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pickle")
    tiny_pipe.save_pretrained(folder, safe_serialization=False)
    return folder


@pytest.fixture
def run_export(tmp_path, capsys):
    def run(*options, out=None):
        out = out or tmp_path / "out"
        code = main(["export", *map(str, options), "--out", str(out), "--preview", "approx"])
        captured = capsys.readouterr()
        return code, captured.err.strip(), out
    return run


def assert_refused(code, message, out):
    assert code == 2, message
    assert message.startswith("stepviz: error: ") and "Traceback" not in message
    assert len(message.splitlines()) <= 3
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if ".stepviz-" in p.name]


@pytest.mark.parametrize("options, words", [
    (("--height", "30"), "multiple of 8"),
    (("--width", "33"), "multiple of 8"),
    (("--steps", "0"), ">= 1"),
    (("--guidance", "nan"), "finite"),
    (("--guidance", "inf"), "finite"),
    (("--strength", "1.5"), "[0, 1]"),
    (("--scheduler", "fast"), "unknown"),
    (("--mode", "video"), "unknown"),
    (("--seed", "-3"), "2**63"),
    (("--every", "0"), "--every"),
    (("--mode", "img2img", "--image", "/no/such/picture.png"), "no such file"),
    (("--mode", "inpaint", "--image", "/no/such/picture.png"), "no such file"),
    (("--mode", "depth2img", "--image", "PICTURE", "--depth-map", "/no/such/depth.png"),
     "depth_map='/no/such/depth.png': no such file"),
    (("--depth-map", "PICTURE"), "depth2img' only"),
    (("--attention-steps", "1,99"), "--attention-steps 99 not in the run"),
    (("--attention-steps", "first"), "not a list of steps"),
])
def test_bad_values_are_refused_with_one_line(run_export, tiny_model_dir, tmp_path, options, words):
    picture = tmp_path / "picture.png"
    scene_image().save(picture)
    options = [str(picture) if option == "PICTURE" else option for option in options]
    code, message, out = run_export("--model", tiny_model_dir, *options)
    assert_refused(code, message, out)
    assert words in message


def test_a_missing_model_is_refused(run_export, tmp_path):
    code, message, out = run_export("--model", tmp_path / "nowhere")
    assert_refused(code, message, out)
    assert "not found" in message


def test_corrupt_weights_are_refused(run_export, corrupt_model_dir):
    code, message, out = run_export("--model", corrupt_model_dir, "--steps", "2", "--height", "32", "--width", "32")
    assert_refused(code, message, out)
    assert "truncated or corrupt" in message


def test_pickle_only_weights_are_refused(run_export, pickle_model_dir):
    code, message, out = run_export("--model", pickle_model_dir, "--steps", "2")
    assert_refused(code, message, out)
    assert "pickle" in message


def test_a_malformed_scenario_is_refused(run_export, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("title = 'x'\nsteps = = 3\n")
    code, message, out = run_export(bad)
    assert_refused(code, message, out)
    assert "bad.toml" in message and "line 2" in message


def test_a_scenario_with_an_unknown_key_is_refused(run_export, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("title = 'x'\n[[events]]\nat_step = 1\nwiat = true\n")
    code, message, out = run_export(bad)
    assert_refused(code, message, out)
    assert "wiat (line 4): unknown key" in message


def test_an_unknown_lesson_name_is_refused(run_export):
    code, message, out = run_export("no-such-lesson")
    assert_refused(code, message, out)
    assert "loop-anatomy" in message


def test_a_non_empty_out_folder_is_left_alone(run_export, tiny_model_dir, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, message, _ = run_export("--model", tiny_model_dir, out=out)
    assert code == 2 and "--force" in message and "Traceback" not in message
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_an_export_from_the_command_line(run_export, tiny_model_dir, capsys):
    code, message, out = run_export("loop-anatomy", "--model", tiny_model_dir, "--steps", "2", "--height", "32",
                                    "--width", "32", "--format", "gif")
    assert code == 0, message
    assert (out / "steps.gif").is_file() and (out / "index.html").is_file()


def test_run_options_without_a_command_are_the_tuis(capsys):
    assert main(["--model", "toy", "--steps", "0"]) == 2  # refused before a window opens, as `stepviz tui` does
    assert ">= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "{tui,serve" in capsys.readouterr().out


def test_scenarios_lists_the_lessons_one_line_each(capsys):
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("guidance ") for line in lines)
    assert all(len(line) < 130 for line in lines)


def test_bad_input_in_a_subprocess_has_no_traceback(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "stepviz", "export", "--steps", "0", "--out", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_the_long_option_names_are_the_api_names_and_set_the_same_run():
    from stepviz.cli import build_parser, settings_from_args

    parser = build_parser()
    short = settings_from_args(parser.parse_args(["tui", "--steps", "7", "--guidance", "3", "--mask", "m.png"]))
    long = settings_from_args(parser.parse_args(["tui", "--num-inference-steps", "7", "--guidance-scale", "3",
                                                 "--mask-image", "m.png"]))
    assert short == long
    assert (long.steps, long.guidance_scale, long.mask_image) == (7, 3.0, "m.png")
    assert long.stepper_kwargs()["num_inference_steps"] == 7


def test_help_names_the_api_name_of_each_abbreviated_option(capsys):
    with pytest.raises(SystemExit):
        main(["tui", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, api in (("--steps", "num_inference_steps"), ("--guidance", "guidance_scale"),
                        ("--mask", "mask_image")):
        assert option in text and f"API{':' if api == 'num_inference_steps' else ' and lessons:'} {api}" in text


def test_the_api_the_command_line_and_lessons_share_their_defaults(tmp_path, capsys):
    """A Stepper made in Python, a RunSettings from the CLI (or a lesson that does not say) and --help agree."""
    import inspect

    from stepviz.engine import Stepper, defaults
    from stepviz.run.lesson_file import load_scenario
    from stepviz.run.settings import RunSettings

    api = {name: p.default for name, p in inspect.signature(Stepper).parameters.items()}
    lesson = tmp_path / "bare.toml"
    lesson.write_text('prompt = "a red circle on a black background"\n', encoding="utf-8")
    for settings in (RunSettings(), load_scenario(lesson)):
        kwargs = settings.stepper_kwargs()
        for name, value in (("seed", defaults.SEED), ("num_inference_steps", defaults.NUM_INFERENCE_STEPS),
                            ("guidance_scale", None)):
            assert kwargs[name] == api[name] == value, name
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"default {defaults.SEED})" in text and f"default {defaults.NUM_INFERENCE_STEPS})" in text
