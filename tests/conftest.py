import os
import re
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


# ---------------------------------------------------------------- snapshots within a colour tolerance
# A picture cell's colour comes from the model's numbers through the preview; another CPU's kernels or another
# release of Pillow or numpy can move it by a unit or two (#994131 vs #994231 on one fresh install). Snapshots
# therefore match when their text is the same and every colour is within COLOUR_TOLERANCE per channel.
COLOUR_TOLERANCE = 3
_COLOUR = re.compile(r"#([0-9a-fA-F]{6})\b")


def svgs_match(actual: str, expected: str) -> bool:
    if actual == expected:
        return True
    if _COLOUR.split(actual)[::2] != _COLOUR.split(expected)[::2]:
        return False
    pairs = zip(_COLOUR.findall(actual), _COLOUR.findall(expected))
    return all(abs(int(a[i:i + 2], 16) - int(b[i:i + 2], 16)) <= COLOUR_TOLERANCE for a, b in pairs for i in (0, 2, 4))


try:
    import pytest_textual_snapshot
except ImportError:  # the snapshot tests skip themselves then
    pass
else:
    def _svg_matches(self, *, serialized_data, snapshot_data) -> bool:
        return snapshot_data is not None and svgs_match(str(serialized_data), str(snapshot_data))

    pytest_textual_snapshot.SVGImageExtension.matches = _svg_matches
