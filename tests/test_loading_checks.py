"""The loader checks every file it will read, wherever a component resolves: pickles refused behind the
parts table too, tensors that do not fit the component's config refused by name, config values by type."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from stepviz import ModelLoadError, load_pipeline
from stepviz.models.folder_check import PARTS_KEY


@pytest.fixture
def folder(tiny_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    return copy


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was reached")

    monkeypatch.setattr(torch, "load", refuse)


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def refusal(folder, **kwargs) -> str:
    with pytest.raises(ModelLoadError) as caught:
        load_pipeline(folder, **kwargs)
    text = str(caught.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("component", ["text_encoder", "image_encoder"])
def test_a_pickle_behind_the_parts_table_never_reaches_torch_load(folder, tmp_path, component, no_unpickling):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(folder / "text_encoder" / "config.json", elsewhere / "config.json")
    (elsewhere / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    entries = {component: ["transformers", "CLIPTextModel"], PARTS_KEY: {component: str(elsewhere)}}
    edit_json(folder / "model_index.json", **entries)
    text = refusal(folder)
    assert "pickle" in text and "pytorch_model.bin" in text


def test_another_components_tensors_are_refused_naming_the_component_and_key(folder):
    shutil.copy(folder / "text_encoder" / "model.safetensors",
                folder / "unet" / "diffusion_pytorch_model.safetensors")
    text = refusal(folder)
    assert "unet" in text and "conv_in.weight" in text


def test_a_tensor_of_the_wrong_shape_is_refused(folder):
    path = folder / "vae" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(path)
    key = sorted(k for k in tensors if k.endswith("conv_out.weight"))[0]
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1, *tensors[key].shape[1:])
    save_file(tensors, path)
    text = refusal(folder)
    assert key in text and "vae" in text


def test_a_missing_tensor_is_refused(folder):
    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(path)
    tensors.pop("conv_out.bias")
    save_file(tensors, path)
    assert "conv_out.bias" in refusal(folder)


def test_an_unexpected_tensor_is_refused(folder):
    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(path)
    tensors["extra.weight"] = torch.zeros(2)
    save_file(tensors, path)
    assert "extra.weight" in refusal(folder)


@pytest.mark.parametrize("component, key, value, gist", [
    ("unet", "in_channels", "four", "in_channels"),
    ("unet", "block_out_channels", 5, "block_out_channels"),
    ("vae", "latent_channels", 4.5, "latent_channels"),
    ("unet", "act_fn", 3, "act_fn"),
    ("text_encoder", "hidden_size", "wide", "hidden_size"),
])
def test_config_values_of_the_wrong_type_are_one_line(folder, component, key, value, gist):
    edit_json(folder / component / "config.json", **{key: value})
    text = refusal(folder)
    assert gist in text and component in text


def test_the_command_line_says_it_in_one_line_and_exits_2(folder, tmp_path, capsys):
    from stepviz.cli import main

    shutil.copy(folder / "text_encoder" / "model.safetensors",
                folder / "unet" / "diffusion_pytorch_model.safetensors")
    out = tmp_path / "out"
    assert main(["export", "--model", str(folder), "--steps", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "conv_in.weight" in err
    assert not out.exists()


def test_serve_refuses_a_model_whose_tensors_do_not_fit_before_any_tab(folder, capsys):
    from stepviz.cli import main

    shutil.copy(folder / "text_encoder" / "model.safetensors",
                folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert main(["serve", "--model", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "conv_in.weight" in err[-1]


def test_a_single_file_missing_unet_tensors_is_refused(tiny_pipe, tiny_model_dir, tmp_path):
    from ldm_checkpoint import write_single_file

    whole = tmp_path / "whole.safetensors"
    write_single_file(tiny_pipe, whole)
    assert load_pipeline(whole, config=tiny_model_dir).unet is not None
    tensors = load_file(whole)
    tensors.pop(next(key for key in tensors if key.startswith("model.diffusion_model.out.")))
    partial = tmp_path / "partial.safetensors"
    save_file(tensors, partial)
    text = refusal(partial, config=tiny_model_dir)
    assert "unet" in text and "partial or damaged" in text
