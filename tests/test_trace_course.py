"""The course's own DIY loop (shipped as the `course-loop` example) traced on the toy model, and the CLI."""

import pytest

from stepviz.cli import main
from stepviz.trace.script import run_traced
from stepviz.lessons.shipped import script_path


@pytest.mark.parametrize("scheduler,diverges", [("lms", True), ("euler", True), ("ddim", False), ("pndm", False)])
def test_the_course_loop_on_the_toy(scheduler, diverges):
    (tr,), _ = run_traced(script_path("course-loop"), [scheduler])
    report = tr.compare()
    first = report.first_divergence
    if not diverges:
        assert first is None, str(report)
        assert report.final_difference < 1e-4
        return
    assert (first.step, first.quantity, first.cause.id) == (0, "starting latents", "init-noise-sigma-order")
    assert "scaled by 14.65" in first.cause.explanation and "instead of 11.52" in first.cause.explanation
    assert report.final_difference > 0.3  # far beyond float rounding: LMS 0.53, Euler 0.42 on the shipped toy


def test_cli_prints_the_report_and_exits_1_on_a_divergence(tmp_path, capsys, tiny_model_dir):
    script = tmp_path / "my_loop.py"
    script.write_text(f"""
import torch, stepviz
from diffusers import EulerDiscreteScheduler
pipe = stepviz.load_pipeline({str(tiny_model_dir)!r})
scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="leading")
emb = pipe._encode_prompt("a red circle", "cpu", 1, True, "")
latents = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(0))
scheduler.set_timesteps(3)
latents = latents * scheduler.init_noise_sigma
for t in scheduler.timesteps:
    eps_u, eps_t = pipe.unet(torch.cat([latents] * 2), t, encoder_hidden_states=emb).sample.chunk(2)
    latents = scheduler.step(eps_u + 3.0 * (eps_t - eps_u), t, latents).prev_sample
""")
    assert main(["trace", str(script)]) == 1
    out = capsys.readouterr().out
    assert "first divergence at step 0, scaled model input" in out and "missing-scale-model-input" in out
    assert "guidance_scale=3" in out


def test_cli_refuses_what_it_cannot_trace(tmp_path, capsys):
    assert main(["trace", str(tmp_path / "nope.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert main(["trace", str(empty)]) == 2
    assert "never stepped a scheduler" in capsys.readouterr().err


@pytest.mark.parametrize("claim, words", [
    ('trace = "../../my_script.py"\nfirst_divergence = "none"', "trace (line 14): '../../my_script.py' is not allowed"),
    ('trace = "course-loop lms"\nfirst_divergence = "late"', "first_divergence (line 15): 'late' is not allowed"),
    ('trace = "course-loop"\nfirst_divergence = "none"\ndivergence_step = -1', "divergence_step"),
])
def test_a_lesson_traces_only_shipped_examples(tmp_path, claim, words):
    """A lesson's trace claim names a shipped example: a lesson file stays data, it never points at a script."""
    from test_lessons_check import write_lesson

    from stepviz.run.lesson_file import load_scenario
    from stepviz.lessons.shipped import ScenarioError

    with pytest.raises(ScenarioError) as info:
        load_scenario(write_lesson(tmp_path, "\n[[events.expect]]\n" + claim + "\n"))
    assert words in str(info.value)


@pytest.mark.parametrize("scheduler", ["lms", "ddim"])
def test_the_courses_img2img_loop_matches_the_pipeline(scheduler):
    (tr,), ending = run_traced(script_path("course-img2img"), [scheduler])
    report = tr.compare()
    assert ending.how == "finished" and report.first_divergence is None, str(report)
    assert report.run.mode == "img2img" and len(report.user.steps) == 18  # int(30 * 0.6) of 30 timesteps


@pytest.mark.parametrize("scheduler", ["lms", "ddim"])
def test_the_courses_inpaint_loop_differs_only_where_it_skips_the_last_blend(scheduler):
    (tr,), _ = run_traced(script_path("course-inpaint"), [scheduler])
    report = tr.compare()
    first = report.first_divergence
    assert (first.step, first.quantity, first.cause) == (29, "blend", None), str(report)
    assert all(row[5] < 1e-4 for row in report.rows[:-1]) and "course's loop skips the blend" in str(report)
