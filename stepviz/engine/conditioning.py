"""What the UNet is conditioned on, both CFG branches, as diffusers' SD and SDXL pipelines compute it.

SD 1.x/2.x: one text encoder's last hidden state                                    [1, 77, 768 or 1024]
SDXL (Podell et al. 2023): two text encoders, a pooled embedding and six size numbers:
    prompt_embeds  penultimate hidden states of both encoders, side by side   [1, 77, 768 + 1280]
    text_embeds    the second encoder's pooled, projected output               [1, 1280]
    time_ids       (original h, w, crop top, left, target h, w); a model that
                   requires an aesthetic score (the refiner) has (h, w, top, left, score) instead

The UNet takes the last two as `added_cond_kwargs`. Computed as diffusers' StableDiffusion(XL)(Img2Img|Inpaint)
Pipeline computes them (same ops, same order, same bits), so the loop holds one Conditioning whichever the model.
What the tokenizer shows of a prompt (tokens, ids, what was cut) is engine/prompt_tokens.py; the flow family's
conditioning is engine/flow_text.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .families import is_sdxl

# the refiner's aesthetic scores, diffusers' StableDiffusionXLImg2ImgPipeline defaults
AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE = 6.0, 2.5


@dataclass
class Conditioning:
    """What the UNet is conditioned on, both CFG branches stacked (uncond first)."""

    prompt_embeds: torch.Tensor  # [2, 77, d]
    text_embeds: torch.Tensor | None = None  # SDXL: [2, p] pooled
    time_ids: torch.Tensor | None = None  # SDXL: [2, 6]

    def size_numbers(self) -> tuple[float, ...] | None:
        """The prompt branch's time ids as plain numbers (None without SDXL's size conditioning)."""
        return None if self.time_ids is None else tuple(float(v) for v in self.time_ids[-1].tolist())

    def describe(self) -> str | None:
        """SDXL's added conditioning in one line, for the prompt panel (None for SD)."""
        numbers = self.size_numbers()
        if numbers is None:
            return None
        names = "original h, w, crop top, left, " + ("aesthetic score" if len(numbers) == 5 else "target h, w")
        return (f"SDXL adds: pooled text embedding {tuple(self.text_embeds[1:].shape)}, "
                f"add_time_ids {tuple(int(v) if v == int(v) else v for v in numbers)} ({names})")

    def added_cond_kwargs(self, rows: slice = slice(0, 2)) -> dict | None:
        """SDXL's added conditioning of the given branches (0: negative, 1: prompt); None for SD."""
        if self.text_embeds is None:
            return None
        return {"text_embeds": self.text_embeds[rows], "time_ids": self.time_ids[rows]}


def _encode_one(tokenizer, text_encoder, text: str, device, max_length: int | None = None) -> torch.Tensor:
    """SD's one prompt through its one text encoder [1, 77, d], padded to max_length, like diffusers'
    encode_prompt (the Hugging Face diffusion course, Unit 3: prompt -> tokens -> ids -> embeddings)."""
    max_length = max_length or tokenizer.model_max_length
    ids = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    attention_mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        attention_mask = ids.attention_mask.to(device)
    embeds = text_encoder(ids.input_ids.to(device), attention_mask=attention_mask)[0]
    return embeds.to(dtype=text_encoder.dtype, device=device)


def _encode_both(pipe, text: str, device, max_length: int | None = None):
    """One prompt through every text encoder the pipeline has: (concatenated hidden states, pooled output)."""
    hidden, pooled = [], None
    for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        if encoder is None:  # the refiner has the second encoder only
            continue
        ids = tokenizer(text, padding="max_length", max_length=max_length or tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        out = encoder(ids.to(device), output_hidden_states=True)
        if pooled is None and out[0].ndim == 2:  # only the projection model's output is pooled
            pooled = out[0]
        hidden.append(out.hidden_states[-2])
    return torch.concat(hidden, dim=-1), pooled


def encode(pipe, prompt: str, negative_prompt: str | None, device) -> Conditioning:
    """SDXL: both branches' embeddings. No negative prompt (None) gives zeros where the model's config says
    `force_zeros_for_empty_prompt` (SDXL base), as the pipeline does; "" is encoded like any prompt."""
    prompt_embeds, pooled = _encode_both(pipe, prompt, device)
    if negative_prompt is None and pipe.config.get("force_zeros_for_empty_prompt", False):
        negative_embeds, negative_pooled = torch.zeros_like(prompt_embeds), torch.zeros_like(pooled)
    else:
        negative_embeds, negative_pooled = _encode_both(pipe, negative_prompt or "", device, prompt_embeds.shape[1])
    dtype = (pipe.text_encoder_2 or pipe.unet).dtype
    both = torch.cat([negative_embeds.to(dtype=dtype, device=device), prompt_embeds.to(dtype=dtype, device=device)])
    return Conditioning(both, torch.cat([negative_pooled, pooled]).to(device))


def text_conditioning(pipe, prompt: str, negative_prompt: str | None, device, prompt_embeds=None,
                      negative_prompt_embeds=None) -> Conditioning:
    """Both CFG branches' text conditioning, as the model's pipeline computes it. SD: one text encoder (given
    embeddings, diffusers' prompt_embeds / negative_prompt_embeds, are used as they are); SDXL: `encode`."""
    if is_sdxl(pipe):
        return encode(pipe, prompt, negative_prompt, device)
    text_embeds = prompt_embeds if prompt_embeds is not None else _encode_one(
        pipe.tokenizer, pipe.text_encoder, prompt, device)
    uncond_embeds = negative_prompt_embeds if negative_prompt_embeds is not None else _encode_one(
        pipe.tokenizer, pipe.text_encoder, negative_prompt or "", device, max_length=text_embeds.shape[1])
    return Conditioning(torch.cat([uncond_embeds, text_embeds]))


def add_time_ids(pipe, conditioning: Conditioning, height: int, width: int, device) -> None:
    """Fill in the size conditioning: the picture's own size, no crop (the pipelines' defaults)."""
    size, crop = (height, width), (0, 0)
    if pipe.config.get("requires_aesthetics_score", False):
        text, negative = [*size, *crop, AESTHETIC_SCORE], [*size, *crop, NEGATIVE_AESTHETIC_SCORE]
    else:
        text = negative = [*size, *crop, *size]
    dtype = conditioning.prompt_embeds.dtype
    ids = torch.cat([torch.tensor([negative], dtype=dtype), torch.tensor([text], dtype=dtype)])
    conditioning.time_ids = ids.to(device)

