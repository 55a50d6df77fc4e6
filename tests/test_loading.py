"""load_pipeline: local folders and the cache, safetensors only, one clear line for each failure."""

import shutil

import pytest

from stepviz import ModelLoadError, load_pipeline
from stepviz.engine.pipeline_facts import facts_of


def test_loads_a_local_folder_offline(tiny_model_dir):
    pipe = load_pipeline(str(tiny_model_dir))
    assert pipe.unet.config.in_channels == 4 and facts_of(pipe).folder == tiny_model_dir


def test_fp16_and_attention_slicing_options(tiny_model_dir):
    import torch

    pipe = load_pipeline(tiny_model_dir, dtype="fp16", attention_slicing=True)
    assert pipe.unet.dtype == torch.float16


def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_folder():
    with pytest.raises(ModelLoadError) as caught:
        load_pipeline("./no/such/model")
    assert "./no/such/model" in one_line(caught)


def test_hub_id_not_in_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as caught:
        load_pipeline("stabilityai/stable-diffusion-2-1-base")
    text = one_line(caught)
    assert "not in the local Hugging Face cache" in text and "stable-diffusion-2-1-base" in text


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelLoadError, match="no model_index.json"):
        load_pipeline(tmp_path)


def test_pickle_only_weights_are_refused(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelLoadError) as caught:
        load_pipeline(folder)
    assert "pickle" in one_line(caught) and "allow_pickle=True" in str(caught.value)
    assert load_pipeline(folder, allow_pickle=True).unet.config.in_channels == 4


def test_corrupt_weights(tiny_model_dir, tmp_path):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ModelLoadError) as caught:
        load_pipeline(folder)
    assert str(folder) in one_line(caught)


def test_loading_runs_without_the_garbage_collector_and_puts_it_back(tiny_model_dir, monkeypatch):
    """Collections set off by the imports were a quarter of a cold start; the collector is off meanwhile."""
    import gc

    from stepviz.run.session import RunSession
    from stepviz.run.settings import RunSettings

    seen = []
    settings = RunSettings(model=str(tiny_model_dir), steps=2, height=32, width=32)
    load = settings.load_pipeline
    settings.load_pipeline = lambda progress=None: seen.append(gc.isenabled()) or load()
    try:
        RunSession(settings).load()
        assert seen == [False] and gc.isenabled()
        assert load_pipeline(tiny_model_dir) is not None and gc.isenabled()
        gc.disable()
        load_pipeline(tiny_model_dir)
        assert not gc.isenabled()  # as it was
    finally:
        gc.enable()
        gc.unfreeze()


def test_loading_names_each_part_as_it_checks_and_loads_it(tiny_model_dir):
    heard: list[str] = []
    load_pipeline(str(tiny_model_dir), progress=heard.append)
    checked = [text.removeprefix("checking ") for text in heard if text.startswith("checking ")]
    assert {"unet", "vae", "text_encoder"} <= set(checked), heard
    assert heard[-1].startswith("loading ") and "unet" in heard[-1], heard  # a plain folder: from_pretrained, last


def test_a_shipped_model_is_loaded_part_by_part_and_the_tui_hears_each(monkeypatch):
    from stepviz.run.session import RunSession
    from stepviz.run.settings import RunSettings

    heard: list[str] = []
    RunSession(RunSettings(model="toy", steps=2)).load(heard.append)
    loaded = [text for text in heard if text.startswith("toy: loading ")]
    assert {"toy: loading unet", "toy: loading vae", "toy: loading text_encoder"} <= set(loaded), heard
    assert heard.index("toy: checking unet") < heard.index("toy: loading unet"), heard
