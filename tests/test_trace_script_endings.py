"""`stepviz trace SCRIPT.py`: the report and the verdict's exit code whatever the script does at its end, one
report per loop, the user's own errors shown as theirs, and one line for what cannot be traced."""

import subprocess
import sys

import pytest

from stepviz.cli import main

LOOP = """
import torch, stepviz
from diffusers import EulerDiscreteScheduler
pipe = stepviz.load_pipeline({model!r})
scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="leading")
emb = pipe._encode_prompt("a red circle", "cpu", 1, True, "")
latents = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(0))
scheduler.set_timesteps(3)
latents = latents * scheduler.init_noise_sigma
for t in scheduler.timesteps:
    x = torch.cat([latents] * 2)
    x = {scale}
    eps_u, eps_t = pipe.unet(x, t, encoder_hidden_states=emb).sample.chunk(2)
    latents = scheduler.step(eps_u + 3.0 * (eps_t - eps_u), t, latents).prev_sample
"""
DIVERGING, MATCHING = "x", "scheduler.scale_model_input(x, t)"


def script(tmp_path, model, tail="", scale=DIVERGING, name="my_loop.py"):
    path = tmp_path / name
    path.write_text(LOOP.format(model=str(model), scale=scale) + tail)
    return path


@pytest.mark.parametrize("tail", ["import sys\nsys.exit(0)\n", "raise SystemExit('done')\n", "import os\n"])
def test_a_diverging_loop_fails_however_the_script_ends(tmp_path, tiny_model_dir, capsys, tail):
    assert main(["trace", str(script(tmp_path, tiny_model_dir, tail))]) == 1
    out = capsys.readouterr().out
    assert "missing-scale-model-input" in out
    if "exit" in tail.lower():
        assert "the script ended with" in out


def test_a_matching_loop_passes_though_the_script_exits_3(tmp_path, tiny_model_dir, capsys):
    assert main(["trace", str(script(tmp_path, tiny_model_dir, "import sys\nsys.exit(3)\n", MATCHING))]) == 0
    out = capsys.readouterr().out
    assert "the loop matches the pipeline" in out and "sys.exit(3)" in out


def test_an_exception_after_the_loop_shows_the_users_traceback_and_the_report(tmp_path, tiny_model_dir, capsys):
    path = script(tmp_path, tiny_model_dir, "def finish():\n    raise ValueError('my own bug')\nfinish()\n", MATCHING)
    assert main(["trace", str(path)]) == 1
    captured = capsys.readouterr()
    assert "the loop matches the pipeline" in captured.out and "raised ValueError: my own bug" in captured.out
    assert "my_loop.py" in captured.err and "finish()" in captured.err and "ValueError: my own bug" in captured.err
    assert "stepviz" not in captured.err.replace("import torch, stepviz", "")  # no frame of stepviz or runpy
    assert "runpy" not in captured.err


@pytest.mark.parametrize("source, shown", [
    ("def broken(:\n", "SyntaxError"),
    ("x = 1\0\n", "null bytes"),
    ("import no_such_module_here\n", "ModuleNotFoundError"),
])
def test_a_script_that_cannot_run_shows_its_own_error_and_exits_1(tmp_path, capsys, source, shown):
    path = tmp_path / "bad.py"
    path.write_bytes(source.encode())
    assert main(["trace", str(path)]) == 1
    err = capsys.readouterr().err
    assert shown in err and "runpy" not in err and "trace_script" not in err


def test_two_loops_on_two_pipelines_get_a_report_each(tmp_path, tiny_model_dir, capsys):
    second = LOOP.format(model=str(tiny_model_dir), scale=MATCHING).replace("(0)", "(1)")
    path = script(tmp_path, tiny_model_dir, second)
    assert main(["trace", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.count("stepviz trace: 3 steps of EulerDiscreteScheduler") == 2
    assert "2 loops traced" in out
    assert out.count("missing-scale-model-input") >= 1 and "the loop matches the pipeline" in out


def test_unknown_arguments_of_a_shipped_example_are_one_line(capsys):
    assert main(["trace", "course-loop", "nosuchsched"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nosuchsched" in err and "lms" in err


def test_open_without_a_terminal_is_one_line_and_runs_nothing(tmp_path, tiny_model_dir):
    marker = tmp_path / "ran"
    path = script(tmp_path, tiny_model_dir, f"open({str(marker)!r}, 'w').close()\n")
    done = subprocess.run([sys.executable, "-m", "stepviz", "trace", str(path), "--open"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "terminal" in done.stderr
    assert not marker.exists()


def test_a_trace_prints_no_library_noise(tmp_path, tiny_model_dir):
    path = script(tmp_path, tiny_model_dir, scale=MATCHING)
    done = subprocess.run([sys.executable, "-m", "stepviz", "trace", str(path)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""
