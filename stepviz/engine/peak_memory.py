"""The peak memory of one UNet call, measured on any device, and the memory options the course shows.

PeakTensorMemory counts the bytes of every tensor storage torch allocates while it is active and frees when
the storage is freed: its `peak` is the most held at once. It sees tensors, not a kernel's private scratch
(torch's CPU attention kernel keeps a few small blocks per thread), and not the weights, which exist before.

The options (Hugging Face diffusion course, Unit 3; diffusers' "Reduce memory usage" guide):
  sdpa    torch's scaled_dot_product_attention (AttnProcessor2_0, diffusers' default on torch 2): never holds
          the whole (pixels x tokens) score matrix
  full    the classic attention (AttnProcessor): softmax(Q K^T / sqrt(d)) held whole, for every head at once
  sliced  `pipe.enable_attention_slicing()`: the classic attention a few heads at a time
  fp16    the UNet's weights and activations in float16: half the bytes of float32
"""

from __future__ import annotations

import copy
import weakref
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

OPTIONS = ("sdpa", "full", "sliced", "fp16")


class PeakTensorMemory(TorchDispatchMode):
    """`with PeakTensorMemory() as memory: ...`, then memory.peak (bytes)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._held: dict[int, int] = {}  # storage address -> bytes, while the storage lives

    def _freed(self, address: int, size: int) -> None:
        if self._held.pop(address, None) is not None:
            self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            address, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or address in self._held:  # a view, or an in-place result: already counted
                continue
            self._held[address] = size
            self.live += size
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._freed, address, size)
        return out


@contextmanager
def attention_as(unet, option: str):
    """The UNet with its attention computed as `option` says ("sdpa", "full", "sliced"), restored after."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    before = unet.attn_processors
    if option == "full":
        unet.set_attn_processor(AttnProcessor())
    elif option == "sliced":
        unet.set_attention_slice("auto")  # what pipe.enable_attention_slicing() does: half the heads at a time
    elif option == "sdpa":
        unet.set_attn_processor(AttnProcessor2_0())
    else:
        raise ValueError(f"attention option {option!r}: use sdpa, full or sliced")
    try:
        yield unet
    finally:
        unet.set_attn_processor(before)


@torch.no_grad()
def unet_call(unet, latents: torch.Tensor, t, prompt_embeds: torch.Tensor, option: str) -> tuple[int, torch.Tensor]:
    """(peak bytes, output as float32) of one UNet call on `latents` (the CFG batch) with the memory `option`."""
    if option == "fp16":
        half = copy.deepcopy(unet).to(torch.float16)
        with PeakTensorMemory() as memory:
            out = half(latents.half(), t, encoder_hidden_states=prompt_embeds.half(), return_dict=False)[0]
        return memory.peak, out.float()
    with attention_as(unet, option), PeakTensorMemory() as memory:
        out = unet(latents, t, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
    return memory.peak, out.float()
