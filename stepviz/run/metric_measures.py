"""How `stepviz lessons check` computes a metric claim's metric on a lesson's played runs.

METRIC_MEASURES maps each metric the checker computes (claims.DERIVED_METRICS) to a function
(claim, runs, steps taken, the run's stepper) -> float; a StepRecord's own floats (claims.RECORD_METRICS)
are read from the record of the step instead. `runs` is lesson_check.LessonRuns: the lesson's runs, played
once, with their pictures decoded on demand. Pictures compare by mean |pixel difference| on 0..255.
"""

from __future__ import annotations

from ..lessons import run_measures
from ..lessons.claims import ATTENTION_METRICS, Claim


def mean_difference(a, b, where=None) -> float:
    """Mean |pixel difference| on 0..255 over all pixels (or where `where` is True)."""
    import numpy as np

    diff = np.abs(np.asarray(a.convert("RGB"), dtype=np.float32) - np.asarray(b.convert("RGB"), dtype=np.float32))
    if where is not None:
        diff = diff[where]
    return float(diff.mean())



def metric_value(claim: Claim, runs, taken: int) -> float:
    """The value of a metric claim's metric once `taken` steps are taken: computed by the checker (METRIC_MEASURES)
    or, for a StepRecord's float, read from the record of step `taken`."""
    stepper = runs.stepper(claim.run)
    measured = METRIC_MEASURES.get(claim.metric)
    if measured is not None:
        return measured(claim, runs, taken, stepper)
    if taken < 1:
        raise LookupError(f"{claim.metric} is recorded by a step: there is none before step 1")
    return float(getattr(stepper.records[taken - 1], claim.metric))


def _picture_change(claim: Claim, runs, taken: int, stepper) -> float:
    if taken < 1 + (claim.picture == "x0_hat"):
        raise LookupError(f"picture_change of {claim.picture} needs a step before it")
    return mean_difference(runs.picture(claim.run, claim.picture, taken),
                           runs.picture(claim.run, claim.picture, taken - 1))


def _input_overlap(claim: Claim, runs, taken: int, stepper) -> float:
    import numpy as np

    from ..toy.checker import inspect

    mine = inspect(runs.picture(claim.run, claim.picture, taken))["mask"]
    theirs = inspect(runs.input_picture(claim.run))["mask"]
    union = np.logical_or(mine, theirs).sum()
    return float(np.logical_and(mine, theirs).sum() / union) if union else 0.0


def _outside_mask_difference(claim: Claim, runs, taken: int, stepper) -> float:
    import numpy as np

    keep = np.asarray(runs.input_picture(claim.run, "mask_image").convert("L")) < 128
    return mean_difference(runs.picture(claim.run, claim.picture, taken), runs.input_picture(claim.run), keep)


def _input_latents(claim: Claim, stepper):
    """E(input) * scaling_factor, the latents an img2img/inpaint/depth2img run starts from."""
    latents = stepper.run_inputs.image_latents
    if latents is None:
        raise LookupError(f"{claim.metric} needs a run that encodes an input picture (img2img, inpaint, depth2img)")
    return latents


def _input_round_trip(claim: Claim, runs, taken: int, stepper) -> float:
    from ..render.preview import decode_images

    latents = _input_latents(claim, stepper)
    return mean_difference(decode_images(stepper.pipe, latents)[0], runs.input_picture(claim.run))


def _run_measure(claim: Claim, runs, taken: int, stepper) -> float:
    return run_measures.measure(claim.metric, runs, claim.run, taken, mean_difference)


# metric -> how the checker computes it, (claim, runs, steps taken, the run's stepper) -> float; the StepRecord's
# floats (claims.RECORD_METRICS) are read from the record instead
METRIC_MEASURES = {
    "steps_run": lambda claim, runs, taken, stepper: float(len(stepper.records)),
    "prompt_tokens": lambda claim, runs, taken, stepper: float(len(stepper.prompt_anatomy.tokens)),
    "prompt_truncated": lambda claim, runs, taken, stepper: float(stepper.prompt_anatomy.truncated_text is not None),
    "x_t_vs_x0_hat": lambda claim, runs, taken, stepper: float(
        (runs.latents(claim.run, "x_t", taken) - runs.latents(claim.run, "x0_hat", taken)).abs().mean()),
    "picture_change": _picture_change,
    "input_difference": lambda claim, runs, taken, stepper: mean_difference(
        runs.picture(claim.run, claim.picture, taken), runs.input_picture(claim.run)),
    "input_overlap": _input_overlap,
    "outside_mask_difference": _outside_mask_difference,
    **{name: (lambda claim, runs, taken, stepper: attention_value(claim, runs, taken)) for name in ATTENTION_METRICS},
    **{name: _run_measure for name in run_measures.MEASURES},
    "input_round_trip": _input_round_trip,
    "input_latents_std": lambda claim, runs, taken, stepper: float(_input_latents(claim, stepper).std()),
    "path_distance": lambda claim, runs, taken, stepper: path_distance_value(runs, claim.run, taken),
    "sigma_step": lambda claim, runs, taken, stepper: sigma_step_value(runs, claim.run, taken),
}


def path_distance_value(runs, label: str, taken: int) -> float:
    """x_t's distance from the straight line between the run's start noise and its final latents, once `taken`
    steps are taken (0 before the first step)."""
    from ..engine.path_geometry import path_distances

    return 0.0 if taken == 0 else path_distances(runs.stepper(label))[taken - 1]


def sigma_step_value(runs, label: str, taken: int) -> float:
    """sigma - sigma_next of the step that `taken` completes: the step size on the noise level."""
    if taken < 1:
        raise LookupError("sigma_step is recorded by a step: there is none before step 1")
    record = runs.stepper(label).records[taken - 1]
    return float(record.sigma - record.sigma_next)


def attention_value(claim: Claim, runs, taken: int) -> float:
    """A word's share of cross-attention mass on the shape in x0-hat (attention_on_shape), or that share over
    the share of the picture the shape covers (attention_vs_even), as the TUI's attention view shows them."""
    from ..render.attention_pictures import foreground_shares, token_labels

    if taken < 1:
        raise LookupError("the attention maps are recorded by a step: there is none before step 1")
    stepper = runs.stepper(claim.run)
    maps = stepper.records[taken - 1].cross_attention
    if maps is None:
        raise LookupError(f"the {claim.run} run records no attention maps")
    labels = token_labels(stepper.prompt_anatomy.tokens)
    if claim.token not in labels:
        raise LookupError(f"token {claim.token!r} is not in the prompt; its tokens are {', '.join(labels)}")
    cells, shares = foreground_shares(runs.picture(claim.run, "x0_hat", taken), maps)
    share = shares[labels.index(claim.token)]
    if claim.metric == "attention_on_shape":
        return share
    if cells.mean() <= 0:
        raise LookupError("the checker finds no shape in x0-hat at this step")
    return share / float(cells.mean())
