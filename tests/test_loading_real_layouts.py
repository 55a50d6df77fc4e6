"""Checkpoints as people have them: fp16-only folders, absent safety checkers, other pipelines; --device/--dtype."""

from __future__ import annotations

import json
import shutil

import diffusers
import pytest
import torch

from stepviz import Stepper
from stepviz.cli import main
from stepviz.engine.pipeline_facts import facts_of
from stepviz.models import ModelLoadError, load_pipeline

RUN = dict(prompt="a red circle", negative_prompt="", guidance_scale=5.0, num_inference_steps=4, height=32, width=32)


@pytest.fixture(scope="module")
def fp16_model_dir(tiny_pipe, tmp_path_factory):
    """What an fp16-only download looks like: every weight file named *.fp16.safetensors."""
    folder = tmp_path_factory.mktemp("fp16-only")
    tiny_pipe.save_pretrained(folder, safe_serialization=True, variant="fp16")
    assert not list(folder.glob("unet/diffusion_pytorch_model.safetensors"))
    return folder


def test_an_fp16_variant_folder_loads_and_steps_bit_exact(fp16_model_dir):
    pipe = load_pipeline(fp16_model_dir, device="cpu", dtype="float32")
    assert any("fp16 variant" in notice for notice in facts_of(pipe).notices)
    reference = diffusers.StableDiffusionPipeline.from_pretrained(fp16_model_dir, variant="fp16",
                                                                  dtype=torch.float32, local_files_only=True)
    reference.set_progress_bar_config(disable=True)
    expected = reference(**RUN, output_type="latent", generator=torch.Generator("cpu").manual_seed(3)).images
    st = Stepper(pipe, seed=3, **RUN)
    st.run()
    assert torch.equal(st.latents, expected)
    assert any("fp16 variant" in notice for notice in st.notices)  # the TUI and the export show it


def test_a_variant_that_is_not_there_is_named(tiny_model_dir):
    with pytest.raises(ModelLoadError, match=r"variant='fp16': .*unet has no \*\.fp16\.safetensors"):
        load_pipeline(tiny_model_dir, device="cpu", variant="fp16")


def test_absent_safety_checker_and_feature_extractor_are_skipped(tiny_model_dir, tmp_path):
    folder = tmp_path / "with-checker"
    shutil.copytree(tiny_model_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    index["requires_safety_checker"] = True
    (folder / "model_index.json").write_text(json.dumps(index))
    pipe = load_pipeline(folder, device="cpu")
    assert pipe.safety_checker is None and pipe.feature_extractor is None
    (notice,) = facts_of(pipe).notices
    assert "safety_checker and feature_extractor" in notice and "absent" in notice and len(notice.splitlines()) == 1


def test_another_pipeline_class_is_refused_in_one_line(tiny_model_dir, tmp_path):
    folder = tmp_path / "other"
    shutil.copytree(tiny_model_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionControlNetPipeline"}))
    with pytest.raises(ModelLoadError) as caught:
        load_pipeline(folder, device="cpu")
    message = str(caught.value)
    assert "StableDiffusionControlNetPipeline" in message and "StableDiffusionXLPipeline" in message
    assert len(message.splitlines()) == 1


def test_device_and_dtype_auto_on_a_cpu_machine(tiny_model_dir):
    pipe = load_pipeline(tiny_model_dir)  # auto, auto
    assert pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32
    pipe = load_pipeline(tiny_model_dir, device="cpu", dtype="bf16")
    assert pipe.unet.dtype == torch.bfloat16


def test_the_seed_draws_the_same_noise_whatever_the_device(tiny_pipe):
    """The starting noise comes from a CPU generator by default, as a pipeline given torch.Generator('cpu')."""
    st = Stepper(tiny_pipe, seed=11, **RUN)
    assert st.generator.device.type == "cpu"
    expected = torch.randn(st.latents.shape, generator=torch.Generator("cpu").manual_seed(11))
    assert torch.equal(st.latents, expected * st.scheduler.init_noise_sigma)
    # the engine's generator follows the device only when asked
    assert Stepper(tiny_pipe, seed=11, generator_device=None, **RUN).generator.device == tiny_pipe.device


@pytest.fixture
def export(tmp_path, capsys):
    def run(*options):
        out = tmp_path / "out"
        code = main(["export", *map(str, options), "--out", str(out), "--preview", "approx"])
        return code, capsys.readouterr().err.strip(), out
    return run


@pytest.mark.parametrize("options, words", [
    (("--device", "tpu"), "device='tpu' is unknown: use one of auto, cpu, cuda, cuda:N, mps"),
    (("--dtype", "float8"), "dtype='float8' is unknown"),
    (("--device", "cuda:7"), "device='cuda:7' is not available"),
    (("--variant", "fp16"), "variant='fp16'"),
])
def test_device_dtype_variant_refused_in_one_line(export, tiny_model_dir, options, words):
    if options[1] == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    code, message, out = export("--model", tiny_model_dir, "--steps", "2", *options)
    assert code == 2 and message.startswith("stepviz: error: ") and words in message, message
    assert len(message.splitlines()) == 1 and not out.exists()


def test_export_runs_on_the_device_and_dtype_asked(export, fp16_model_dir):
    code, message, out = export("--model", fp16_model_dir, "--steps", "2", "--height", "32", "--width", "32",
                                "--device", "cpu", "--dtype", "float32", "--variant", "fp16")
    assert code == 0, message
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["device"] == "cpu" and manifest["model"]["dtype"] == "float32"
    assert manifest["model"]["prediction_type"] == "epsilon"


def test_vae_tiling_and_the_slow_preview_notice(tiny_model_dir):
    from stepviz.render.preview import decode_images, slow_preview_notice

    pipe = load_pipeline(tiny_model_dir, device="cpu", vae_tiling=True)
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    plain = load_pipeline(tiny_model_dir, device="cpu")  # fresh: no decode measured yet
    assert slow_preview_notice(plain, 32, 32) is None  # a tiny VAE on a small picture: fast
    estimate = slow_preview_notice(plain, 8192, 8192)  # estimated from the VAE's size before any decode
    assert estimate and "8192x8192 on cpu" in estimate and "estimated" in estimate and "--vae-tiling" in estimate
    decode_images(plain, torch.zeros(2, 4, 4, 4))
    seconds, pixels = facts_of(plain).decode_seconds
    assert pixels == 32 * 32 and seconds > 0
    facts_of(plain).decode_seconds = (3.0, 32 * 32)  # as if the last decode had taken 3 s per picture
    measured = slow_preview_notice(plain, 64, 32, "v again for approx (instant)")
    assert "about 6 s per picture (measured); v again for approx (instant)" in measured
    assert "--vae-tiling" not in slow_preview_notice(pipe, 8192, 8192)  # already on


def test_export_with_vae_tiling(export, tiny_model_dir):
    code, message, out = export("--model", tiny_model_dir, "--steps", "2", "--height", "32", "--width", "32",
                                "--vae-tiling", "--device", "cpu")
    assert code == 0, message


def test_an_sdxl_folder_loads_as_sdxl_and_steps_bit_exact(tmp_path):
    from tiny import tiny_sdxl_pipeline

    tiny_sdxl_pipeline().save_pretrained(tmp_path / "xl", safe_serialization=True)
    pipe = load_pipeline(tmp_path / "xl", device="cpu")
    assert type(pipe).__name__ == "StableDiffusionXLPipeline" and pipe.text_encoder_2 is not None
    expected = pipe(**RUN, output_type="latent", generator=torch.Generator("cpu").manual_seed(3)).images
    st = Stepper(pipe, seed=3, **RUN)
    st.run()
    assert torch.equal(st.latents, expected)


def test_serve_hands_device_dtype_and_variant_to_each_tabs_app():
    from stepviz.cli import build_parser
    from stepviz.tui.serve import tui_command

    argv = ["serve", "--port", "8123", "--model", "/tmp/m", "--device", "cuda", "--dtype", "float16",
            "--variant", "fp16", "--vae-tiling"]
    assert build_parser().parse_args(argv).device == "cuda"  # serve takes them
    command = tui_command(argv)
    assert "tui --model /tmp/m --device cuda --dtype float16 --variant fp16 --vae-tiling" in command
