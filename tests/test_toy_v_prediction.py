"""The v-prediction fine-tune of the toy (training/train_v_prediction.py): its target is diffusers' velocity, and a
tiny run writes a loadable pipeline that says v_prediction, with the base's VAE and text encoder untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tiny import save_tiny_toy_base
from training import components
from training.train_v_prediction import main as train_main, velocity


def test_the_target_is_diffusers_velocity_and_gives_x0_back():
    scheduler = components.make_train_scheduler()
    x_0, eps = torch.randn(3, 4, 4, 4), torch.randn(3, 4, 4, 4)
    t = torch.tensor([10, 500, 990])
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    v = velocity(x_0, eps, a)
    torch.testing.assert_close(v, scheduler.get_velocity(x_0, eps, t))
    x_t = a.sqrt() * x_0 + (1 - a).sqrt() * eps
    torch.testing.assert_close(a.sqrt() * x_t - (1 - a).sqrt() * v, x_0)  # DDIM's x0-hat for v_prediction


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy-v")
    save_tiny_toy_base(root)
    return root


def test_a_tiny_run_writes_a_v_prediction_pipeline(tiny_base):
    from diffusers import StableDiffusionPipeline

    out = tiny_base / "v"
    train = ["--base", str(tiny_base / "base"), "--out", str(out), "--steps", "3", "--batch", "4", "--scenes", "8"]
    train_main(train + ["--until", "2"])  # stopped early: nothing saved yet
    assert not (out / "model_index.json").exists() and (out / "scratch" / "unet.pt").exists()
    train_main(train + ["--resume"])
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert "--steps 3" in (out / "TRAINING.md").read_text() and (out / "loss_curve.png").exists()
    pipe = StableDiffusionPipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    base = StableDiffusionPipeline.from_pretrained(tiny_base / "base")
    for mine, theirs in ((pipe.vae, base.vae), (pipe.text_encoder, base.text_encoder)):
        for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            torch.testing.assert_close(a, b, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(pipe.unet.state_dict().values(),
                                                      base.unet.state_dict().values()))
    image = pipe("a red circle on a black background", num_inference_steps=2, height=32, width=32,
                 generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert image.shape == (32, 32, 3) and np.isfinite(image).all()
