"""The wheel holds the product only: no training or evaluation module, report or loss curve, no weight twice."""

import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel setuptools builds from a copy of the source (about 5 s; the build writes beside the source)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "stepviz", source / "stepviz", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; "
                            f"print(build_meta.build_wheel({str(out)!r}))"], cwd=source, capture_output=True,
                           text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    return zipfile.ZipFile(out / built.stdout.strip().splitlines()[-1])


def test_the_wheel_holds_stepviz_and_its_metadata_only(wheel):
    import stepviz

    assert {name.split("/")[0] for name in wheel.namelist()} == {"stepviz", f"stepviz-{stepviz.__version__}.dist-info"}


def test_no_training_or_evaluation_module_report_or_loss_curve_in_the_wheel(wheel):
    lab = {hashlib.sha256(path.read_bytes()).hexdigest() for path in (ROOT / "training").glob("*.py")}
    names = wheel.namelist()
    assert len(lab) > 10 and not [n for n in names if hashlib.sha256(wheel.read(n)).hexdigest() in lab]
    assert sorted(Path(n).name for n in names if n.startswith("stepviz/toy/") and n.endswith(".py")) == [
        "__init__.py", "checker.py", "world.py"]
    assert not [n for n in names if n.endswith((".png", ".pt"))]
    assert not [n for n in names if Path(n).name in ("TRAINING.md", "evaluation.md", "PREVIEW.md", "DECODER.md",
                                                     "depth_estimator.md", "latent_rgb.json")]
    # what the product loads is there: each shipped model's index and its parts
    for model in ("toy", "toy-v", "toy-inpaint", "toy-depth", "toy-flow"):
        assert f"stepviz/toy/weights/{model}/model_index.json" in names
    assert "stepviz/tui/stepviz.tcss" in names and "stepviz/lessons/unit3.ipynb" in names
    assert "stepviz/export/page_assets/page.js" in names and "stepviz/export/page_assets/page.css" in names


def test_no_weight_file_is_in_the_wheel_twice(wheel):
    by_content = defaultdict(list)
    for name in wheel.namelist():
        if name.endswith(".safetensors"):
            by_content[hashlib.sha256(wheel.read(name)).hexdigest()].append(name)
    # 3 UNets, 2 VAEs, the text encoder, the preview decoder, the depth estimator, toy-flow's transformer and text
    # encoder
    assert len(by_content) >= 10
    assert [names for names in by_content.values() if len(names) > 1] == []
