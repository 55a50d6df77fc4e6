"""Cross-attention maps: which latent pixels each prompt token pulls on, recorded during the UNet call.

For every cross-attention layer of the UNet (the text branch of the CFG batch only):

    A = softmax(Q K^T / sqrt(d))        Q from the latent pixels, K from the 77 text embeddings, d = head size
    map_layer[i] = mean over heads of A[:, token i]       at the layer's own resolution
    cross_attention[i] = mean over layers (equal weight) of map_layer[i], resized to latent size (nearest)

for i over the prompt's tokens (start token through the first end token). Vaswani et al. 2017 define the
attention; Hertz et al. 2022 (prompt-to-prompt) and Tang et al. 2022 (DAAM) read these maps to see where a word
acts in Stable Diffusion.

The layer's own processor still computes the layer's output, unchanged: the probabilities are computed beside
it from the same inputs, so a run with capture on gives the same bits as one without. The recording
processors are installed for one UNet call and the originals put back afterwards, so the pipeline is left
as it was found (and a UNet call from another thread meanwhile records nothing).
"""

from __future__ import annotations

import math
import threading
import weakref

import torch
import torch.nn.functional as F


_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # unet -> its cross-attention layers


def cross_attention_modules(unet) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every attention layer built to attend to the text (diffusers' `is_cross_attention`).

    Found once per UNet: walking all its modules at every step cost more than the capture itself on the toy.
    """
    if unet not in _LAYERS:
        _LAYERS[unet] = [(name, module) for name, module in unet.named_modules()
                         if getattr(module, "is_cross_attention", False) and hasattr(module, "set_processor")]
    return _LAYERS[unet]


def layer_grid(pixels: int, latent_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a layer with `pixels` query positions in a UNet on `latent_size` latents.

    Each down block halves the size, rounding up (a stride-2 convolution with padding 1).
    """
    height, width = latent_size
    factor = 1
    while factor <= max(height, width):
        h, w = -(-height // factor), -(-width // factor)
        if h * w == pixels:
            return h, w
        factor *= 2
    raise ValueError(f"a cross-attention layer has {pixels} query positions: no halving of the "
                     f"{height}x{width} latents gives that many")


def text_branch_probabilities(attn, hidden_states, encoder_hidden_states, temb=None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) for the text half of the CFG batch, averaged over heads and batch: [pixels, 77].

    The same projections as the layer's processor (diffusers' AttnProcessor2_0), in float32.
    """
    half = hidden_states.shape[0] // 2
    hidden_states, encoder_hidden_states = hidden_states[half:], encoder_hidden_states[half:]
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb[half:] if temb is not None else None)
    if hidden_states.ndim == 4:
        hidden_states = hidden_states.flatten(2).transpose(1, 2)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    if attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    query, key = attn.to_q(hidden_states).float(), attn.to_k(encoder_hidden_states).float()
    batch, head_dim = query.shape[0], key.shape[-1] // attn.heads
    query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    scores = query @ key.transpose(-1, -2) / math.sqrt(head_dim)
    return scores.softmax(dim=-1).mean(dim=(0, 1))


class _Recorder:
    """Stands in for a layer's processor for one UNet call: runs it, and records the maps beside it."""

    def __init__(self, original, name: str, capture: CrossAttentionCapture):
        self.original, self.name, self.capture = original, name, capture

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        # diffusers' Attention.forward passes everything but hidden_states by keyword: so do we
        output = self.original(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                               attention_mask=attention_mask, **kwargs)
        if encoder_hidden_states is not None and threading.get_ident() == self.capture.thread:
            probabilities = text_branch_probabilities(attn, hidden_states, encoder_hidden_states, kwargs.get("temb"))
            self.capture.add(self.name, probabilities)
        return output


class CrossAttentionCapture:
    """`with CrossAttentionCapture(unet, tokens, (h, w)):` one UNet call; then `.maps` [tokens, h, w].

    `per_layer=True` also keeps `.layer_maps`: {layer name: [tokens, h_layer, w_layer]} at each layer's size.
    """

    def __init__(self, unet, num_tokens: int, latent_size: tuple[int, int], per_layer: bool = False):
        self.unet, self.num_tokens, self.per_layer = unet, num_tokens, per_layer
        self.latent_size = (int(latent_size[0]), int(latent_size[1]))
        self.layer_maps: dict[str, torch.Tensor] | None = {} if per_layer else None
        self._sums: dict[int, tuple[torch.Tensor, int]] = {}  # pixels per layer -> (sum of maps, layers)
        self._grids: dict[int, tuple[int, int]] = {}
        self._originals: list[tuple[torch.nn.Module, object]] = []
        self.thread: int | None = None

    def __enter__(self) -> CrossAttentionCapture:
        self.thread = threading.get_ident()
        for name, module in cross_attention_modules(self.unet):
            self._originals.append((module, module.processor))
            module.set_processor(_Recorder(module.processor, name, self))
        return self

    def __exit__(self, *exc) -> None:
        for module, processor in self._originals:
            module.set_processor(processor)
        self._originals.clear()

    def add(self, name: str, probabilities: torch.Tensor) -> None:
        """One layer's [pixels, 77] probabilities: keep the prompt's tokens, on the layer's own grid.

        Layers of the same size are summed as they come; each size is resized to latent size once, in `maps`.
        """
        pixels = probabilities.shape[0]
        if pixels not in self._grids:
            self._grids[pixels] = layer_grid(pixels, self.latent_size)
        native = probabilities[:, : self.num_tokens].T.reshape(-1, *self._grids[pixels])
        if self.layer_maps is not None:
            self.layer_maps[name] = native
        total, count = self._sums.get(pixels, (0, 0))
        self._sums[pixels] = (native + total, count + 1)

    @property
    def maps(self) -> torch.Tensor | None:
        """[tokens, h, w] float32 at latent size: the mean over the layers seen (None if the UNet has none)."""
        if not self._sums:
            return None
        total = sum(F.interpolate(summed[None], size=self.latent_size, mode="nearest")[0]
                    if summed.shape[-2:] != self.latent_size else summed for summed, _ in self._sums.values())
        return total / sum(count for _, count in self._sums.values())


class NoCapture:
    """The stand-in when capture is off: a context that does nothing and holds no maps."""

    maps = layer_maps = None

    def __enter__(self) -> NoCapture:
        return self

    def __exit__(self, *exc) -> None:
        return None
