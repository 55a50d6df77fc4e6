"""The pipeline's own scheduler by default, and named schedulers built as the pipeline's constructor builds them."""

import diffusers
import pytest
import torch
from tiny import tiny_components

from stepviz import Stepper
from stepviz.engine.schedulers import make_scheduler

PROMPT = "a red circle on a black background"
RUN = dict(prompt=PROMPT, negative_prompt="blurry", guidance_scale=6.5, num_inference_steps=5, height=32, width=32)


def pipeline_with(scheduler_factory, **component_kwargs):
    components = tiny_components(**component_kwargs)
    components["scheduler"] = scheduler_factory(components["scheduler"].config)
    pipe = diffusers.StableDiffusionPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pipe_latents(pipe):
    return pipe(**RUN, output_type="latent", generator=torch.Generator("cpu").manual_seed(7)).images


OWN_SCHEDULERS = {
    "pndm": lambda config: diffusers.PNDMScheduler.from_config(config),
    "dpmpp_2m_karras": lambda config: diffusers.DPMSolverMultistepScheduler.from_config(config,
                                                                                     use_karras_sigmas=True),
    "euler_trailing": lambda config: diffusers.EulerDiscreteScheduler.from_config(config,
                                                                               timestep_spacing="trailing"),
}


@pytest.mark.parametrize("own", list(OWN_SCHEDULERS))
def test_default_is_the_pipelines_own_scheduler(own):
    pipe = pipeline_with(OWN_SCHEDULERS[own])
    st = Stepper(pipe, seed=7, **RUN)
    assert type(st.scheduler) is type(pipe.scheduler) and st.scheduler is not pipe.scheduler
    st.run()
    assert torch.equal(st.latents, pipe_latents(pipe))


def test_own_scheduler_is_named_and_left_untouched():
    pipe = pipeline_with(OWN_SCHEDULERS["dpmpp_2m_karras"])
    st = Stepper(pipe, seed=7, **RUN)
    st.step()
    assert st.scheduler_name == "dpmpp_2m" and st.records[0].scheduler == "dpmpp_2m"
    assert pipe.scheduler.num_inference_steps is None  # the pipeline's instance was never set up or stepped


def _config_without_clip_sample(config):
    """What PNDMScheduler.save_pretrained writes: no clip_sample key (and an old steps_offset of 0)."""
    plain = {key: value for key, value in dict(config).items() if key != "clip_sample"}
    return {**plain, "steps_offset": 0}


@pytest.mark.parametrize("name", ["ddim", "ddpm"])
def test_named_scheduler_from_a_config_without_clip_sample_matches_the_pipeline(name):
    pndm = lambda config: diffusers.PNDMScheduler.from_config(_config_without_clip_sample(config))  # noqa: E731
    pipe = pipeline_with(pndm)
    assert "clip_sample" not in pipe.scheduler.config
    bare = make_scheduler(name, pipe.scheduler.config, pipeline_class=None)
    assert bare.config.clip_sample is True  # what from_config alone gives: x0-hat clamped to [-1, 1]
    # the reference: the pipeline's constructor given that scheduler (it turns clip_sample off, steps_offset to 1)
    components = {**pipe.components, "scheduler": type(bare).from_config(pipe.scheduler.config)}
    reference = diffusers.StableDiffusionPipeline(**components)
    reference.set_progress_bar_config(disable=True)
    assert reference.scheduler.config.clip_sample is False
    st = Stepper(pipe, seed=7, scheduler=name, **RUN)
    assert st.scheduler.config.clip_sample is False and st.scheduler.config.steps_offset == 1
    st.run()
    assert torch.equal(st.latents, pipe_latents(reference))
    unfixed = Stepper(pipe, seed=7, scheduler=bare, **RUN)
    unfixed.run()
    assert not torch.equal(unfixed.latents, st.latents)  # the clamp matters on these latents


@pytest.mark.parametrize("name", ["ddim", "euler", "dpmpp_2m", "heun"])
def test_sd2_v_prediction_bit_exact(name):
    pipe = pipeline_with(lambda config: make_scheduler(name, config), prediction_type="v_prediction", sd2=True)
    assert pipe.unet.config.use_linear_projection and pipe.unet.config.upcast_attention
    st = Stepper(pipe, seed=7, **RUN)
    st.run()
    assert torch.equal(st.latents, pipe_latents(pipe))
