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

Every claim is measured when the run has taken the event's at_step steps, unless it says
`step = N` (steps taken) or `step = "end"` (after the run's last step). `say` is an optional
sentence printed with the result. Claims are data; this module parses and checks their shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

from .run_measures import MEASURES

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
ATTENTION_METRICS = ("attention_on_shape", "attention_vs_even")  # with token = "word", as the attention view names it
METRICS = RECORD_METRICS + tuple(DERIVED_METRICS)
# measured on `picture`
PICTURE_METRICS = ("picture_change", "input_difference", "outside_mask_difference", "input_overlap")
CLAIM_KEYS = ("run", "picture", "step", "say", *SEES_KEYS, "differs_from", "by_more_than", "same_as", "within",
              "metric", "above", "below", "token", "trace", "first_divergence", "divergence_step", "refused", "says")
REFUSABLE = ("height", "width", "steps", "seed", "guidance_scale", "strength")  # settings a refusal claim may give
LOOSE_FACTOR = 3  # a lower bound under a third of the measured value proves little (see Claim.loose)
DEFAULT_SAME_WITHIN = 2.0  # mean |pixel difference| on 0..255 that still counts as "the same picture"


class ClaimFormError(ValueError):
    """A claim table is malformed: the message says which key and what is allowed."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Claim:
    """One checkable statement. kind: "sees", "differs", "same", "metric", "trace" or "refusal"."""

    kind: str
    run: str = "main"
    picture: str = "x0_hat"
    step: int | str = 0  # steps taken when measured, or "end"
    sees: dict = field(default_factory=dict)  # key -> tuple of allowed names
    other: str | None = None  # the run compared with (differs / same)
    threshold: float | None = None
    metric: str | None = None
    above: float | None = None
    below: float | None = None
    say: str | None = None
    token: str | None = None  # attention metrics: the prompt's word
    trace: str | None = None  # a shipped example and its arguments, run under stepviz.trace
    divergence: str | None = None  # its first divergence's cause id, "unexplained" or "none"
    divergence_step: int | None = None
    refused: tuple = ()  # (key, value) pairs stepviz must refuse for the run
    says: str | None = None  # words the refusal's message holds

    def describe(self) -> str:
        """The claim in words, e.g. "guidance 1 x0-hat: colour yellow"."""
        where = f"{self.run} {'x0-hat' if self.picture == 'x0_hat' else 'x_t'}"
        if self.kind == "sees":
            wanted = ", ".join(f"{k} {' or '.join(v)}" for k, v in self.sees.items())
            return f"{where}: {wanted}"
        if self.kind == "differs":
            return f"{where} differs from {self.other}'s by > {self.threshold:g}"
        if self.kind == "same":
            return f"{where} same as {self.other}'s within {self.threshold:g}"
        if self.kind == "refusal":
            given = ", ".join(f"{key}={value!r}" for key, value in self.refused)
            return f"{self.run} with {given} refused, saying {self.says!r}"
        bounds = [f"> {self.above:g}" if self.above is not None else "", f"< {self.below:g}" if self.below is not None
                  else ""]
        if self.kind == "trace":
            at = "" if self.divergence_step is None else f" at step {self.divergence_step}"
            final = f", final apart {' and '.join(b for b in bounds if b)}" if any(bounds) else ""
            return f"trace {self.trace}: {self.divergence}{at}{final}"
        subject = f"{where} {self.metric}" if self.metric in PICTURE_METRICS else f"{self.run}: {self.metric}"
        if self.token is not None:
            subject += f" of '{self.token}'"
        return f"{subject} {' and '.join(b for b in bounds if b)}"

    def bounds(self) -> list[tuple[str, float]]:
        """The claim's numeric bounds as ("above" | "below", value): a differs claim is a lower bound, a same claim
        an upper one; a claim on what the checker sees has none."""
        if self.kind == "differs":
            return [("above", self.threshold)]
        if self.kind == "same":
            return [("below", self.threshold)]
        return [(side, bound) for side, bound in (("above", self.above), ("below", self.below)) if bound is not None]

    def margin(self, value: float | None) -> tuple[float, float] | None:
        """How far the measured value is from the nearest bound: (distance, the bound). Positive when the claim
        holds; None for a claim with no bound or no value. A large margin means a wrong model could pass too."""
        if value is None or not self.bounds() or not math.isfinite(value):
            return None
        return min(((value - bound if side == "above" else bound - value), bound) for side, bound in self.bounds())

    def loose(self, value: float | None) -> bool:
        """True when a lower bound sits under 1/LOOSE_FACTOR of the measured value: a wrong model could pass."""
        return value is not None and any(side == "above" and bound > 0 and value > LOOSE_FACTOR * bound
                                         for side, bound in self.bounds())

    def margin_words(self, value: float | None) -> str:
        """The margin as the report prints it: "margin 2.1 (11% of the bound)"."""
        found = self.margin(value)
        if found is None:
            return ""
        distance, bound = found
        share = f" ({abs(distance) / abs(bound):.0%} of the bound)" if bound else ""
        warning = f"; LOOSE: measured over {LOOSE_FACTOR}x the lower bound" if self.loose(value) else ""
        return f"margin {distance:.3g}{share}{warning}"

    def runs(self) -> tuple[str, ...]:
        return (self.run,) if self.other is None else (self.run, self.other)


# a claim's kind -> the keys that make a table that kind (a table has exactly one kind)
KIND_KEYS = {"sees": SEES_KEYS, "differs": ("differs_from",), "same": ("same_as",), "metric": ("metric",),
             "trace": ("trace",), "refusal": ("refused",)}


def parse_claim(table: dict, at_step: int) -> Claim:
    """A Claim from one [[events.expect]] table; raises ClaimFormError naming the key."""
    for key in table:
        if key not in CLAIM_KEYS:
            raise ClaimFormError(key, f"unknown key; allowed keys are {', '.join(CLAIM_KEYS)}")
    kinds = [kind for kind, keys in KIND_KEYS.items() if any(key in table for key in keys)]
    if len(kinds) != 1:
        raise ClaimFormError(next(iter(table), "run"), "a claim needs exactly one of: colour/shape/background, "
                             f"differs_from, same_as, metric, trace, refused (found {', '.join(kinds) or 'none'})")
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


def _trace_claim(table: dict, common: dict) -> Claim:
    """`trace` names a shipped example (never a path: a lesson stays data) and what its trace finds."""
    from ..trace.causes import CAUSES, FLOW_CAUSES
    from .shipped import example_names

    command = _text(table, "trace", None)
    if not command or command.split()[0] not in example_names():
        examples = ", ".join(example_names())
        raise ClaimFormError("trace", f"{command!r} is not allowed: name a shipped example ({examples}), then its "
                             "arguments")
    allowed = (*CAUSES, *FLOW_CAUSES, "unexplained", "none")
    divergence = _text(table, "first_divergence", None)
    if divergence not in allowed:
        raise ClaimFormError("first_divergence", f"{divergence!r} is not allowed: use one of {', '.join(allowed)}")
    step = table.get("divergence_step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ClaimFormError("divergence_step", f"{step!r} is not allowed: use a loop index (an integer >= 0)")
    return Claim("trace", trace=command, divergence=divergence, divergence_step=step,
                 above=_number(table, "above", None), below=_number(table, "below", None), **common)


def _refusal_claim(table: dict, common: dict) -> Claim:
    """`refused` = a table of the run's settings that stepviz must refuse; `says` = words its message holds."""
    refused = table["refused"]
    if not isinstance(refused, dict) or not refused or any(key not in REFUSABLE for key in refused):
        raise ClaimFormError("refused", f"{refused!r} is not allowed: give a table of settings from "
                             f"{', '.join(REFUSABLE)}, e.g. {{ height = 500 }}")
    says = _text(table, "says", None)
    if not says:
        raise ClaimFormError("says", "a refused claim needs says = \"words of the refusal\"")
    return Claim("refusal", refused=tuple(refused.items()), says=says, **common)


# a claim's kind -> its parser, (the table, the common fields) -> Claim
CLAIM_PARSERS = {"sees": _sees_claim, "differs": partial(_comparison_claim, "differs"),
                 "same": partial(_comparison_claim, "same"), "metric": _metric_claim, "trace": _trace_claim,
                 "refusal": _refusal_claim}


def _text(table: dict, key: str, default):
    value = table.get(key, default)
    if value is not default and not isinstance(value, str):
        raise ClaimFormError(key, f"{value!r} is not allowed: it must be a string")
    return value


def _number(table: dict, key: str, default):
    value = table.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ClaimFormError(key, f"{value!r} is not allowed: it must be a finite number")
    return float(value)
