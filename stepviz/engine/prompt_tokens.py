"""Prompt -> tokens -> ids -> text embeddings (the Hugging Face diffusion course, Unit 3).

As diffusers' encode_prompt does it.
"""

from __future__ import annotations

import torch

from .records import PromptAnatomy


def prompt_anatomy(tokenizer, text: str, embedding_shape: tuple[int, ...]) -> PromptAnatomy:
    """The tokens and ids the text encoder sees, and what was cut beyond the tokenizer's window."""
    max_length = tokenizer.model_max_length
    full_ids = tokenizer(text, padding="longest", return_tensors="pt").input_ids[0].tolist()
    kept_ids = tokenizer(text, padding="max_length", max_length=max_length, truncation=True).input_ids
    truncated = None
    if len(full_ids) > max_length:
        # the ids between the window's last slot (kept for end-of-text) and the final end-of-text
        truncated = tokenizer.decode(full_ids[max_length - 1 : -1])
    pad_id = tokenizer.pad_token_id
    if pad_id != tokenizer.eos_token_id:
        shown = [i for i in kept_ids if i != pad_id]
    else:
        shown = _until_eos(kept_ids, tokenizer)
    return PromptAnatomy(
        text=text,
        tokens=tokenizer.convert_ids_to_tokens(shown),
        input_ids=shown,
        embedding_shape=tuple(embedding_shape),
        max_length=max_length,
        truncated_text=truncated,
    )


def _until_eos(ids: list[int], tokenizer) -> list[int]:
    """Ids up to and including the first end-of-text (CLIP pads with end-of-text)."""
    eos = tokenizer.eos_token_id
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def encode(tokenizer, text_encoder, text: str, device, max_length: int | None = None) -> torch.Tensor:
    """One prompt's embeddings [1, 77, d], padded to max_length, like diffusers' encode_prompt."""
    max_length = max_length or tokenizer.model_max_length
    ids = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    attention_mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        attention_mask = ids.attention_mask.to(device)
    embeds = text_encoder(ids.input_ids.to(device), attention_mask=attention_mask)[0]
    return embeds.to(dtype=text_encoder.dtype, device=device)
