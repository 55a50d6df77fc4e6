"""How straight a run's path is: the distance of x_t from the straight line between where the loop started
and where it ended, per step.

    chord c = x_end - x_start             the straight line from the start noise x_T to the final latents x_0
    lambda  = <x_t - x_start, c> / |c|^2  (clamped to [0, 1]) the nearest point of the line to x_t
    d_t     = |x_t - x_start - lambda c| / |c|

d_t is 0 on the line and 0.21 half-way along a quarter circle between two orthogonal vectors of equal length.
A flow model's loop carries x_t = (1 - sigma) x0 + sigma eps: a straight line while its x0-hat stays put
(Lipman et al. 2023; Liu et al. 2023, "rectified flow"). A VP loop carries x_t = sqrt(abar) x0 + sqrt(1 - abar)
eps: an arc (the angle of Salimans & Ho 2022's v-parametrisation), whatever the model predicts (eps or v).
Measured on the latents as the loop carries them (the run's own coordinates, its first step's family).
"""

from __future__ import annotations

import torch


def distance_from_line(x: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> float:
    """d_t: the distance of x from the segment start -> end, over the segment's length (0 when it is empty)."""
    x, start, end = (t.detach().double().cpu().flatten() for t in (x, start, end))
    chord, offset = end - start, x - start
    length2 = float(chord @ chord)
    if length2 == 0.0:
        return 0.0
    along = min(max(float(offset @ chord) / length2, 0.0), 1.0)
    return float((offset - along * chord).norm()) / length2**0.5


def path_distances(stepper) -> list[float]:
    """d_t after each step of the run, from its starting latents to its latents after the last step taken;
    the loop's own coordinates (a run swapped across families is measured on the VP scale throughout)."""
    from .noise_scale import to_vp_scale

    records = stepper.records
    if not records:
        return []
    start = stepper.run_inputs.latents
    if len({r.family for r in records}) == 1:
        path = [r.latents for r in records]
    else:
        from .schedulers import start_on_vp_scale

        start = start_on_vp_scale(stepper)
        path = [to_vp_scale(r.latents, r.family, r.sigma_next) for r in records]
    return [distance_from_line(x, start, path[-1]) for x in path]
