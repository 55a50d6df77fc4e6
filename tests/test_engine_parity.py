"""An unedited Stepper run gives bit-for-bit the latents of diffusers' own pipelines."""

import diffusers
import pytest
import torch
from tiny import scene_image, square_mask

from stepviz import Stepper
from stepviz.engine.schedulers import SCHEDULERS, make_scheduler

PROMPT = "a red circle on a black background"


def reference(pipe_cls, base, scheduler, **kwargs):
    pipe = getattr(diffusers, pipe_cls)(**base.components)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(scheduler, base.scheduler.config)
    return pipe(prompt=PROMPT, negative_prompt="blurry", guidance_scale=6.5, output_type="latent",
                generator=torch.Generator().manual_seed(7), **kwargs).images


def stepped(base, scheduler, **kwargs):
    st = Stepper(base, prompt=PROMPT, negative_prompt="blurry", guidance_scale=6.5, seed=7, scheduler=scheduler,
                 **kwargs)
    records = st.run()
    assert records and st.done
    return st.latents


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_txt2img_bit_exact(tiny_pipe, scheduler):
    kwargs = dict(num_inference_steps=5, height=32, width=32)
    expected = reference("StableDiffusionPipeline", tiny_pipe, scheduler, **kwargs)
    assert torch.equal(stepped(tiny_pipe, scheduler, **kwargs), expected)


@pytest.mark.parametrize("scheduler", ["ddim", "euler_a", "heun", "dpmpp_2m"])
def test_img2img_bit_exact(tiny_pipe, scheduler):
    kwargs = dict(num_inference_steps=6, image=scene_image(), strength=0.6)
    expected = reference("StableDiffusionImg2ImgPipeline", tiny_pipe, scheduler, **kwargs)
    assert torch.equal(stepped(tiny_pipe, scheduler, mode="img2img", **kwargs), expected)


@pytest.mark.parametrize("scheduler,strength", [("ddim", None), ("euler", 0.7), ("euler_a", None), ("lms", 0.8)])
def test_diy_inpaint_bit_exact(tiny_pipe, scheduler, strength):
    kwargs = dict(num_inference_steps=5, image=scene_image(), mask_image=square_mask(), height=32, width=32)
    if strength is not None:
        kwargs["strength"] = strength
    expected = reference("StableDiffusionInpaintPipeline", tiny_pipe, scheduler, **kwargs)
    assert torch.equal(stepped(tiny_pipe, scheduler, mode="inpaint", **kwargs), expected)


def test_inpaint_records_the_blend_inputs(tiny_pipe):
    st = Stepper(tiny_pipe, prompt=PROMPT, seed=1, num_inference_steps=4, mode="inpaint", image=scene_image(),
                 mask_image=square_mask(), height=32, width=32)
    rec = st.step()
    assert rec.mask.shape == (1, 1, 4, 4) and set(rec.mask.unique().tolist()) == {0.0, 1.0}
    assert rec.background.shape == rec.latents.shape
    assert st.extra_channels == {}  # the 4-channel UNet sees x_t alone; the mask acts in the blend (step 6)
    keep = rec.mask == 0
    # outside the mask the result is exactly the re-noised original
    assert torch.equal(rec.latents.masked_select(keep.expand_as(rec.latents)),
                       rec.background.masked_select(keep.expand_as(rec.background)))
