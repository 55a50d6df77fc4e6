"""The trace names the call that got another t (the UNet given the loop index, step() given the next t) and
shows both t's in its table; a scheduler built without from_config is named by the config keys that differ."""

from diy_loops import txt2img_loop

import stepviz


def traced(pipe, mistake, scheduler="ddim"):
    with stepviz.trace(pipe) as tr:
        txt2img_loop(pipe, scheduler, mistake=mistake, steps=4)
    return tr.compare()


def test_the_unet_given_the_loop_index(tiny_pipe):
    report = traced(tiny_pipe, "unet-given-i")
    first = report.first_divergence
    assert (first.step, first.quantity, first.cause.id) == (0, "timestep", "call-timestep")
    assert "pipe.unet got t=0 (the loop index i = 0?)" in first.cause.explanation
    text = str(report)
    assert "0|" in text and "t as unet|step" in text


def test_step_given_the_next_timestep(tiny_pipe):
    report = traced(tiny_pipe, "step-given-next-t")
    first = report.first_divergence
    assert (first.step, first.cause.id) == (0, "call-timestep")
    assert "scheduler.step got t=" in first.cause.explanation and "pipe.unet" in first.cause.explanation


def test_a_default_scheduler_names_the_config_that_differs(tiny_pipe):
    first = traced(tiny_pipe, "timesteps-mismatch").first_divergence
    assert first.cause.id == "timesteps-mismatch"
    text = first.cause.explanation
    assert "from_config" in text and "beta_schedule 'linear' vs 'scaled_linear'" in text
    assert "steps_offset 0 vs 1" in text and "clip_sample True vs False" in text
    assert "does not walk" not in text


def test_a_ddpm_step_without_a_generator_is_said_to_be_unreproducible(tiny_pipe):
    def loop(generator_given):
        with stepviz.trace(tiny_pipe) as tr:
            txt2img_loop(tiny_pipe, "ddpm", steps=3) if generator_given else _ddpm_without_generator(tiny_pipe)
        return str(tr.compare())

    assert "cannot be reproduced from a seed" not in loop(True)
    text = loop(False)
    assert "the loop matches the pipeline" in text and "drew random noise without generator= at 3 of 3" in text


def _ddpm_without_generator(pipe):
    import torch
    from diffusers import DDPMScheduler
    from diy_loops import encode

    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    embeddings = encode(pipe, "a red circle")
    latents = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(0))
    scheduler.set_timesteps(3)
    for t in scheduler.timesteps:
        with torch.no_grad():
            eps_u, eps_t = pipe.unet(torch.cat([latents] * 2), t, encoder_hidden_states=embeddings).sample.chunk(2)
        latents = scheduler.step(eps_u + 7.5 * (eps_t - eps_u), t, latents).prev_sample


def test_a_loop_without_cfg_is_compared_with_the_pipelines_run_without_guidance(tiny_pipe):
    import torch
    from diffusers import DDIMScheduler

    with stepviz.trace(tiny_pipe) as tr:
        scheduler = DDIMScheduler.from_config(tiny_pipe.scheduler.config)
        embeddings = tiny_pipe.encode_prompt("a red circle", "cpu", 1, False)[0]
        latents = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(0))
        scheduler.set_timesteps(4)
        guidance_scale = 7.5  # set, and never used: the loop makes no uncond branch  # noqa: F841
        for t in scheduler.timesteps:
            with torch.no_grad():
                eps = tiny_pipe.unet(scheduler.scale_model_input(latents, t), t,
                                     encoder_hidden_states=embeddings).sample
            latents = scheduler.step(eps, t, latents).prev_sample
    report = tr.compare()
    assert report.first_divergence is None, str(report)
    assert report.run.guidance_scale == 1 and "prompt's branch alone (no CFG)" in str(report)
