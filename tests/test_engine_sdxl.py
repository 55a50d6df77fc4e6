"""SDXL stepped bit-exact with diffusers' StableDiffusionXL(Img2Img|Inpaint)Pipeline; other pipelines refused."""

import diffusers
import pytest
import torch
from tiny import scene_image, square_mask, tiny_components, tiny_sdxl_components, tiny_sdxl_pipeline

from stepviz import Stepper
from stepviz.engine.checks import StepvizInputError
from stepviz.engine.schedulers import SCHEDULERS, make_scheduler

PROMPT = "a red circle on a black background"


@pytest.fixture(scope="module")
def xl():
    return tiny_sdxl_pipeline()


def reference(pipe_cls, base, scheduler, negative_prompt="blurry", **kwargs):
    pipe = getattr(diffusers, pipe_cls)(**base.components)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(scheduler, base.scheduler.config, pipeline_class=None)
    return pipe(prompt=PROMPT, negative_prompt=negative_prompt, guidance_scale=6.5, output_type="latent",
                generator=torch.Generator("cpu").manual_seed(7), **kwargs).images


def stepped(base, scheduler, negative_prompt="blurry", **kwargs):
    st = Stepper(base, prompt=PROMPT, negative_prompt=negative_prompt, guidance_scale=6.5, seed=7,
                 scheduler=scheduler, **kwargs)
    st.run()
    return st


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_sdxl_txt2img_bit_exact(xl, scheduler):
    kwargs = dict(num_inference_steps=4, height=32, width=32)
    expected = reference("StableDiffusionXLPipeline", xl, scheduler, **kwargs)
    assert torch.equal(stepped(xl, scheduler, **kwargs).latents, expected)


def test_sdxl_own_scheduler_and_empty_negative_prompt_as_the_pipeline(xl):
    """No negative prompt (None): SDXL base zeroes the uncond embeddings (force_zeros_for_empty_prompt)."""
    kwargs = dict(num_inference_steps=4, height=32, width=48)
    expected = xl(prompt=PROMPT, guidance_scale=6.5, output_type="latent",
                  generator=torch.Generator("cpu").manual_seed(7), **kwargs).images
    st = stepped(xl, None, negative_prompt=None, **kwargs)
    assert st.scheduler_name == "euler" and torch.equal(st.latents, expected)
    assert not st.conditioning.prompt_embeds[0].any()  # the uncond branch is zeros
    # what SDXL adds, recorded: both encoders side by side, the pooled embedding, the size conditioning
    assert st.prompt_embeds.shape == (2, 77, 40) and st.conditioning.text_embeds.shape == (2, 8)
    assert st.conditioning.time_ids.tolist() == [[32, 48, 0, 0, 32, 48]] * 2
    assert st.records[0].add_time_ids == (32.0, 48.0, 0.0, 0.0, 32.0, 48.0)
    assert st.conditioning.describe() == ("SDXL adds: pooled text embedding (1, 8), add_time_ids "
                                          "(32, 48, 0, 0, 32, 48) (original h, w, crop top, left, target h, w)")


@pytest.mark.parametrize("scheduler", ["ddim", "euler_a", "dpmpp_2m", "heun"])
def test_sdxl_img2img_bit_exact(xl, scheduler):
    kwargs = dict(num_inference_steps=6, image=scene_image(), strength=0.6)
    expected = reference("StableDiffusionXLImg2ImgPipeline", xl, scheduler, **kwargs)
    assert torch.equal(stepped(xl, scheduler, mode="img2img", **kwargs).latents, expected)


def test_sdxl_img2img_default_strength_is_the_pipelines(xl):
    kwargs = dict(num_inference_steps=10, image=scene_image())
    expected = reference("StableDiffusionXLImg2ImgPipeline", xl, "ddim", **kwargs)
    st = stepped(xl, "ddim", mode="img2img", **kwargs)
    assert len(st.records) == 3 and torch.equal(st.latents, expected)  # strength 0.3 of 10 steps


@pytest.mark.parametrize("scheduler,strength", [("ddim", None), ("euler", 0.7), ("lms", 1.0)])
def test_sdxl_inpaint_bit_exact(xl, scheduler, strength):
    kwargs = dict(num_inference_steps=5, image=scene_image(), mask_image=square_mask(), height=32, width=32)
    if strength is not None:
        kwargs["strength"] = strength
    expected = reference("StableDiffusionXLInpaintPipeline", xl, scheduler, **kwargs)
    assert torch.equal(stepped(xl, scheduler, mode="inpaint", **kwargs).latents, expected)


def test_sdxl_inpainting_model_bit_exact():
    base = diffusers.StableDiffusionXLInpaintPipeline(**tiny_sdxl_components(unet_in_channels=9))
    kwargs = dict(num_inference_steps=4, image=scene_image(), mask_image=square_mask(), height=32, width=32,
                  strength=1.0)
    expected = reference("StableDiffusionXLInpaintPipeline", base, "euler", **kwargs)
    st = stepped(base, "euler", mode="inpaint", **kwargs)
    assert torch.equal(st.latents, expected) and set(st.extra_channels) == {"mask", "masked_image_latents"}


def test_sdxl_has_no_depth_mode(xl):
    with pytest.raises(StepvizInputError, match="SDXL runs txt2img, img2img and inpaint"):
        Stepper(xl, prompt=PROMPT, mode="depth2img", image=scene_image())


def test_other_pipeline_classes_are_refused_in_one_line():
    other = diffusers.LatentConsistencyModelPipeline(**{k: v for k, v in tiny_components().items()})
    with pytest.raises(StepvizInputError) as caught:
        Stepper(other, prompt=PROMPT)
    message = str(caught.value)
    assert "LatentConsistencyModelPipeline" in message and "StableDiffusionXLPipeline" in message
    assert len(message.splitlines()) == 1


async def test_the_tui_steps_sdxl_and_shows_what_it_adds(xl):
    from stepviz.run.settings import RunSettings
    from stepviz.tui.app import StepvizApp

    app = StepvizApp(RunSettings(model="tiny-xl", steps=3, height=32, width=32), pipe=xl, graphics="halfcell")
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("space")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        status = str(screen.query_one("#status").render())
        assert "euler" in status and "step 1/3" in status and "cpu float32" in status
        assert "add_time_ids (32, 32, 0, 0, 32, 32)" in str(screen.query_one("PromptPanel").render())


def test_an_fp16_sdxl_vae_encodes_and_decodes_in_float32():
    """SDXL's VAE overflows in float16; its pipelines upcast it when its config says force_upcast."""
    from stepviz.render.preview import decode_images

    half = tiny_sdxl_pipeline()
    half.vae.register_to_config(force_upcast=True)
    half.to(torch.float16)
    seen = []
    for name in ("encode", "decode"):
        original = getattr(half.vae, name)

        def spy(x, *args, _original=original, **kwargs):
            seen.append((_original.__name__, half.vae.dtype, x.dtype))
            return _original(x, *args, **kwargs)
        setattr(half.vae, name, spy)
    st = Stepper(half, prompt=PROMPT, seed=1, num_inference_steps=2, scheduler="ddim", mode="img2img",
                 image=scene_image(), strength=1.0)
    st.image()
    decode_images(half, st.latents)
    assert seen == [(name, torch.float32, torch.float32) for name in ("encode", "decode", "decode")]
    assert half.vae.dtype == torch.float16 and st.latents.dtype == torch.float16  # put back after each use
