"""Single-file checkpoints (original key names) load offline and step bit-exact with the diffusers folder."""

from __future__ import annotations

import pytest
import torch
from ldm_checkpoint import write_single_file
from safetensors.torch import save_file

from stepviz import Stepper
from stepviz.engine.pipeline_facts import facts_of
from stepviz.models import ModelLoadError, load_pipeline
from stepviz.models.single_file import checkpoint_kind, clip_tokenizer

RUN = dict(prompt="a red circle", negative_prompt="blurry", guidance_scale=5.0, num_inference_steps=4, height=32,
           width=32)


@pytest.fixture(scope="module")
def single_file(tiny_pipe, tmp_path_factory):
    path = tmp_path_factory.mktemp("single") / "tiny-sd15.safetensors"
    write_single_file(tiny_pipe, path)
    return path


def test_a_single_file_converted_from_a_folder_gives_the_same_weights_and_latents(single_file, tiny_model_dir):
    folder_pipe = load_pipeline(tiny_model_dir, device="cpu")
    pipe = load_pipeline(single_file, device="cpu", config=tiny_model_dir)
    for name in ("unet", "vae", "text_encoder"):
        mine, theirs = getattr(pipe, name).state_dict(), getattr(folder_pipe, name).state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), name
    assert "single-file SD 1.x checkpoint" in facts_of(pipe).notices[0]
    a, b = Stepper(pipe, seed=5, **RUN), Stepper(folder_pipe, seed=5, **RUN)
    a.run(), b.run()
    assert torch.equal(a.latents, b.latents)


def test_kinds_are_told_from_the_keys(tmp_path):
    def file_with(*keys, channels=4):
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.safetensors"
        tensors = {k: torch.zeros(1) for k in keys}
        tensors["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(8, channels, 3, 3)
        save_file(tensors, str(path))
        return path

    assert checkpoint_kind(file_with("cond_stage_model.transformer.text_model.x")) == ("sd1", 4)
    assert checkpoint_kind(file_with("cond_stage_model.transformer.text_model.x", channels=9)) == ("sd1", 9)
    assert checkpoint_kind(file_with("conditioner.embedders.1.model.x", "conditioner.embedders.0.x")) == ("sdxl", 4)
    sd2 = file_with("cond_stage_model.model.token_embedding.weight")
    assert checkpoint_kind(sd2, "v_prediction") == ("sd2-v", 4)
    assert checkpoint_kind(sd2, "epsilon") == ("sd2", 4)
    with pytest.raises(ModelLoadError, match="cannot be told from its weights: pass --prediction-type"):
        load_pipeline(sd2, device="cpu")
    with pytest.raises(ModelLoadError, match="cannot tell which model .* SD 1.x .* SD 2.x .* SDXL"):
        load_pipeline(file_with("first_stage_model.encoder.x"), device="cpu")


def test_the_shipped_configs_describe_the_real_models():
    import diffusers

    from stepviz.models.single_file import CONFIGS

    sd1 = diffusers.UNet2DConditionModel.load_config(CONFIGS / "sd1" / "unet")
    assert sd1["cross_attention_dim"] == 768 and sd1["block_out_channels"] == [320, 640, 1280, 1280]
    sd2v = diffusers.DDIMScheduler.load_config(CONFIGS / "sd2-v" / "scheduler")
    assert sd2v["prediction_type"] == "v_prediction" and sd2v["_class_name"] == "DDIMScheduler"  # SD 2.1's own
    xl = diffusers.UNet2DConditionModel.load_config(CONFIGS / "sdxl" / "unet")
    # SDXL's added conditioning: 6 size numbers x 256 + the 1280-wide pooled embedding
    assert xl["projection_class_embeddings_input_dim"] == 6 * xl["addition_time_embed_dim"] + 1280
    # CLIP's tokenizer, as SD uses it: the ids of CLIP's public vocabulary
    assert clip_tokenizer("<|endoftext|>")("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert clip_tokenizer("!").pad_token_id == 0


def test_a_pickle_single_file_is_refused(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"not read")
    with pytest.raises(ModelLoadError, match="pickle checkpoint.*safetensors only"):
        load_pipeline(path, device="cpu")


def test_without_a_config_the_shipped_one_and_clips_tokenizer_are_used(single_file, tiny_model_dir, tiny_pipe,
                                                                        tmp_path, monkeypatch):
    import shutil

    import stepviz.models.single_file as single

    configs = tmp_path / "configs"  # the shipped layout, with the tiny model's sizes in place of SD 1.5's
    shutil.copytree(tiny_model_dir, configs / "sd1", ignore=shutil.ignore_patterns("*.safetensors", "tokenizer"))
    shutil.copytree(single.CONFIGS / "clip-bpe", configs / "clip-bpe")
    monkeypatch.setattr(single, "CONFIGS", configs)
    pipe = load_pipeline(single_file, device="cpu")
    assert len(pipe.tokenizer) == 49408 and pipe.tokenizer.pad_token == "<|endoftext|>"
    assert "architecture from the config stepviz ships" in facts_of(pipe).notices[0]
    assert torch.equal(pipe.unet.conv_in.weight, tiny_pipe.unet.conv_in.weight)


def test_cli_prediction_type_reaches_the_loader(tmp_path, capsys):
    from stepviz.cli import main

    path = tmp_path / "sd2.safetensors"
    save_file({"cond_stage_model.model.token_embedding.weight": torch.zeros(1)}, str(path))
    code = main(["export", "--model", str(path), "--out", str(tmp_path / "out"), "--steps", "2"])
    assert code == 2 and "--prediction-type v_prediction or epsilon" in capsys.readouterr().err
    code = main(["export", "--model", str(path), "--out", str(tmp_path / "out"), "--prediction-type", "sideways"])
    assert code == 2 and "prediction_type='sideways' is unknown" in capsys.readouterr().err


def test_an_sdxl_single_file_gives_the_same_weights_and_latents(tmp_path):
    from tiny import tiny_sdxl_pipeline

    xl = tiny_sdxl_pipeline()
    xl.save_pretrained(tmp_path / "xl", safe_serialization=True)
    write_single_file(xl, tmp_path / "tiny-sdxl.safetensors")
    assert checkpoint_kind(tmp_path / "tiny-sdxl.safetensors") == ("sdxl", 4)
    pipe = load_pipeline(tmp_path / "tiny-sdxl.safetensors", device="cpu", config=tmp_path / "xl")
    assert type(pipe).__name__ == "StableDiffusionXLPipeline" and "single-file SDXL" in facts_of(pipe).notices[0]
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        mine, theirs = getattr(pipe, name).state_dict(), getattr(xl, name).state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), name
    a, b = Stepper(pipe, seed=5, **RUN), Stepper(xl, seed=5, **RUN)
    a.run(), b.run()
    assert torch.equal(a.latents, b.latents)


def test_an_sd2_v_single_file_gives_the_same_latents(tmp_path):
    import diffusers
    from tiny import tiny_components

    v = diffusers.StableDiffusionPipeline(**tiny_components(prediction_type="v_prediction", sd2=True))
    v.save_pretrained(tmp_path / "v", safe_serialization=True)
    write_single_file(v, tmp_path / "tiny-sd2-v.safetensors", open_clip=True)
    path = tmp_path / "tiny-sd2-v.safetensors"
    assert checkpoint_kind(path, "v_prediction") == ("sd2-v", 4)
    pipe = load_pipeline(path, device="cpu", prediction_type="v_prediction", config=tmp_path / "v")
    assert "single-file SD 2.x (v-prediction)" in facts_of(pipe).notices[0]
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    a, b = Stepper(pipe, seed=5, **RUN), Stepper(v, seed=5, **RUN)
    a.run(), b.run()
    assert torch.equal(a.latents, b.latents) and a.records[0].prediction_type == "v_prediction"


# SD 1.5's published scheduler config (runwayml/stable-diffusion-v1-5, scheduler/scheduler_config.json): no
# timestep_spacing, so each scheduler class built from it spaces its steps by its own default
SD15_SCHEDULER = {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
                  "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": False,
                  "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None, "clip_sample": False}


@pytest.mark.parametrize("scheduler", [None, "euler", "lms", "dpmpp_2m", "unipc"])
def test_a_single_file_steps_as_the_same_weights_in_their_published_folder(single_file, tiny_model_dir, tmp_path,
                                                                          monkeypatch, scheduler):
    import json
    import shutil

    import stepviz.models.single_file as single

    folder = tmp_path / "sd15-folder"  # the tiny weights laid out as SD 1.5's folder, its published scheduler
    shutil.copytree(tiny_model_dir, folder)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD15_SCHEDULER))
    configs = tmp_path / "configs"  # the shipped configs, the tiny model's sizes in place of SD 1.5's
    shutil.copytree(tiny_model_dir, configs / "sd1",
                    ignore=shutil.ignore_patterns("*.safetensors", "tokenizer", "scheduler"))
    shutil.copytree(single.CONFIGS / "sd1" / "scheduler", configs / "sd1" / "scheduler")
    shutil.copytree(single.CONFIGS / "clip-bpe", configs / "clip-bpe")
    monkeypatch.setattr(single, "CONFIGS", configs)
    from transformers import CLIPTokenizer

    tiny_tokenizer = CLIPTokenizer.from_pretrained(tiny_model_dir / "tokenizer")  # the tiny text encoder's vocabulary
    monkeypatch.setattr(single, "clip_tokenizer", lambda pad_token: tiny_tokenizer)
    from_file, from_folder = load_pipeline(single_file, device="cpu"), load_pipeline(folder, device="cpu")
    run = {**RUN, "num_inference_steps": 2}
    a, b = Stepper(from_file, seed=5, scheduler=scheduler, **run), Stepper(from_folder, seed=5, scheduler=scheduler,
                                                                           **run)
    assert a.timesteps.tolist() == b.timesteps.tolist()
    a.run(), b.run()
    assert float((a.latents - b.latents).abs().max()) == 0.0
