"""What the UNet predicts, named after the scheduler's `prediction_type`, and x0-hat from it.

    epsilon       eps  the noise:        x_t = sqrt(abar) x0 + sqrt(1 - abar) eps   (Ho et al. 2020)
    v_prediction  v    the velocity:     v = sqrt(abar) eps - sqrt(1 - abar) x0      (Salimans & Ho 2022)
    sample        x0   the clean latents themselves
    flow_prediction  v (flow)  the flow's velocity:  v = eps - x0,  x_t = (1 - sigma) x0 + sigma eps
                                                     (Lipman et al. 2023; Esser et al. 2024, SD3)

SD 1.x and SDXL predict eps; SD 2.x at 768 px (and its "-v" checkpoints) predict v; SD3 and FLUX.1 predict
the flow's v (their scheduler configs name no prediction_type: the flow family implies it). Classifier-free
guidance combines whichever it is the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from .noise_scale import abar_of


@dataclass(frozen=True)
class Prediction:
    prediction_type: str  # as diffusers' scheduler configs spell it
    symbol: str  # as the panels write it: eps, v, x0
    pretty: str  # as plots write it: ε, v, x₀
    meaning: str
    x0_vp: str  # x0-hat in the VP family (x_t = sqrt(abar) x0 + sqrt(1 - abar) eps)
    x0_sigma: str  # x0-hat in the sigma family (x = x0 + sigma eps)
    x0_flow: str = "x_t - sigma v_hat"  # x0-hat in the flow family (x_t = (1 - sigma) x0 + sigma eps)
    says: str = ""  # what the panels write after "predicts": the symbol, or "v (flow)"

    @property
    def name(self) -> str:
        """What the model predicts, in the words the panels use: eps, v, x0, or v (flow)."""
        return self.says or self.symbol

    def cfg_line(self, scale: str = "s", short: bool = False) -> str:
        """The CFG line in this prediction's symbols; short: u/t subscripts instead of uncond/text."""
        u, t = (f"{self.symbol}_u", f"{self.symbol}_t") if short else (f"{self.symbol}_uncond", f"{self.symbol}_text")
        return f"{self.symbol}_hat = {u} + {scale} ({t} - {u})"


PREDICTIONS = {
    p.prediction_type: p
    for p in (
        Prediction("epsilon", "eps", "ε", "the noise eps in x_t",
                   "(x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)", "x - sigma eps_hat"),
        Prediction("v_prediction", "v", "v", "the velocity v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0",
                   "sqrt(abar_t) x_t - sqrt(1 - abar_t) v_hat",
                   "x / (sigma^2 + 1) - sigma v_hat / sqrt(sigma^2 + 1)"),
        Prediction("sample", "x0", "x₀", "the clean latents x0 themselves", "x0_hat", "x0_hat"),
        Prediction("flow_prediction", "v", "v", "the flow's velocity v = eps - x0", "(a flow model runs on the flow "
                   "path only)", "(the same)", says="v (flow)"),
    )
}


def prediction_for(prediction_type: str | None) -> Prediction:
    """The entry for a scheduler config's prediction_type (None: epsilon, diffusers' default)."""
    return PREDICTIONS.get(prediction_type or "epsilon") or Prediction(
        prediction_type, prediction_type, prediction_type, f"what {prediction_type} names", "?", "?")


def pred_original(model_output, x, sigma: float, family: str, prediction_type: str):
    """x0-hat from the (guided) model output by the family's formula, for schedulers that do not return it."""
    if prediction_type == "sample":
        return model_output
    if family == "flow":  # x_t = (1 - sigma) x0 + sigma eps and v = eps - x0 give x0 = x_t - sigma v
        return pred_original_flow(model_output, x, sigma)
    if family == "sigma":
        if prediction_type == "v_prediction":
            c = (sigma * sigma + 1.0) ** 0.5  # diffusers EulerDiscreteScheduler, v_prediction
            return x / (sigma * sigma + 1.0) - model_output * (sigma / c)
        return x - sigma * model_output
    abar = abar_of(sigma)
    sqrt_abar, sqrt_one_minus = abar**0.5, (1.0 - abar) ** 0.5
    if prediction_type == "v_prediction":
        return sqrt_abar * x - sqrt_one_minus * model_output
    return (x - sqrt_one_minus * model_output) / sqrt_abar


FLOW_PREDICTION = "flow_prediction"


def pred_original_flow(velocity, x, sigma: float):
    """x0-hat = x_t - sigma v_hat (the flow family; FlowMatchEulerDiscreteScheduler returns none)."""
    return x - sigma * velocity


def pred_noise_flow(velocity, x, sigma: float):
    """eps-hat = x_t + (1 - sigma) v_hat: the noise the flow model believes is in x_t."""
    return x + (1.0 - sigma) * velocity
