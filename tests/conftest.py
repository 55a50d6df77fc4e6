import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

# tiny models are dominated by per-op overhead: one thread avoids fighting over 2 cores
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_pipe():
    from tiny import tiny_pipeline

    return tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_pipe):
    """The tiny pipeline saved as a diffusers folder (safetensors), for load_pipeline and the CLI."""
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_pipe.save_pretrained(folder, safe_serialization=True)
    return folder
