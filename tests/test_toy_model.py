"""The shipped toy model: standard SD folder, loads offline, obeys its prompt."""

import json

import numpy as np
import pytest
import torch

from stepviz.toy.checker import check
from stepviz.models.folder_check import weight_files
from stepviz.models.loading import shipped_folder
from training.evaluate import accuracy_table, generate
from training.sources import load_toy_pipeline
from stepviz.toy.world import draw_scene

# one prompt per colour, shapes and backgrounds varied
PROMPTS = [
    "a red circle on a black background",
    "a green square on a white background",
    "a blue triangle on a black background",
    "a yellow circle on a white background",
    "a purple square on a black background",
    "a orange triangle on a white background",
]


@pytest.fixture(scope="module")
def pipe():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")  # the folder must load with no network
        yield load_toy_pipeline("toy")


def test_shipped_toy_is_a_standard_sd_pipeline_of_safetensors_parts():
    folder = shipped_folder("toy")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None] and index["feature_extractor"] == [None, None]
    weights = weight_files(folder)
    # vae, unet, text encoder, and the tiny preview decoder (AutoencoderTiny) that stepviz.render.preview uses
    assert {name.split("/")[0] for name, _ in weights} == {"vae", "unet", "text_encoder", "preview_decoder"}
    assert not list(folder.parent.rglob("*.bin"))
    assert sum(path.stat().st_size for _, path in weights) <= 25 * 2**20


def test_scaled_latents_have_unit_std_per_channel(pipe):
    scenes = [draw_scene(c, s, b, seed=i) for i, (c, s, b) in enumerate(
        [(c, s, b) for c in ("red", "green", "blue", "yellow", "purple", "orange")
         for s in ("circle", "square", "triangle") for b in ("black", "white")])]
    x = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        z = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
    std = z.std(dim=(0, 2, 3))
    assert pipe.vae.config.scaling_factor == 1.0
    assert torch.all((std > 0.6) & (std < 1.5)), std


def test_shipped_model_draws_the_prompted_colour(pipe):
    image = generate(pipe, [PROMPTS[0]], [0], guidance_scale=7.5)[0]
    assert check(image, PROMPTS[0])["colour_ok"]


def test_reduced_accuracy_table(pipe):
    table = accuracy_table(pipe, PROMPTS, seeds_per_prompt=1, guidance_scales=(7.5,))
    row = table[7.5]
    assert row["n"] == len(PROMPTS)
    assert row["colour"] >= 5 / 6 and row["background"] >= 5 / 6 and row["shape"] >= 4 / 6, row
    assert row["both"] <= min(row["colour"], row["shape"]) and row["shape"] <= row["template_shape"]
    assert row["preview_both"] >= 5 / 6, row  # the default preview names the decode's colour


def test_final_step_latents_decode_to_the_returned_pictures(pipe):
    from stepviz.render.preview import decode_images
    from training.evaluate import generate_with_final_step

    images, x_t, x0 = generate_with_final_step(pipe, PROMPTS[:2], [1, 2], guidance_scale=7.5, steps=5)
    assert x_t.shape == x0.shape == (2, 4, 8, 8)
    decoded = np.stack([np.asarray(p) for p in decode_images(pipe, x_t)])
    assert np.abs(decoded.astype(int) - images).max() <= 1
    assert "step" not in vars(pipe.scheduler)  # the recording wrapper is gone again


def test_a_scheduler_without_x0_hat_is_evaluated_without_preview_columns(pipe):
    from diffusers import DDIMScheduler, PNDMScheduler

    config = pipe.scheduler.config
    try:
        pipe.scheduler = PNDMScheduler.from_config(config)  # its step returns no pred_original_sample
        table = accuracy_table(pipe, PROMPTS[:2], seeds_per_prompt=1, guidance_scales=(7.5,), steps=4)
    finally:
        pipe.scheduler = DDIMScheduler.from_config(config)
    assert table[7.5]["n"] == 2 and "preview_both" not in table[7.5]


def test_the_toy_runs_ddim_as_its_own_scheduler():
    """Its pipeline's scheduler is DDIM (SD 1.x ships PNDM, which draws the toy's colours wrong at 25 steps)."""
    index = json.loads((shipped_folder("toy") / "model_index.json").read_text())
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]


def test_quick_preview_names_the_decodes_colour_on_every_colour(pipe):
    from stepviz.render.preview import decode_images, preview
    from stepviz.toy.checker import inspect
    from training.extra_channels import pixels_from_uint8
    from stepviz.toy.world import BACKGROUNDS, COLOURS

    scenes = [draw_scene(c, "square", b, seed=300 + i) for i, (c, b) in enumerate(
        [(c, b) for c in COLOURS for b in BACKGROUNDS])]
    with torch.no_grad():
        latents = pipe.vae.encode(pixels_from_uint8(np.stack([s.image for s in scenes]))).latent_dist.mean
        latents = latents * pipe.vae.config.scaling_factor
    for scene, z, full in zip(scenes, latents, decode_images(pipe, latents)):
        assert inspect(full)["colour"] == scene.colour
        assert inspect(preview(pipe, z[None], "approx"))["colour"] == scene.colour, scene.caption
