"""Quick previews: a model folder's tiny decoder is used when present, the linear factors otherwise."""

import json
from types import SimpleNamespace

import numpy as np
import torch
from diffusers import AutoencoderTiny

from stepviz.engine.pipeline_facts import facts_of
from stepviz.render.preview import (
    LATENT_RGB_FILE,
    PREVIEW_DECODER_DIR,
    SD_LATENT_RGB_FACTORS,
    approx_rgb_image,
    preview,
    tiny_decoder_images,
)

TINY_CONFIG = dict(encoder_block_out_channels=(4, 4), num_encoder_blocks=(1, 1), decoder_block_out_channels=(8, 8),
                   num_decoder_blocks=(1, 0), latent_channels=4)


class FolderPipe:
    """A stand-in for a pipeline loaded from `folder` (its facts name the folder)."""


def _folder_pipe(folder):
    pipe = FolderPipe()
    facts_of(pipe).folder = str(folder)
    return pipe


def test_approx_uses_the_folders_tiny_decoder_when_present(tmp_path):
    torch.manual_seed(0)
    decoder = AutoencoderTiny(**TINY_CONFIG).eval()
    decoder.save_pretrained(tmp_path / PREVIEW_DECODER_DIR, safe_serialization=True)
    latents = torch.randn(1, 4, 6, 10)
    picture = preview(_folder_pipe(tmp_path), latents, "approx")
    assert picture.size == (80, 48)  # 8x the latents, width x height
    assert np.array_equal(np.asarray(picture), np.asarray(tiny_decoder_images(latents, decoder)[0]))
    linear = approx_rgb_image(latents, torch.tensor(SD_LATENT_RGB_FACTORS), torch.zeros(3))
    assert not np.array_equal(np.asarray(picture), np.asarray(linear))


def test_approx_falls_back_to_the_linear_factors_with_their_bias(tmp_path):
    factors = [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]]
    (tmp_path / LATENT_RGB_FILE).write_text(json.dumps({"factors": factors, "bias": [0.5, -1.0, 0.0]}))
    latents = torch.zeros(1, 4, 2, 2)
    picture = np.asarray(preview(_folder_pipe(tmp_path), latents, "approx"))
    # rgb = 0 @ F + b, mapped from [-1, 1] to [0, 255]
    assert picture.shape == (16, 16, 3) and tuple(picture[8, 8]) == (191, 0, 128)


def test_record_previews_decode_both_pictures_in_one_call_as_preview_does(tmp_path):
    from stepviz.render.preview import record_previews

    torch.manual_seed(1)
    AutoencoderTiny(**TINY_CONFIG).eval().save_pretrained(tmp_path / PREVIEW_DECODER_DIR, safe_serialization=True)
    pipe = _folder_pipe(tmp_path)
    record = SimpleNamespace(latents=torch.randn(1, 4, 4, 4) * 3, pred_original_sample=torch.randn(1, 4, 4, 4),
                             family="sigma", sigma_next=2.0)
    x_t, x0 = record_previews(pipe, record, "approx")
    assert np.array_equal(np.asarray(x_t), np.asarray(preview(pipe, record.latents, "approx", "sigma", 2.0)))
    assert np.array_equal(np.asarray(x0), np.asarray(preview(pipe, record.pred_original_sample, "approx")))
