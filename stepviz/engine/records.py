"""What the engine records: one StepRecord per scheduler step, plus the run log.

Tensors stay on the run's device and dtype; the metric floats are computed once,
when the step is taken. The UI and the exports read these records and nothing else,
so a record never needs to know which scheduler or mode produced it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

# Metric and schedule fields that are plain floats, in the order exports write them.
FLOAT_FIELDS = (
    "timestep",
    "sigma",
    "sigma_next",
    "alpha_cumprod",
    "guidance_scale",
    "norm_uncond",
    "norm_text",
    "norm_guidance",
    "norm_noise_pred",
    "cos_uncond_text",
    "latents_std",
    "pred_original_std",
    "seconds_unet",
    "seconds_scheduler",
    "seconds_total",
)


@dataclass
class StepRecord:
    """Everything one iteration of the denoising loop did.

    `index` counts loop iterations from 0; `latents` is x_{t-1} (after the inpaint
    blend where there is one) and `pred_original_sample` is x0-hat at this step.
    """

    index: int
    num_steps: int
    timestep: float
    sigma: float
    alpha_cumprod: float
    guidance_scale: float
    scheduler: str
    latents: torch.Tensor
    pred_original_sample: torch.Tensor
    noise_pred_uncond: torch.Tensor
    noise_pred_text: torch.Tensor
    norm_uncond: float
    norm_text: float
    norm_guidance: float
    norm_noise_pred: float
    cos_uncond_text: float
    latents_std: float
    pred_original_std: float
    mode: str = "txt2img"
    # latent space of `latents`: "vp", "sigma" (x = x0 + sigma eps) or "flow" (x = (1 - sigma) x0 + sigma eps;
    # alpha_cumprod then holds 1 - sigma, the picture's share)
    family: str = "vp"
    # what the UNet output (noise_pred_*) is: "epsilon", "v_prediction" or "sample" (engine/prediction.py)
    prediction_type: str = "epsilon"
    # SDXL's size conditioning of the prompt branch: (original h, w, crop top, left, target h, w); None for SD
    add_time_ids: tuple[float, ...] | None = None
    sigma_next: float = 0.0  # noise level of `latents`, after the step
    # inpaint (DIY blend): re-noised original latents and the latent-size mask (1 = repaint)
    background: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    latents_before_blend: torch.Tensor | None = None  # the scheduler's x_{t-1}, before the blend
    # inpaint model / depth2img: the extra UNet input channels
    masked_image_latents: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    # where a NaN/Inf first appeared in this step ("unet", "guidance", ...), else None
    nonfinite: str | None = None
    seconds_unet: float = 0.0
    seconds_scheduler: float = 0.0
    seconds_total: float = 0.0
    # Stepper(capture_attention=True): [len(prompt_anatomy.tokens), h, w] at latent size (see engine/attention.py);
    # capture_attention="layers" adds {layer name: [tokens, h_layer, w_layer]}
    cross_attention: torch.Tensor | None = None
    cross_attention_layers: dict[str, torch.Tensor] | None = None
    # a multistep solver's (filled, capacity) history after this step; None for one-step schedulers
    history_fill: tuple[int, int] | None = None
    # what drove the step: "cfg" (eps_uncond + s (eps_text - eps_uncond)) or "text" (the prompt's prediction
    # alone, as diffusers at s <= 1 or with an LCM's guidance embedding; eps_uncond is then only shown)
    noise_pred_from: str = "cfg"
    # the flow family's schedule: the fixed shift s (SD3: 3.0), or mu where it shifts by resolution (FLUX.1)
    shift: float | None = None
    mu: float | None = None
    # FLUX.1: the two-call CFG scale that combines the branches (guidance_scale is then the embedded guidance)
    true_cfg_scale: float | None = None

    @property
    def noise_pred(self) -> torch.Tensor:
        """eps_hat = eps_uncond + s (eps_text - eps_uncond), recomputed (same op, same bits) to save memory;
        eps_text where the prompt's prediction alone drove the step."""
        from .guidance import combine

        if self.noise_pred_from == "text":
            return self.noise_pred_text
        return combine(self.noise_pred_uncond, self.noise_pred_text, self.cfg_scale)

    @property
    def cfg_scale(self) -> float:
        """The scale that combined the branches: guidance_scale, or FLUX.1's true_cfg_scale."""
        return self.guidance_scale if self.true_cfg_scale is None else self.true_cfg_scale

    def floats(self) -> dict[str, float]:
        """The record's numbers, for metrics.csv/json: the step (1-based, as the TUI and strips number it:
        step k is the k-th scheduler step, `index` + 1), then FLOAT_FIELDS."""
        row: dict[str, float] = {"step": self.index + 1, "num_steps": self.num_steps}
        for name in FLOAT_FIELDS:
            row[name] = float(getattr(self, name))
        return row

    def tensor_fields(self) -> dict[str, torch.Tensor]:
        """The tensors the record holds (noise_pred is derived, so not among them)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }


@dataclass
class PromptAnatomy:
    """How a prompt became the text encoder's input (the Hugging Face diffusion course, Unit 3)."""

    text: str
    tokens: list[str]
    input_ids: list[int]
    embedding_shape: tuple[int, ...]
    max_length: int
    truncated_text: str | None = None  # the part cut off beyond max_length, if any

    @property
    def notice(self) -> str | None:
        if self.truncated_text is None:
            return None
        return (
            f"prompt is longer than the tokenizer's {self.max_length} tokens; "
            f"this part was cut: {self.truncated_text!r}"
        )
