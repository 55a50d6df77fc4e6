"""stepviz.trace: a hand-written loop recorded, compared with the pipeline, its first divergence named."""

import pytest
import torch
from diy_loops import img2img_loop, inpaint_loop, txt2img_loop

import stepviz
from stepviz.engine.schedulers import SCHEDULERS
from stepviz.trace.causes import CAUSES


@pytest.fixture(scope="module")
def sd_pipe():
    """Tiny random components with Stable Diffusion's scheduler config as saved ('leading' spacing written out)."""
    from diffusers import PNDMScheduler
    from tiny import SCHEDULER_CONFIG, tiny_pipeline

    pipe = tiny_pipeline()
    pipe.scheduler = PNDMScheduler.from_config({**SCHEDULER_CONFIG, "timestep_spacing": "leading"})
    return pipe


def traced(pipe, loop, *args, **kwargs):
    with stepviz.trace(pipe) as tr:
        result = loop(pipe, *args, **kwargs)
    return tr.compare(), result


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_a_correct_loop_matches_for_every_scheduler(sd_pipe, scheduler):
    report, _ = traced(sd_pipe, txt2img_loop, scheduler)
    assert report.first_divergence is None, str(report)
    assert report.run.guidance_scale == 7.5 and report.final_difference < 1e-4
    assert "matches the pipeline" in str(report)


@pytest.mark.parametrize("loop", [img2img_loop, inpaint_loop])
@pytest.mark.parametrize("scheduler", ["ddim", "euler", "lms"])
def test_correct_img2img_and_inpaint_loops_match(sd_pipe, loop, scheduler):
    report, _ = traced(sd_pipe, loop, scheduler)
    assert report.first_divergence is None, str(report)


def test_the_courses_inpaint_loop_differs_at_its_last_step(sd_pipe):
    """Fresh noise per blend is followed; the skipped last blend (the pipeline blends the clean image) is shown."""
    report, _ = traced(sd_pipe, inpaint_loop, "euler", course=True)
    first = report.first_divergence
    assert (first.step, first.quantity, first.cause) == (4, "blend", None), str(report)
    assert all(row[5] < 1e-5 for row in report.rows[:-1]) and "clean image latents" in str(report)


MISTAKES = [  # (cause id, loop, scheduler, loop index where it shows first)
    ("init-noise-sigma-order", txt2img_loop, "euler", 0),
    ("missing-scale-model-input", txt2img_loop, "euler", 0),
    ("cfg-branches-swapped", txt2img_loop, "ddim", 0),
    ("cfg-formula", txt2img_loop, "ddim", 0),
    ("timesteps-mismatch", txt2img_loop, "ddim", 0),
    ("timesteps-mismatch", txt2img_loop, "euler", 0),
    ("clip-sample", txt2img_loop, "ddim", 0),
    ("decode-scaling-factor", txt2img_loop, "ddim", 3),
    ("inpaint-blend-timestep", inpaint_loop, "ddim", 0),
    ("img2img-start", img2img_loop, "ddim", 0),
    ("call-timestep", txt2img_loop, "euler", 0),
]


def test_every_cause_is_tested():
    assert {m[0] for m in MISTAKES} == set(CAUSES)


@pytest.mark.parametrize("cause,loop,scheduler,step", MISTAKES, ids=[f"{m[0]}-{m[2]}" for m in MISTAKES])
def test_each_mistake_is_named_at_its_step(sd_pipe, cause, loop, scheduler, step):
    report, _ = traced(sd_pipe, loop, scheduler, mistake=cause)
    first = report.first_divergence
    assert first is not None, str(report)
    assert (first.cause and first.cause.id, first.step) == (cause, step), str(report)
    assert first.measured.max_abs_diff > 0 if hasattr(first.measured, "max_abs_diff") else True
    assert cause in str(report)


def test_tracing_changes_no_bit(sd_pipe):
    for loop, scheduler in ((txt2img_loop, "euler_a"), (inpaint_loop, "lms"), (img2img_loop, "ddpm")):
        plain = loop(sd_pipe, scheduler, mistake="init-noise-sigma-order")
        _, under_trace = traced(sd_pipe, loop, scheduler, mistake="init-noise-sigma-order")
        assert all(torch.equal(a, b) for a, b in zip(plain, under_trace))


def test_stepper_takes_the_starting_noise_and_embeddings_as_diffusers_does(sd_pipe):
    """The reference's inputs: Stepper(latents=eps, prompt_embeds=...) is pipe(latents=eps, prompt_embeds=...)."""
    noise = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(5))
    text, negative = sd_pipe.encode_prompt("a red circle", "cpu", 1, True, "blurry")
    expected = sd_pipe(prompt_embeds=text, negative_prompt_embeds=negative, latents=noise, num_inference_steps=3,
                       guidance_scale=5.0, output_type="latent").images
    st = stepviz.Stepper(sd_pipe, seed=None, num_inference_steps=3, guidance_scale=5.0, scheduler="pndm",
                         latents=noise, prompt_embeds=text, negative_prompt_embeds=negative)
    st.run()
    assert torch.equal(st.latents, expected)


def test_stepviz_trace_starts_a_trace_even_after_its_modules_load(sd_pipe):
    import stepviz.trace.compare  # noqa: F401  (binds the name stepviz.trace to the package)
    from stepviz.trace.compare import Trace

    assert isinstance(stepviz.trace(sd_pipe), Trace)
    assert isinstance(stepviz.trace.trace(sd_pipe), Trace)
