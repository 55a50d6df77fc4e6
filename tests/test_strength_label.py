"""The start picture's caption names the strength the run used: the pipeline's own default when none was given
(SDXL img2img 0.3, SD 0.8), read from the engine, never from a second table."""

from tiny import scene_image, tiny_pipeline, tiny_sdxl_components

from stepviz.run.session import run_view
from stepviz.tui.widgets.preview_panel import start_labels


def caption_of(pipe, mode="img2img", strength=None):
    from stepviz import Stepper

    stepper = Stepper(pipe, prompt="a red circle", num_inference_steps=10, mode=mode, image=scene_image(32),
                      strength=strength)
    view = run_view("main", stepper, "tiny")
    return start_labels(view.mode, view.strength)[0]


def test_an_sdxl_img2img_run_is_labelled_with_its_own_default_strength():
    import diffusers

    xl = diffusers.StableDiffusionXLImg2ImgPipeline(**tiny_sdxl_components())
    assert caption_of(xl) == "x_start: the input noised (strength 0.3)"


def test_an_sd_img2img_run_says_0_8_or_what_was_given():
    pipe = tiny_pipeline()
    assert caption_of(pipe) == "x_start: the input noised (strength 0.8)"
    assert caption_of(pipe, strength=0.45) == "x_start: the input noised (strength 0.45)"
