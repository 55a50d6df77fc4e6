"""The flow family's text conditioning, as diffusers' StableDiffusion3* and Flux* pipelines compute it.

SD3 (Esser et al. 2024, section 5.2):
    CLIP-L and CLIP-G  penultimate hidden states, side by side [1, 77, 768 + 1280], zero-padded to T5's width
    T5                 last hidden state [1, 256, 4096] (zeros when the pipeline has no T5: text_encoder_3=None)
    prompt_embeds      [CLIP padded ; T5] along the tokens: [1, 77 + 256, 4096]
    pooled             both CLIP projections side by side [1, 768 + 1280]
FLUX.1:
    prompt_embeds      T5's last hidden state [1, 512, 4096]; pooled = CLIP-L's pooled output [1, 768]
    text_ids           zeros [512, 3] (the text tokens' position ids for the rotary embedding)

Both branches are encoded (negative first), so the guidance scale can cross 1.0 mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .families import FLUX_CLASSES

SD3_MAX_SEQUENCE_LENGTH, FLUX_MAX_SEQUENCE_LENGTH = 256, 512  # the pipelines' defaults, diffusers 0.42


def is_flux(pipe) -> bool:
    return type(pipe).__name__ in FLUX_CLASSES


@dataclass
class FlowConditioning:
    """What the transformer is conditioned on, both branches stacked (negative first)."""

    prompt_embeds: torch.Tensor  # [2, tokens, d]
    pooled: torch.Tensor  # [2, p]
    text_ids: torch.Tensor | None = None  # FLUX.1: [tokens, 3]
    text_embeds = None  # what the SD/SDXL Conditioning calls its pooled embedding: not used by the flow loop

    def size_numbers(self):
        return None

    def describe(self) -> str:
        return (f"pooled text embedding {tuple(self.pooled[1:].shape)}, "
                f"token embeddings {tuple(self.prompt_embeds[1:].shape)}")


def _clip(pipe, tokenizer, encoder, text: str, device, with_projection: bool):
    ids = tokenizer(text, padding="max_length", max_length=pipe.tokenizer_max_length, truncation=True,
                    return_tensors="pt").input_ids
    if not with_projection:  # FLUX.1: the pooled output only
        pooled = encoder(ids.to(device), output_hidden_states=False).pooler_output
        return None, pooled.to(dtype=pipe.text_encoder.dtype, device=device)
    out = encoder(ids.to(device), output_hidden_states=True)
    hidden = out.hidden_states[-2].to(dtype=pipe.text_encoder.dtype, device=device)
    return hidden, out[0]


def _t5(pipe, tokenizer, encoder, text: str, device, max_length: int, width: int):
    if encoder is None:  # SD3 without T5: zeros where its tokens would be
        return torch.zeros((1, max_length, width), device=device, dtype=pipe.text_encoder.dtype)
    ids = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, add_special_tokens=True,
                    return_tensors="pt").input_ids
    hidden = encoder(ids.to(device), output_hidden_states=False)[0]
    return hidden.to(dtype=encoder.dtype, device=device)


def _sd3_branch(pipe, text: str, device, max_length: int):
    clip_l, pooled_l = _clip(pipe, pipe.tokenizer, pipe.text_encoder, text, device, True)
    clip_g, pooled_g = _clip(pipe, pipe.tokenizer_2, pipe.text_encoder_2, text, device, True)
    clip = torch.cat([clip_l, clip_g], dim=-1)
    t5 = _t5(pipe, pipe.tokenizer_3, pipe.text_encoder_3, text, device, max_length,
             pipe.transformer.config.joint_attention_dim)
    clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
    return torch.cat([clip, t5], dim=-2), torch.cat([pooled_l, pooled_g], dim=-1)


def _flux_branch(pipe, text: str, device, max_length: int):
    _, pooled = _clip(pipe, pipe.tokenizer, pipe.text_encoder, text, device, False)
    return _t5(pipe, pipe.tokenizer_2, pipe.text_encoder_2, text, device, max_length, 0), pooled


def text_conditioning(pipe, prompt: str, negative_prompt: str | None, device,
                      max_sequence_length: int | None = None) -> FlowConditioning:
    """Both branches' conditioning (negative prompt, then prompt), as the model's pipeline computes each."""
    flux = is_flux(pipe)
    branch = _flux_branch if flux else _sd3_branch
    max_length = max_sequence_length or (FLUX_MAX_SEQUENCE_LENGTH if flux else SD3_MAX_SEQUENCE_LENGTH)
    embeds, pooled = branch(pipe, prompt, device, max_length)
    negative_embeds, negative_pooled = branch(pipe, negative_prompt or "", device, max_length)
    text_ids = None
    if flux:
        dtype = pipe.text_encoder.dtype if pipe.text_encoder is not None else pipe.transformer.dtype
        text_ids = torch.zeros(embeds.shape[1], 3).to(device=device, dtype=dtype)
    return FlowConditioning(torch.cat([negative_embeds, embeds]), torch.cat([negative_pooled, pooled]), text_ids)
