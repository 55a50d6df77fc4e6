"""Claims: what a lesson's note says the screen shows, written so `stepviz lessons check` can test it.

A lesson event carries expectations in `[[events.expect]]` tables (after its `[[events]]` table):

    [[events]]
    at_step = 8
    note = "The s = 7.5 x0-hat is yellow by now; the s = 1 run is not."

    [[events.expect]]             # the checker's colour/shape/background in a picture
    run = "guidance 7.5"          # "main" (default) or a [[compare]] label
    picture = "x0_hat"            # "x0_hat" (default) or "x_t" (the latents, decoded)
    colour = "yellow"             # any of colour, shape, background; a list means "one of these"

    [[events.expect]]             # two runs' pictures differ (mean |pixel difference| on 0..255)
    run = "guidance 15"
    differs_from = "guidance 7.5"
    by_more_than = 20

    [[events.expect]]             # ... or are the same picture
    run = "strength 1.0"
    same_as = "strength 0.5"
    within = 2

    [[events.expect]]             # a number the tool records, above and/or below a value
    metric = "sigma_next"
    above = 0.02
    below = 0.04

    [[events.expect]]             # a shipped example loop run under stepviz.trace (`stepviz trace ...`)
    trace = "course-loop lms"     # the example's name, then its arguments
    first_divergence = "init-noise-sigma-order"   # a cause id, "unexplained", or "none" (it matches)
    divergence_step = 0           # optional: the loop index where it first diverges
    above = 0.3                   # optional: bounds on its final latents' max abs difference

    [[events.expect]]             # stepviz refuses these settings of the run, with a message that says this
    refused = { height = 500, width = 500 }
    says = "multiple of 8"

    [[events.expect]]             # a claim counted over seeds: at how many of them it holds
    seeds = "0-7"                 # the run (here a [[compare]] label) played at each seed
    run = "LMS"
    step = "end"
    picture = "x_t"
    colour = "red"                # the claim counted: what the checker sees, differs_from, same_as or a metric
    count = 6                     # exactly; or at_least = N and/or at_most = N

    [[events.expect]]             # a value of the run's model config (claims_beyond_the_run.py)
    config = "vae.scaling_factor"
    equals = 1.0

Claims on the description's sentences go in top-level [[expect]] tables (measured at the run's end unless
they say `step`).

Every claim is measured when the run has taken the event's at_step steps, unless it says
`step = N` (steps taken) or `step = "end"` (after the run's last step). `say` is an optional
sentence printed with the result. Claims are data; this module parses and checks their shape.
"""

from __future__ import annotations

from functools import partial

from . import claims_beyond_the_run
from .claim_record import ATTENTION_METRICS, PICTURE_METRICS, Claim, ClaimFormError, _number, _text
from .claims_beyond_the_run import COUNT_KEYS
from .run_measures import MEASURES

# Claim and ClaimFormError live in claim_record.py; other modules take them from here
__all__ = ["ATTENTION_METRICS", "PICTURE_METRICS", "Claim", "ClaimFormError", "parse_claim"]

PICTURES = ("x0_hat", "x_t")
SEES_KEYS = ("colour", "shape", "background")
# metric -> what it measures (record fields are the StepRecord's floats; the rest are computed by the checker)
RECORD_METRICS = ("timestep", "sigma", "sigma_next", "alpha_cumprod", "guidance_scale", "norm_uncond", "norm_text",
                  "norm_guidance", "norm_noise_pred", "cos_uncond_text", "latents_std", "pred_original_std")
DERIVED_METRICS = {
    "steps_run": "the number of steps the run took, to its end",
    "prompt_tokens": "tokens the text encoder sees for the prompt, start and end tokens included",
    "prompt_truncated": "1 when the prompt was cut at the tokenizer's limit, else 0",
    "x_t_vs_x0_hat": "mean |x_t - x0-hat| over the latents at the step (x_t on the VP scale)",
    "picture_change": "mean |pixel difference| (0..255) of the picture from the step before",
    "input_difference": "mean |pixel difference| (0..255) of the picture from the input picture",
    "outside_mask_difference": "mean |pixel difference| (0..255) from the input, where the mask keeps the input",
    "input_overlap": "IoU of the shape the checker finds in the picture with the one it finds in the input (0..1)",
    "input_round_trip": "mean |pixel difference| (0..255) between the input picture and D(E(input))",
    "input_latents_std": "std of E(input) * scaling_factor: the latents the loop starts from",
    "attention_on_shape": "the share of a word's cross-attention mass on the shape the checker finds in x0-hat "
                          "(0..1; token = the word)",
    "attention_vs_even": "attention_on_shape / the share of the picture the shape covers: 1 is an even spread "
                         "(token = the word)",
    "path_distance": "the distance of x_t from the straight line between the run's start noise and its final "
                     "latents, over that line's length (engine/path_geometry.py)",
    "sigma_step": "sigma - sigma_next: how far the step moves the noise level (a flow run's step size)",
}
DERIVED_METRICS.update(MEASURES)  # how the run is computed: latents' size, memory options (run_measures.py)
METRICS = RECORD_METRICS + tuple(DERIVED_METRICS)
CLAIM_KEYS = ("run", "picture", "step", "say", *SEES_KEYS, "differs_from", "by_more_than", "same_as", "within",
              "metric", "above", "below", "token", "trace", "first_divergence", "divergence_step", "refused", "says",
              "seeds", "count", "at_least", "at_most", "overrides", "config", "equals")
DEFAULT_SAME_WITHIN = 2.0  # mean |pixel difference| on 0..255 that still counts as "the same picture"


# a claim's kind -> the keys that make a table that kind (a table has exactly one kind)
KIND_KEYS = {"sees": SEES_KEYS, "differs": ("differs_from",), "same": ("same_as",), "metric": ("metric",),
             "trace": ("trace",), "refusal": ("refused",), "config": ("config",)}


def parse_claim(table: dict, at_step: int | str) -> Claim:
    """A Claim from one [[events.expect]] table; raises ClaimFormError naming the key."""
    for key in table:
        if key not in CLAIM_KEYS:
            raise ClaimFormError(key, f"unknown key; allowed keys are {', '.join(CLAIM_KEYS)}")
    if any(key in table for key in COUNT_KEYS):
        return claims_beyond_the_run.count_claim(table, at_step, parse_claim)
    kinds = [kind for kind, keys in KIND_KEYS.items() if any(key in table for key in keys)]
    if len(kinds) != 1:
        raise ClaimFormError(next(iter(table), "run"), "a claim needs exactly one of: colour/shape/background, "
                             "differs_from, same_as, metric, trace, refused, config; seeds counts one of the first "
                             f"four (found {', '.join(kinds) or 'none'})")
    kind = kinds[0]
    return CLAIM_PARSERS[kind](table, _common_fields(table, at_step, kind))


def _common_fields(table: dict, at_step: int, kind: str) -> dict:
    """run, picture, step and say, which every kind of claim takes."""
    run = _text(table, "run", "main")
    picture = _text(table, "picture", "x0_hat")
    if picture not in PICTURES:
        raise ClaimFormError("picture", f"{picture!r} is not allowed: use {' or '.join(PICTURES)}")
    step = table.get("step", at_step)
    if not (step == "end" or (isinstance(step, int) and not isinstance(step, bool) and step >= 0)):
        raise ClaimFormError("step", f"{step!r} is not allowed: use the number of steps taken (>= 0) or \"end\"")
    if picture == "x0_hat" and step == 0 and kind in ("sees", "differs", "same"):
        raise ClaimFormError("step", "there is no x0-hat before the first step: use step >= 1 or picture = \"x_t\"")
    say = table.get("say")
    if say is not None and not isinstance(say, str):
        raise ClaimFormError("say", f"{say!r} is not allowed: it must be a string")
    return dict(run=run, picture=picture, step=step, say=say)


def _sees_claim(table: dict, common: dict) -> Claim:
    """colour, shape and/or background: a name the checker may find, or a list of them (one of these)."""
    from ..toy.world import BACKGROUNDS, COLOURS, SHAPES

    allowed = {"colour": tuple(COLOURS), "shape": tuple(SHAPES), "background": tuple(BACKGROUNDS)}
    sees = {}
    for key in SEES_KEYS:
        if key in table:
            names = table[key] if isinstance(table[key], list) else [table[key]]
            bad = [n for n in names if n not in allowed[key]]
            if bad or not names:
                raise ClaimFormError(key, f"{table[key]!r} is not allowed: use one of {', '.join(allowed[key])} "
                                     "(or a list of them)")
            sees[key] = tuple(names)
    return Claim("sees", sees=sees, **common)


def _comparison_claim(kind: str, table: dict, common: dict) -> Claim:
    """differs_from with by_more_than, or same_as with within (default DEFAULT_SAME_WITHIN)."""
    other_key, bound_key = ("differs_from", "by_more_than") if kind == "differs" else ("same_as", "within")
    other = _text(table, other_key, None)
    default = DEFAULT_SAME_WITHIN if kind == "same" else None
    threshold = _number(table, bound_key, default)
    if threshold is None:
        raise ClaimFormError(other_key, f"{other_key} needs {bound_key} = N (mean |pixel difference|, 0..255)")
    return Claim(kind, other=other, threshold=threshold, **common)


def _metric_claim(table: dict, common: dict) -> Claim:
    """metric with above and/or below; token for the attention metrics."""
    metric = _text(table, "metric", None)
    if metric not in METRICS:
        raise ClaimFormError("metric", f"{metric!r} is unknown; allowed metrics are {', '.join(METRICS)}")
    above, below = _number(table, "above", None), _number(table, "below", None)
    if above is None and below is None:
        raise ClaimFormError("metric", "a metric claim needs above = N, below = N or both")
    if (metric in RECORD_METRICS or metric in ATTENTION_METRICS) and common["step"] == 0:
        raise ClaimFormError("step", f"{metric} is recorded by a step: use step >= 1 (step 1 = the first step)")
    token = _text(table, "token", None)
    if token is None and metric in ATTENTION_METRICS:
        raise ClaimFormError("metric", f"{metric} needs token = \"word\" (a word of the prompt, as the attention "
                             "view names it)")
    if token is not None and metric not in ATTENTION_METRICS:
        raise ClaimFormError("token", f"token = \"word\" goes only with {' and '.join(ATTENTION_METRICS)}")
    if metric in ATTENTION_METRICS and common["picture"] != "x0_hat":
        raise ClaimFormError("picture", f"{metric} finds the shape in x0-hat: leave picture out")
    return Claim("metric", metric=metric, above=above, below=below, token=token, **common)


# a claim's kind -> its parser, (the table, the common fields) -> Claim
CLAIM_PARSERS = {"sees": _sees_claim, "differs": partial(_comparison_claim, "differs"),
                 "same": partial(_comparison_claim, "same"), "metric": _metric_claim,
                 **claims_beyond_the_run.PARSERS}  # trace, refusal, config
