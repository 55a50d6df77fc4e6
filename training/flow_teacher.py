"""A trained VP model as the flow model's teacher: its estimate of E[eps - x_0 | x_t, caption] as the velocity
target, in place of the one-sample target eps - x_0 (same expectation, far less variance).

The flow path and the VP path are the same family of pictures up to a scale: with
    c = 1 / sqrt((1 - sigma)^2 + sigma^2),  x_vp = c x_t = sqrt(a) x_0 + sqrt(1 - a) eps,
    a = ((1 - sigma) c)^2,
the teacher (a v-prediction UNet, v_vp = sqrt(a) eps - sqrt(1 - a) x_0, Salimans & Ho 2022, appendix D) gives
    x0_hat = sqrt(a) x_vp - sqrt(1 - a) v_vp,  eps_hat = sqrt(1 - a) x_vp + sqrt(a) v_vp,
and the flow target is eps_hat - x0_hat. The teacher runs at the timestep whose alpha_cumprod is a (interpolated
in log-SNR between its integer timesteps); beyond its noisiest trained timestep it is not asked (`covers`).
"""

from __future__ import annotations

import torch

from .sources import part


class VelocityTeacher:
    """A shipped v-prediction toy ("toy-v") read as a flow-velocity estimator over the same latents."""

    def __init__(self, model: str = "toy-v", captions: list[str] | None = None):
        from diffusers import DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        self.unet = UNet2DConditionModel.from_pretrained(part(model, "unet"), use_safetensors=True).eval()
        scheduler = DDIMScheduler.from_pretrained(part(model, "scheduler"))
        if scheduler.config.prediction_type != "v_prediction":
            raise SystemExit(f"--teacher {model}: it predicts {scheduler.config.prediction_type}, the teacher must "
                             "predict v")
        text_encoder = CLIPTextModel.from_pretrained(part(model, "text_encoder"), use_safetensors=True).eval()
        tokenizer = CLIPTokenizer.from_pretrained(str(part(model, "tokenizer")))
        ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        with torch.no_grad():
            self.context = text_encoder(ids)[0]  # one row per caption index
        alphas_cumprod = scheduler.alphas_cumprod.double()
        self.log_snr = (alphas_cumprod / (1 - alphas_cumprod)).log()  # falls with t
        self.lowest_alpha = float(alphas_cumprod[-1])
        for parameter in self.unet.parameters():
            parameter.requires_grad_(False)

    def covers(self, sigma: torch.Tensor) -> torch.Tensor:
        """Which flow sigmas lie within the teacher's trained noise levels."""
        return (1 - sigma) ** 2 / ((1 - sigma) ** 2 + sigma**2) >= self.lowest_alpha

    def timestep(self, alpha: torch.Tensor) -> torch.Tensor:
        """The fractional timestep whose alpha_cumprod is `alpha` (linear in log-SNR between neighbours)."""
        log_snr = (alpha / (1 - alpha)).log().double()
        descending = -self.log_snr
        upper = torch.searchsorted(descending, -log_snr).clamp(1, len(descending) - 1)
        lower = upper - 1
        fraction = (-log_snr - descending[lower]) / (descending[upper] - descending[lower])
        return (lower + fraction.clamp(0, 1)).float()

    @torch.no_grad()
    def velocity(self, x_t: torch.Tensor, sigma: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        """The teacher's eps_hat - x0_hat at flow latents x_t, noise level sigma, for caption indices `caption`."""
        c = 1 / ((1 - sigma) ** 2 + sigma**2).sqrt()
        alpha = ((1 - sigma) * c) ** 2
        root_a, root_1ma = (v.view(-1, 1, 1, 1) for v in (alpha.sqrt(), (1 - alpha).sqrt()))
        x_vp = c.view(-1, 1, 1, 1) * x_t
        v_vp = self.unet(x_vp, self.timestep(alpha), encoder_hidden_states=self.context[caption]).sample
        x0_hat = root_a * x_vp - root_1ma * v_vp
        eps_hat = root_1ma * x_vp + root_a * v_vp
        return eps_hat - x0_hat
