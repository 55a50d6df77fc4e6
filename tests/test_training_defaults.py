"""The trainers' defaults build exactly the shipped models' configurations (configs, not weights)."""

import json

import pytest

from stepviz.models.folder_check import part_folders
from stepviz.models.loading import shipped_folder
from training import components
from training.extra_channels import EXTRA_CHANNELS, widen_conv_in
from training.tokenizer import write_tokenizer
from training.train import model_sizes, parse_args


def plain(config) -> dict:
    """A config as JSON would hold it, without the bookkeeping keys (_name_or_path, versions)."""
    data = json.loads(json.dumps(dict(config), default=list))
    return {k: v for k, v in data.items() if not k.startswith("_") and k not in ("transformers_version", "dtype")}


def shipped(model: str, part: str, file: str = "config.json") -> dict:
    return plain(json.loads((part_folders(shipped_folder(model))[part] / file).read_text()))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The base model's parts as `python -m training.train --out DIR` builds them before training."""
    args = parse_args(["--out", "unused"])
    sizes = model_sizes(args)
    folder = tmp_path_factory.mktemp("tokenizer")
    tokenizer = write_tokenizer(folder)
    return dict(tokenizer_folder=folder, unet=components.make_unet(sizes, args.size),
                vae=components.make_vae(sizes, args.size), text_encoder=components.make_text_encoder(sizes, tokenizer),
                scheduler=components.make_pipeline_scheduler())


def test_the_base_trainer_defaults_build_the_shipped_base(base, tmp_path):
    assert plain(base["unet"].config) == shipped("toy", "unet")
    assert plain(base["vae"].config) == shipped("toy", "vae")
    assert plain(base["scheduler"].config) == shipped("toy", "scheduler", "scheduler_config.json")
    base["text_encoder"].save_pretrained(tmp_path)  # its config.json as shipped: the non-default keys
    assert plain(json.loads((tmp_path / "config.json").read_text())) == shipped("toy", "text_encoder")
    for name in ("vocab.json", "merges.txt"):  # the files the tokenizer is read from
        assert (base["tokenizer_folder"] / name).read_bytes() == (
            part_folders(shipped_folder("toy"))["tokenizer"] / name).read_bytes()


def test_the_inpaint_variant_is_the_base_with_its_wider_conv_in(base):
    unet = widen_conv_in(base["unet"], EXTRA_CHANNELS["inpaint"])
    assert plain(unet.config) == shipped("toy-inpaint", "unet")
    assert shipped("toy-inpaint", "vae") == shipped("toy", "vae")  # decoder fine-tuned, same architecture
    assert shipped("toy-inpaint", "text_encoder") == shipped("toy", "text_encoder")


def test_the_depth_variant_is_the_base_with_its_wider_conv_in(base):
    unet = widen_conv_in(base["unet"], EXTRA_CHANNELS["depth"])
    assert plain(unet.config) == shipped("toy-depth", "unet")
    assert shipped("toy-depth", "vae") == shipped("toy", "vae")
    assert shipped("toy-depth", "text_encoder") == shipped("toy", "text_encoder")
