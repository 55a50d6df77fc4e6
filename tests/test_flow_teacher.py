"""The flow trainer's teacher: a v-prediction toy read as a flow velocity. The conversion between the flow path
and the VP path must be exact: a teacher that knew x_0 and eps would give eps - x_0."""

import numpy as np
import pytest
import torch

from training.dataset import CAPTIONS
from training.flow_teacher import VelocityTeacher


@pytest.fixture(scope="module")
def teacher():
    return VelocityTeacher("toy-v", CAPTIONS + [""])


def test_the_fractional_timestep_lands_on_the_integer_one_whose_alpha_it_is_given(teacher):
    from diffusers import DDIMScheduler

    from training.sources import part

    alphas = DDIMScheduler.from_pretrained(part("toy-v", "scheduler")).alphas_cumprod
    steps = torch.tensor([0, 1, 250, 500, 998, 999])
    assert torch.allclose(teacher.timestep(alphas[steps]), steps.float(), atol=1e-3)
    between = teacher.timestep(((alphas[500].log() + alphas[501].log()) / 2).exp().view(1))
    assert 500 < float(between) < 501


def test_a_teacher_that_knows_x0_and_eps_gives_eps_minus_x0(teacher):
    generator = torch.Generator().manual_seed(0)
    x_0, eps = torch.randn(2, 3, 4, 8, 8, generator=generator)
    sigma = torch.tensor([0.1, 0.5, 0.9])
    s = sigma.view(-1, 1, 1, 1)
    x_t = (1 - s) * x_0 + s * eps

    class KnowsTheAnswer:  # the true v_vp = sqrt(a) eps - sqrt(1 - a) x_0 at the teacher's own scale
        def __call__(self, x_vp, timestep, encoder_hidden_states):
            c = 1 / ((1 - s) ** 2 + s**2).sqrt()
            alpha = ((1 - s) * c) ** 2
            assert torch.allclose(x_vp, alpha.sqrt() * x_0 + (1 - alpha).sqrt() * eps, atol=1e-5)
            return type("Out", (), {"sample": alpha.sqrt() * eps - (1 - alpha).sqrt() * x_0})

    teacher_unet, teacher.unet = teacher.unet, KnowsTheAnswer()
    try:
        assert torch.allclose(teacher.velocity(x_t, sigma, torch.tensor([0, 1, 2])), eps - x_0, atol=1e-5)
    finally:
        teacher.unet = teacher_unet


def test_the_teacher_covers_only_the_noise_levels_it_was_trained_on(teacher):
    covered = teacher.covers(torch.tensor([0.0, 0.5, 0.9, 0.95, 1.0]))
    assert covered.tolist() == [True, True, True, False, False]


def test_a_teacher_that_does_not_predict_v_is_refused():
    with pytest.raises(SystemExit, match="the teacher must predict v"):
        VelocityTeacher("toy", CAPTIONS + [""])


def test_the_guidance_weight_without_a_teacher_is_refused_in_one_line(capsys):
    from training.train_flow import parse_args

    with pytest.raises(SystemExit) as stopped:
        parse_args(["--out", "unused", "--guidance-weight", "20"])
    assert stopped.value.code == 2
    assert "--guidance-weight 20.0 needs --teacher" in capsys.readouterr().err


def test_a_tiny_run_with_a_teacher_and_the_guidance_weight_writes_a_flow_pipeline(tmp_path):
    import json
    import shutil

    from tiny import save_tiny_toy_base
    from training.sources import load_flow_pipeline
    from training.train_flow import main as train_main

    save_tiny_toy_base(tmp_path)
    shutil.copytree(tmp_path / "base", tmp_path / "v")  # the same random UNet, read as a v-prediction teacher
    config = tmp_path / "v" / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "prediction_type": "v_prediction"}))
    out = tmp_path / "flow"
    train_main(["--base", str(tmp_path / "base"), "--out", str(out), "--steps", "2", "--batch", "4", "--scenes", "8",
                "--teacher", str(tmp_path / "v"), "--guidance-weight", "5", "--min-radius", "0.2", "--warmup", "1"])
    pipe = load_flow_pipeline(out / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    size = pipe.vae.config.sample_size
    image = pipe("a red circle on a black background", num_inference_steps=2, height=size, width=size,
                 generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert image.shape == (size, size, 3) and np.isfinite(image).all()

    # --snapshot --raw: the checkpoint's own networks (what the next run warm-starts from), not the EMA
    from safetensors.torch import load_file
    from training.checkpoint import load_checkpoint

    state = load_checkpoint(out / "scratch" / "flow.pt")
    common = ["--base", str(tmp_path / "base"), "--out", str(out), "--snapshot"]
    train_main(common + ["--raw"])
    train_main(common)
    weights = {kind: load_file(out / f"{kind}-step2" / "transformer" / "diffusion_pytorch_model.safetensors")
               for kind in ("raw", "pipeline")}
    assert all(torch.equal(weights["raw"][key], value) for key, value in state["transformer"].items())
    assert any(not torch.equal(weights["pipeline"][key], value) for key, value in state["transformer"].items())


def test_raw_without_snapshot_is_refused_in_one_line(capsys):
    from training.train_flow import parse_args

    with pytest.raises(SystemExit) as stopped:
        parse_args(["--out", "unused", "--raw"])
    assert stopped.value.code == 2
    assert "--raw goes with --snapshot" in capsys.readouterr().err


def test_a_warm_start_that_is_not_a_flow_pipeline_is_refused_in_one_line(tmp_path):
    from training.train_flow import build_networks, parse_args

    args = parse_args(["--out", str(tmp_path / "out"), "--warm-start", str(tmp_path)])
    with pytest.raises(SystemExit, match="no transformer/diffusion_pytorch_model.safetensors there"):
        build_networks(args)
