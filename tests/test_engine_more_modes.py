"""The inpainting model (9-channel UNet) and Depth2Img inside the stepper, bit-exact with diffusers."""

import diffusers
import pytest
import torch
from tiny import scene_image, square_mask, tiny_components

from stepviz import Stepper
from stepviz.engine.schedulers import make_scheduler

PROMPT = "a blue square on a white background"


def pipeline(cls_name, **components):
    pipe = getattr(diffusers, cls_name)(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def inpaint_pipe():
    return pipeline("StableDiffusionInpaintPipeline", **tiny_components(unet_in_channels=9))


@pytest.fixture(scope="module")
def depth_pipe():
    parts = tiny_components(unet_in_channels=5)
    for key in ("safety_checker", "requires_safety_checker"):
        parts.pop(key)
    return pipeline("StableDiffusionDepth2ImgPipeline", depth_estimator=None, **parts)


def depth_map():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    return (1.0 + xx + 0.5 * yy)[None]


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "dpmpp_2m"])
def test_inpainting_model_bit_exact(inpaint_pipe, scheduler):
    kwargs = dict(image=scene_image(), mask_image=square_mask(), height=32, width=32, num_inference_steps=5,
                  guidance_scale=5.0)
    inpaint_pipe.scheduler = make_scheduler(scheduler, inpaint_pipe.scheduler.config)
    expected = inpaint_pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(2), output_type="latent",
                            **kwargs).images
    st = Stepper(inpaint_pipe, prompt=PROMPT, seed=2, scheduler=scheduler, mode="inpaint", **kwargs)
    records = st.run()
    assert torch.equal(st.latents, expected)
    assert records[0].masked_image_latents.shape == (1, 4, 4, 4) and records[0].background is None
    assert list(st.extra_channels) == ["mask", "masked_image_latents"]
    assert st.extra_channels["masked_image_latents"] is records[0].masked_image_latents


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "heun"])
def test_depth2img_bit_exact(depth_pipe, scheduler):
    kwargs = dict(image=scene_image(), depth_map=depth_map(), strength=0.7, num_inference_steps=6,
                  guidance_scale=5.0)
    depth_pipe.scheduler = make_scheduler(scheduler, depth_pipe.scheduler.config)
    expected = depth_pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(4), output_type="latent",
                          **kwargs).images
    st = Stepper(depth_pipe, prompt=PROMPT, seed=4, scheduler=scheduler, mode="depth2img", **kwargs)
    records = st.run()
    assert torch.equal(st.latents, expected)
    depth = records[0].depth
    assert depth.shape == (1, 1, 4, 4) and depth.min() == -1 and depth.max() == 1
    assert list(st.extra_channels) == ["depth"] and st.extra_channels["depth"] is depth


def test_depth2img_without_depth_or_estimator_is_a_clear_error(depth_pipe):
    from stepviz import StepvizInputError

    with pytest.raises(StepvizInputError, match="depth_map="):
        Stepper(depth_pipe, prompt=PROMPT, mode="depth2img", image=scene_image())
