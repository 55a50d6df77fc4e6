"""What the tokenizer makes of a prompt: the tokens and ids the text encoder sees and what was cut beyond its
window, for the prompt panel and the attention maps' labels. The embeddings themselves are
engine/conditioning.py (SD, SDXL) and engine/flow_text.py (SD3, FLUX.1).
"""

from __future__ import annotations

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
