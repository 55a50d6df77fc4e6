"""Where a run computes and in which dtype: `--device` and `--dtype`, one rule for the TUI, export and serve.

    device auto   CUDA when present, else Apple's MPS, else the CPU
    dtype auto    float16 on a GPU (CUDA, MPS), float32 on the CPU (float16 there is slow and partly missing)

The seeded starting noise is drawn on the CPU whatever the device (see Stepper's generator_device), so
a seed gives the same picture everywhere, up to the device's arithmetic.
"""

from __future__ import annotations

import re

DEVICE_NAMES = "auto, cpu, cuda, cuda:N, mps"
DTYPE_ALIASES = {"float16": "float16", "fp16": "float16", "half": "float16", "float32": "float32",
                 "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


class DeviceError(ValueError):
    """A --device or --dtype that is unknown, or names hardware this machine does not have."""


def check_names(device: str | None, dtype) -> None:
    """The spelling of device and dtype, without importing torch (the CLI checks before heavy imports)."""
    if device is not None and not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(device)):
        raise DeviceError(f"device={device!r} is unknown: use one of {DEVICE_NAMES}")
    if dtype is not None and not hasattr(dtype, "is_floating_point") and dtype != "auto" and dtype not in DTYPE_ALIASES:
        raise DeviceError(f"dtype={dtype!r} is unknown: use auto or one of {', '.join(DTYPE_ALIASES)}")


def check_available(device: str | None) -> None:
    """A named GPU (cuda, cuda:N, mps) must be on this machine; auto and cpu always are (torch is imported only
    to look for a named GPU, so the TUI's first frame still comes before torch for the default)."""
    if device not in (None, "auto", "cpu"):
        pick_device(device)


def pick_device(device: str | None = "auto") -> str:
    """The device to run on: 'auto' picks CUDA, else MPS, else CPU; a named GPU must be present."""
    import torch

    check_names(device, None)
    device = device or "auto"
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise DeviceError(f"device={device!r} is not available: this machine has {count} CUDA device(s) "
                              f"(torch {torch.__version__}); use --device auto or cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device='mps' is not available on this machine; use --device auto or cpu")
    return device


def pick_dtype(dtype, device: str):
    """The torch dtype: 'auto' is float16 on a GPU and float32 on the CPU; names as DTYPE_ALIASES spell them."""
    import torch

    if hasattr(dtype, "is_floating_point"):  # a torch.dtype already
        return dtype
    check_names(None, dtype)
    if dtype in (None, "auto"):
        return torch.float32 if device == "cpu" else torch.float16
    return getattr(torch, DTYPE_ALIASES[dtype])
