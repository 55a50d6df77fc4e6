"""`stepviz trace SCRIPT` on a flow loop: the shipped SD3-style loop on the toy flow model (flow-loop) gives the
report `stepviz.trace` gives in Python, exit 0 when it matches the pipeline, exit 1 with the cause named for each
classic flow mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepviz.cli import main

TESTS = Path(__file__).resolve().parent


def test_the_flow_loop_matches_its_pipeline(capsys):
    assert main(["trace", "flow-loop"]) == 0
    out = capsys.readouterr().out
    assert "no divergence: the loop does what the pipeline does" in out
    assert out.count("\n") >= 22  # the table: a row per step of the 20


@pytest.mark.parametrize(("mistake", "cause", "step"), [
    ("timestep-as-sigma", "flow-timestep-as-sigma", 1),
    ("timestep-times-1000", "flow-timestep-times-1000", 1),
    ("shift-missing", "flow-shift-missing", 2),
    ("shift-twice", "flow-shift-twice", 2),
    ("init-noise-sigma", "flow-init-noise-sigma", 1),
])
def test_each_flow_mistake_exits_1_with_its_cause(mistake, cause, step, capsys):
    assert main(["trace", "flow-loop", mistake]) == 1
    out = capsys.readouterr().out
    assert f"first divergence at step {step}," in out and f"cause {cause}:" in out


def test_the_same_report_as_the_python_api(capsys):
    """The CLI prints the FlowTraceReport that stepviz.trace(pipe).compare() returns for the same loop."""
    from stepviz.lessons.shipped import script_path
    from stepviz.trace.script import run_traced

    traces, ending = run_traced(script_path("flow-loop"), ["shift-twice"])
    assert ending.how == "finished" and len(traces) == 1
    python_report = str(traces[0].compare())
    assert main(["trace", "flow-loop", "shift-twice"]) == 1
    assert capsys.readouterr().out.strip() == python_report.strip()


def test_decode_without_shift_factor_on_a_model_that_has_one(tmp_path, capsys):
    """The toy flow model's VAE has shift_factor 0 (the mistake changes nothing there); a tiny SD3 pipeline's has
    one: the same shipped loop on it, decoded without it."""
    script = tmp_path / "sd3_loop.py"
    script.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "import stepviz\n"
        "from tiny_flow import tiny_flow_pipeline\n"
        "pipe = tiny_flow_pipeline('StableDiffusion3Pipeline')\n"
        "load_pipeline, stepviz.load_pipeline = stepviz.load_pipeline, lambda *args, **kwargs: pipe\n"
        "from stepviz.lessons.shipped import script_path\n"
        "try:\n"
        "    runpy.run_path(str(script_path('flow-loop')), run_name='__main__')\n"
        "finally:\n"
        "    stepviz.load_pipeline = load_pipeline  # the tests go on in this process\n", encoding="utf-8")
    assert main(["trace", str(script), "no-shift-factor"]) == 1
    out = capsys.readouterr().out
    assert "decode" in out and "cause flow-decode-shift-factor:" in out
    assert main(["trace", str(script)]) == 0


def test_an_unknown_mistake_is_one_line_exit_2(capsys):
    assert main(["trace", "flow-loop", "no-such-mistake"]) == 2
    err = capsys.readouterr().err
    assert "flow-loop takes nothing or one mistake" in err and "no-such-mistake" in err
