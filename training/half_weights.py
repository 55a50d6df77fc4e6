"""Store shipped weights in half precision: python -m training.half_weights [FOLDER ...]

Every float32 tensor of every safetensors file under FOLDER (default: stepviz/toy/weights) is rewritten as
float16, the file written under a temporary name and renamed over the old one; other tensors and the file's
metadata are kept. Loading casts the weights back to the module's dtype (stepviz loads float32 on the CPU), so
only the storage changes: the wheel carries half the bytes. A file with a value float16 cannot hold (beyond
+-65504) is refused and left as it was. Run it after a trainer's --ship or a copy into the weights folder;
files already in float16 are left alone.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

WEIGHTS = Path(__file__).resolve().parent.parent / "stepviz" / "toy" / "weights"
HALF_MAX = torch.finfo(torch.float16).max


def halve_file(path: Path) -> tuple[int, int]:
    """Rewrite `path` with its float32 tensors as float16; its size before and after (the same when it held
    none). Raises ValueError, the file untouched, when a value is beyond float16's range."""
    with safe_open(str(path), framework="pt") as weights:
        metadata = weights.metadata()
        tensors = {name: weights.get_tensor(name) for name in weights.keys()}
    single = [name for name, tensor in tensors.items() if tensor.dtype == torch.float32]
    before = path.stat().st_size
    if not single:
        return before, before
    for name in single:
        largest = tensors[name].abs().max().item() if tensors[name].numel() else 0.0
        if largest > HALF_MAX:
            raise ValueError(f"{path}: tensor {name} holds {largest:g}, beyond float16's {HALF_MAX:g}")
        tensors[name] = tensors[name].to(torch.float16)
    temporary = path.with_name(path.name + ".half-tmp")
    save_file(tensors, str(temporary), metadata=metadata)
    os.replace(temporary, path)
    return before, path.stat().st_size


def halve_folder(folder: Path) -> list[tuple[Path, int, int]]:
    """halve_file on every safetensors file under `folder`: each file with its size before and after."""
    return [(path, *halve_file(path)) for path in sorted(folder.rglob("*.safetensors"))]


def same_at_half(first: Path, second: Path) -> bool:
    """Whether two safetensors files hold the same tensors once float32 ones are stored in float16."""
    ours, theirs = load_file(str(first)), load_file(str(second))
    at_half = lambda tensor: tensor.to(torch.float16) if tensor.dtype == torch.float32 else tensor  # noqa: E731
    return ours.keys() == theirs.keys() and all(torch.equal(at_half(ours[k]), at_half(theirs[k])) for k in ours)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.half_weights", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[WEIGHTS],
                        help="folders whose safetensors files are rewritten (default: the shipped weights)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not folder.is_dir():
            parser.error(f"{folder}: not a folder")
    try:
        files = [row for folder in args.folders for row in halve_folder(folder)]
    except ValueError as exc:
        parser.exit(2, f"half_weights: {exc}\n")
    for path, before, after in files:
        print(f"{path}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    print(f"in all {sum(row[1] for row in files) / 1e6:.1f} MB -> {sum(row[2] for row in files) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
