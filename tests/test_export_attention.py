"""attention.png and attention.npz in an export: listed in the manifest, shown in the handout, readable."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from stepviz.engine.checks import StepvizInputError
from stepviz.export.attention import LABEL_SIZE, TILE, attention_steps, parse_steps
from stepviz.export.run_export import export_run
from stepviz.run.settings import RunSettings


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_dir):
    from stepviz.models import load_pipeline

    out = tmp_path_factory.mktemp("export") / "out"
    settings = RunSettings(model=str(tiny_model_dir), steps=5, height=32, width=32)
    export_run(settings, out, kind="approx", pipe=load_pipeline(str(tiny_model_dir)), attention_steps=[1, 3, 5])
    return out


def test_attention_files_are_listed_shown_and_hold_every_step(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert {"attention.png", "attention.npz"} <= set(manifest["files"])
    data = np.load(exported / "attention.npz")
    tokens = list(data["tokens"])
    assert tokens[0] == "<|startoftext|>" and "red</w>" in tokens and tokens[-1] == "<|endoftext|>"
    steps = manifest["steps_run"]
    assert data["maps"].shape == (steps, len(tokens), 4, 4) and data["maps"].dtype == np.float16
    assert list(data["step"]) == list(range(1, steps + 1)) and list(data["chosen_steps"]) == [1, 3, 5]
    shares = data["inside_share"]
    assert shares.shape == (3, len(tokens)) and ((shares >= 0) & (shares <= 1)).all()
    # each layer's probabilities over the 77 keys sum to 1: the prompt's tokens share at most that, per pixel
    assert (data["maps"].astype(np.float32).sum(axis=1) <= 1.001).all()
    page = (exported / "handout.html").read_text()
    assert "What each word attends to" in page and 'alt="attention.png"' in page and "attention.npz" in page


def test_attention_png_is_one_slide_with_a_column_per_token(exported):
    with Image.open(exported / "attention.png") as picture:
        assert picture.size == (1920, 1080)
    assert LABEL_SIZE >= 18 and TILE >= 128  # the labels' height on the slide: tests/test_pictures_for_a_room.py


def test_attention_steps_spread_and_checked():
    assert attention_steps(25) == [0, 5, 10, 14, 19, 24]
    assert attention_steps(4) == [0, 1, 2, 3]
    assert attention_steps(25, [13, 1, 13]) == [0, 12]  # steps as the screen numbers them -> record indices
    with pytest.raises(StepvizInputError, match="--attention-steps 0,26 not in the run: use steps 1..25"):
        attention_steps(25, [0, 3, 25, 26])
    assert parse_steps("1, 7,13") == [1, 7, 13] and parse_steps(None) is None
    with pytest.raises(StepvizInputError, match="'0;6' is not a list"):
        parse_steps("0;6")
