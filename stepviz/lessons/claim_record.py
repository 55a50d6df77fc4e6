"""Claim: one checkable statement of a lesson, as claims.py parses it and `stepviz lessons check` measures it, with
how its result reads (its words, its bounds, its margin and whether a wrong model could pass it too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ATTENTION_METRICS = ("attention_on_shape", "attention_vs_even")  # with token = "word", as the attention view names it
# measured on `picture`
PICTURE_METRICS = ("picture_change", "input_difference", "outside_mask_difference", "input_overlap")
LOOSE_FACTOR = 3  # a lower bound under a third of the measured value proves little (see Claim.loose)


class ClaimFormError(ValueError):
    """A claim table is malformed: the message says which key and what is allowed."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Claim:
    """One checkable statement. kind: "sees", "differs", "same", "metric", "trace", "refusal", "seeds" (another
    claim counted over seeds) or "config"."""

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
    seeds: tuple = ()  # a count: the seeds its per_seed claim is measured at
    per_seed: Claim | None = None  # the claim counted
    at_least: int | None = None  # bounds on the count, both inclusive
    at_most: int | None = None
    overrides: tuple = ()  # (key, value): settings the count changes on every run it plays
    config: str | None = None  # "component.key" of the run's model config
    equals: object = None  # the value it must have

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
        if self.kind in ("trace", "refusal", "seeds", "config"):
            return describe_beyond(self)
        bounds = [f"> {self.above:g}" if self.above is not None else "", f"< {self.below:g}" if self.below is not None
                  else ""]
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
        if self.kind == "seeds":  # the count's bounds are inclusive: a margin of 0 still holds
            return [(side, bound) for side, bound in (("above", self.at_least), ("below", self.at_most))
                    if bound is not None]
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
        if self.kind == "seeds":
            unit = "seed" if abs(distance) == 1 else "seeds"
            return f"margin {distance:g} {unit}" + (f"; LOOSE: measured over {LOOSE_FACTOR}x the lower bound"
                                                    if self.loose(value) else "")
        share = f" ({abs(distance) / abs(bound):.0%} of the bound)" if bound else ""
        warning = f"; LOOSE: measured over {LOOSE_FACTOR}x the lower bound" if self.loose(value) else ""
        return f"margin {distance:.3g}{share}{warning}"

    def runs(self) -> tuple[str, ...]:
        return (self.run,) if self.other is None else (self.run, self.other)


def describe_beyond(claim: Claim) -> str:
    """A trace, refusal, count or config claim in words, e.g. "seeds 0-7: LMS x_t: colour red, at 6 of 8"."""
    if claim.kind == "seeds":
        wanted = (f"{claim.at_least}" if claim.at_least == claim.at_most else
                  f">= {claim.at_least}" if claim.at_most is None else
                  f"<= {claim.at_most}" if claim.at_least is None else f"{claim.at_least}-{claim.at_most}")
        changed = "".join(f", {key}={value!r}" for key, value in claim.overrides)
        return f"{seeds_words(claim.seeds)}{changed}: {claim.per_seed.describe()}, at {wanted} of {len(claim.seeds)}"
    if claim.kind == "config":
        return f"{claim.run}'s model: {claim.config} = {claim.equals!r}"
    if claim.kind == "refusal":
        given = ", ".join(f"{key}={value!r}" for key, value in claim.refused)
        return f"{claim.run} with {given} refused, saying {claim.says!r}"
    at = "" if claim.divergence_step is None else f" at step {claim.divergence_step}"
    bounds = " and ".join(f"{sign} {bound:g}" for sign, bound in ((">", claim.above), ("<", claim.below))
                          if bound is not None)
    return f"trace {claim.trace}: {claim.divergence}{at}" + (f", final apart {bounds}" if bounds else "")


def seeds_words(seeds: tuple) -> str:
    """(0, 1, 2, 3, 5, 7) -> "seeds 0-3, 5, 7": runs of consecutive seeds as FIRST-LAST."""
    parts, start = [], 0
    for i, seed in enumerate(seeds):
        if i + 1 == len(seeds) or seeds[i + 1] != seed + 1:
            parts.append(str(seed) if start == i else f"{seeds[start]}-{seed}")
            start = i + 1
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(parts)


def _text(table: dict, key: str, default):
    value = table.get(key, default)
    if value is not default and not isinstance(value, str):
        raise ClaimFormError(key, f"{value!r} is not allowed: it must be a string")
    return value


def _number(table: dict, key: str, default):
    """A finite number (as a float), or `default` when the key is absent."""
    value = table.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ClaimFormError(key, f"{value!r} is not allowed: it must be a finite number")
    return float(value)
