"""The training script runs end to end on a tiny config, and its parts behave."""

import json

import numpy as np
import torch

from training import components
from training.reporting import fit_latent_rgb
from training.train import main as train_main
from training.train_vae import fold_latent_normalisation


def test_fold_latent_normalisation_keeps_decoding_and_unit_std():
    torch.manual_seed(0)
    vae = components.make_vae(components.TINY, 32).eval()
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = vae.encode(x).latent_dist
        decoded_before = vae.decode(before.mean).sample
        mean, std = before.mean.mean(dim=(0, 2, 3)), before.mean.std(dim=(0, 2, 3))
        fold_latent_normalisation(vae, mean, std)
        after = vae.encode(x).latent_dist
        decoded_after = vae.decode(after.mean).sample
    torch.testing.assert_close(decoded_after, decoded_before, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after.mean.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after.std, before.std / std.view(1, 4, 1, 1), atol=1e-5, rtol=1e-4)
    assert vae.config.scaling_factor == 1.0


def test_fit_latent_rgb_recovers_a_linear_map():
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(20, 4, 4, 4, generator=generator)
    factors = torch.randn(4, 3, generator=generator)
    rgb = torch.einsum("nchw,cd->ndhw", latents, factors) + torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1)
    images = rgb.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)
    fitted, bias, rms = fit_latent_rgb(latents, images)
    assert np.allclose(fitted, factors.numpy(), atol=1e-4) and np.allclose(bias, [0.1, -0.2, 0.3], atol=1e-4)
    assert rms < 1e-4


def test_tiny_training_run_writes_a_loadable_pipeline(tmp_path, monkeypatch):
    out = tmp_path / "toy"
    train_main(["--out", str(out), "--tiny", "--size", "32", "--threads", "1"])
    index = json.loads((out / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None] and index["feature_extractor"] == [None, None]
    for part in ("unet", "vae", "text_encoder"):
        assert list((out / part).glob("*.safetensors")) and not list((out / part).glob("*.bin"))
    rgb = json.loads((out / "latent_rgb.json").read_text())
    assert np.asarray(rgb["factors"]).shape == (4, 3) and len(rgb["bias"]) == 3
    assert (out / "loss_curve.png").stat().st_size > 0 and "VAE" in (out / "evaluation.md").read_text()
    scheduler = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["beta_schedule"] == "scaled_linear" and scheduler["steps_offset"] == 1
    assert scheduler["beta_start"] == 0.00085 and scheduler["beta_end"] == 0.012
    assert scheduler["set_alpha_to_one"] is False and scheduler["clip_sample"] is False
    from diffusers import DDIMScheduler

    assert DDIMScheduler.from_config(scheduler).config.clip_sample is False

    # resuming a finished run trains nothing more and writes the same weights
    before = (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    train_main(["--out", str(out), "--tiny", "--size", "32", "--threads", "1", "--resume"])
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == before

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(out))
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on a black background", num_inference_steps=2, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.shape == (32, 32, 3)


def test_training_a_wider_unet_runs(tmp_path):
    out = tmp_path / "toy"
    train_main(["--out", str(out), "--tiny", "--size", "32", "--threads", "1", "--unet-channels", "16,32"])
    assert list((out / "unet").glob("*.safetensors"))
    assert json.loads((out / "unet" / "config.json").read_text())["block_out_channels"] == [16, 32]


def test_a_fine_tune_starts_from_the_given_model_and_keeps_its_vae(tmp_path):
    from safetensors.torch import load_file

    base, tuned = tmp_path / "base", tmp_path / "tuned"
    train_main(["--out", str(base), "--tiny", "--size", "32", "--threads", "1", "--unet-channels", "16,32"])
    train_main(["--out", str(tuned), "--tiny", "--size", "32", "--threads", "1", "--init-from", str(base),
                "--vae-from", str(base), "--unet-lr", "0"])  # no learning: what it starts from is what it saves
    parts = (("unet", "diffusion_pytorch_model"), ("text_encoder", "model"), ("vae", "diffusion_pytorch_model"))
    for part, name in parts:
        before, after = (load_file(folder / part / f"{name}.safetensors") for folder in (base, tuned))
        assert before.keys() == after.keys() and all(before[k].equal(after[k]) for k in before), part
    assert "fine-tuned from" in (tuned / "TRAINING.md").read_text()


def test_shape_weight_is_five_on_the_shape_and_one_around_it():
    from training.extra_channels import pixels_from_uint8
    from training.train_preview import shape_weight
    from stepviz.toy.world import draw_scene

    scenes = [draw_scene("blue", "square", "white", seed=4), draw_scene("yellow", "circle", "black", seed=5)]
    weight = shape_weight(pixels_from_uint8(np.stack([s.image for s in scenes])))
    for scene, w in zip(scenes, weight[:, 0]):
        assert set(torch.unique(w).tolist()) == {1.0, 5.0}
        assert (w[torch.from_numpy(scene.mask)] == 5).float().mean() > 0.97
        assert (w[~torch.from_numpy(scene.mask)] == 1).float().mean() > 0.97


def test_tiny_decoder_training_learns_a_non_linear_colour_code(tmp_path):
    from diffusers import AutoencoderTiny

    from training.train_preview import train_tiny_decoder

    torch.manual_seed(0)
    # each picture one flat colour, coded in the latents' first channel by its sign: not a linear map of it
    code = torch.randn(64, 1, 1, 1)
    latents = torch.cat([code.abs().expand(64, 1, 4, 4), torch.sign(code).expand(64, 1, 4, 4),
                         torch.zeros(64, 2, 4, 4)], dim=1)
    decoded = torch.where(code > 0, torch.tensor([1.0, -1, -1]).view(1, 3, 1, 1),
                          torch.tensor([-1.0, -1, 1]).view(1, 3, 1, 1)).expand(64, 3, 32, 32)
    tiny = AutoencoderTiny(encoder_block_out_channels=(4, 4, 4, 4), num_encoder_blocks=(0, 0, 0, 0),
                           decoder_block_out_channels=(8, 8), num_decoder_blocks=(1, 0))
    losses = train_tiny_decoder(tiny, latents, decoded, decoded[:8], latents[:8], steps=60, batch=8, lr=1e-2,
                                checkpoint=tmp_path / "preview_decoder.pt")
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:3])
