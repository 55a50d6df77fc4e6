"""The pipeline's flow loop replayed on what a traced flow loop drew and encoded: the reference a flow trace's
final latents are measured against (FlowTraceReport.final_difference), as compare.py's reference is for SD.

From the loop's own starting noise eps (its first torch.randn; the loop's x_T when it drew none that fits), with
the pipeline's scheduler set as the pipeline sets it (the shift, FLUX.1's mu), each step calls the transformer
again with the loop's own conditioning (its keyword arguments: prompt embeddings, pooled projections, FLUX.1's
ids and guidance) on the reference x_t at the pipeline's t (SD3: 1000 sigma; FLUX.1: sigma, its pipeline gives
t / 1000), combines the calls as the loop combined its own, then steps the scheduler:

    v_hat  = v_row                        one row (no CFG, or FLUX.1's embedded guidance)
    v_hat  = v_u + s (v_t - v_u)          two rows (SD3's batch of two, FLUX.1's true CFG), s fitted on the
                                          loop's own rows and v_hat; the order with the larger s is CFG's
    x_{t-1} = scheduler.step(v_hat, t, x_t)

A combination of another form (more rows, a rescale) has no reference: final_difference is None then.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engine.guidance import combine

FIT_TOLERANCE = 1e-4  # the fitted line must give the loop's v_hat back to this (relative, max abs)


@dataclass(frozen=True)
class Combination:
    """How a loop made v_hat from its transformer's rows: rows[text] alone (uncond None), or the CFG line
    rows[uncond] + scale (rows[text] - rows[uncond])."""

    text: int
    uncond: int | None = None
    scale: float = 1.0

    def apply(self, rows: list[torch.Tensor]) -> torch.Tensor:
        if self.uncond is None:
            return rows[self.text]
        return combine(rows[self.uncond], rows[self.text], self.scale)


def fitted_combination(rows: list[torch.Tensor], v_hat: torch.Tensor) -> Combination | None:
    """The Combination that gives the loop's v_hat back from its rows; None if it is not of a known form."""
    v = v_hat.detach().double()
    tolerance = FIT_TOLERANCE * (float(v.abs().max()) or 1.0)

    def gives_v(combination: Combination) -> bool:
        candidate = combination.apply(rows)
        return candidate.shape == v.shape and float((candidate.double() - v).abs().max()) <= tolerance

    if len(rows) == 1:
        return Combination(0) if gives_v(Combination(0)) else None
    if len(rows) != 2:
        return None
    fits = []
    for uncond, text in ((0, 1), (1, 0)):
        u, d = rows[uncond].double(), rows[text].double() - rows[uncond].double()
        if float((d * d).sum()) > 0.0:
            fits.append((float(((v - u) * d).sum() / (d * d).sum()), uncond, text))
    if not fits:
        return None
    scale, uncond, text = max(fits)  # CFG's s > 1: the uncond row is the one the line starts from
    written = Combination(text, uncond, round(scale, 4))  # a loop's guidance scale is a written number
    fitted = written if gives_v(written) else Combination(text, uncond, scale)
    return fitted if gives_v(fitted) else None


def _rows(output: torch.Tensor) -> list[torch.Tensor]:
    return [output[i:i + 1] for i in range(output.shape[0])]


def model_rows(step) -> list[torch.Tensor]:
    """A traced step's transformer outputs, one row each, in call order (flow.FlowStepSeen)."""
    return [row for call in step.model_calls for row in _rows(call["output"])]


def _with_latents(hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
    """The call's hidden_states with the reference x_t in place of the loop's (one copy per row; an SD3 inpainting
    transformer's extra channels kept); None when the call's input is not x_t in a form this knows."""
    rows = hidden.shape[0]
    if hidden.shape[1:] == x.shape[1:]:
        return torch.cat([x] * rows)
    if hidden.ndim == 4 and hidden.shape[2:] == x.shape[2:] and hidden.shape[1] > x.shape[1]:
        return torch.cat([torch.cat([x] * rows), hidden[:, x.shape[1]:]], dim=1)
    return None


def reference_final_latents(transformer, scheduler, steps, noise: torch.Tensor, flux: bool) -> torch.Tensor | None:
    """The pipeline's final latents from `noise` (the loop's layout), with the loop's conditioning and combination;
    `scheduler` is set for as many steps as the loop made. None where the loop's calls cannot be replayed."""
    x = noise
    if len(scheduler.timesteps) != len(steps):
        return None
    with torch.no_grad():
        for step, t in zip(steps, scheduler.timesteps):
            if not step.model_calls or step.model_output is None:
                return None
            combination = fitted_combination(model_rows(step), step.model_output)
            if combination is None:
                return None
            new_rows = []
            for call in step.model_calls:
                hidden = _with_latents(call["hidden_states"], x)
                if hidden is None:
                    return None
                given = call["kwargs"]["timestep"]
                model_t = (t / 1000 if flux else t).to(dtype=torch.as_tensor(given).dtype)
                kwargs = {**call["kwargs"], "hidden_states": hidden, "timestep": model_t.expand(hidden.shape[0]),
                          "return_dict": False}
                new_rows += _rows(transformer(**kwargs)[0])
            x = scheduler.step(combination.apply(new_rows), t, x, return_dict=False)[0]
    return x
