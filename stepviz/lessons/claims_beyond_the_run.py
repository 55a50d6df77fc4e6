"""Claims measured beyond the lesson's one played run: a shipped loop under stepviz.trace, settings stepviz must
refuse, a claim counted over seeds, and a value of the model's config. claims.py parses the table's kind and the
keys every claim shares; the parsers here read the rest (see claims.py's docstring for the TOML).

    seeds = "0-15"        a count: the claim in the rest of the table, measured on the run played at each seed
    count = 14            ... holds at exactly 14 of them (or at_least = N / at_most = N, both inclusive)
    overrides = { guidance_scale = 3.0 }   ... on the run with these settings changed (every run the claim plays)

    config = "vae.scaling_factor"   the run's model: component.key of its config (a tokenizer: its attribute)
    equals = 1.0                    numbers equal to 1e-9, lists element by element, text and true/false exactly
"""

from __future__ import annotations

import math

from .claim_record import ATTENTION_METRICS, Claim, ClaimFormError, _number, _text

COUNT_KEYS = ("seeds", "count", "at_least", "at_most", "overrides")  # a count over seeds wraps another claim
REFUSABLE = ("height", "width", "steps", "seed", "guidance_scale", "strength")  # settings a refusal claim may give

MAX_SEEDS = 64  # a count plays every run it names this many times at most: the check must stay affordable
COUNTED_KINDS = ("sees", "differs", "same", "metric")  # what a count may count: claims on a played run's step
# settings a count may change on its runs -> the TOML types they take
OVERRIDABLE = {"model": (str,), "prompt": (str,), "negative_prompt": (str,), "scheduler": (str,),
               "steps": (int,), "guidance_scale": (int, float), "strength": (int, float)}
CONFIG_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "transformer")


def parse_seeds(value) -> tuple[int, ...]:
    """"0-15" (both ends included) or a list of seeds -> the seeds; anything else raises ClaimFormError."""
    seeds = None
    if isinstance(value, str):
        first, dash, last = value.partition("-")
        if dash and first.strip().isdigit() and last.strip().isdigit() and int(first) <= int(last):
            seeds = tuple(range(int(first), int(last) + 1))
    elif isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                   for s in value):
        seeds = tuple(dict.fromkeys(value))
    if seeds is None or len(seeds) > MAX_SEEDS:
        raise ClaimFormError("seeds", f"{value!r} is not allowed: use \"FIRST-LAST\" (e.g. \"0-15\") or a list of "
                             f"seeds >= 0, at most {MAX_SEEDS} of them")
    return seeds


def count_claim(table: dict, at_step: int | str, parse_claim) -> Claim:
    """`seeds` with count (or at_least / at_most) around another claim (read by `parse_claim`, claims.py's): at
    how many seeds that claim holds."""
    if "seeds" not in table:
        given = next(key for key in COUNT_KEYS if key in table)
        raise ClaimFormError(given, f"{given} counts a claim over seeds: add seeds = \"0-15\"")
    seeds = parse_seeds(table["seeds"])
    counted = {key: value for key, value in table.items() if key not in COUNT_KEYS and key != "say"}
    per_seed = parse_claim(counted, at_step)
    if per_seed.kind not in COUNTED_KINDS:
        kinds = ", ".join(COUNTED_KINDS)
        raise ClaimFormError("seeds", f"a count over seeds counts a claim on what a run shows ({kinds}), not a "
                             f"{per_seed.kind} claim")
    at_least, at_most = (_count(table, key, len(seeds)) for key in ("at_least", "at_most"))
    if "count" in table:
        if at_least is not None or at_most is not None:
            raise ClaimFormError("count", "give count = N alone, or at_least = N and/or at_most = N")
        at_least = at_most = _count(table, "count", len(seeds))
    if at_least is None and at_most is None:
        raise ClaimFormError("seeds", "a count over seeds needs count = N, at_least = N or at_most = N (seeds at "
                             "which the claim holds)")
    if at_least is not None and at_most is not None and at_least > at_most:
        raise ClaimFormError("at_least", f"at_least = {at_least} is above at_most = {at_most}")
    overrides = table.get("overrides", {})
    if not isinstance(overrides, dict) or any(key not in OVERRIDABLE or isinstance(value, bool)
                                              or not isinstance(value, OVERRIDABLE[key])
                                              for key, value in overrides.items()):
        raise ClaimFormError("overrides", f"{overrides!r} is not allowed: give a table of settings from "
                             f"{', '.join(OVERRIDABLE)}, e.g. {{ guidance_scale = 3.0 }}")
    overrides = {key: float(value) if key in ("guidance_scale", "strength") else value
                 for key, value in overrides.items()}
    return Claim("seeds", run=per_seed.run, picture=per_seed.picture, step=per_seed.step, other=per_seed.other,
                 say=_text(table, "say", None), seeds=seeds, per_seed=per_seed, at_least=at_least, at_most=at_most,
                 overrides=tuple(sorted(overrides.items())))


def _count(table: dict, key: str, seeds: int) -> int | None:
    value = table.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= seeds):
        raise ClaimFormError(key, f"{value!r} is not allowed: use a number of seeds in 0..{seeds}")
    return value


def counts_attention(claim: Claim) -> bool:
    """Does the count measure attention maps (so its runs must record them)?"""
    return claim.per_seed.kind == "metric" and claim.per_seed.metric in ATTENTION_METRICS


def config_claim(table: dict, common: dict) -> Claim:
    """`config` = "component.key" of the run's model, `equals` = the value it has."""
    name = _text(table, "config", None)
    component, dot, key = (name or "").partition(".")
    if not dot or component not in CONFIG_COMPONENTS or not key:
        raise ClaimFormError("config", f"{name!r} is not allowed: use \"component.key\" with a component from "
                             f"{', '.join(CONFIG_COMPONENTS)}, e.g. \"vae.scaling_factor\"")
    if "equals" not in table:
        raise ClaimFormError("config", "a config claim needs equals = the value (a number, text, true/false or a list)")
    extra = [key for key in table if key not in ("config", "equals", "run", "say")]
    if extra:
        raise ClaimFormError(extra[0], "a config claim takes config, equals, run and say only")
    return Claim("config", config=name, equals=table["equals"], **common)


def config_matches(found, wanted) -> bool:
    """Numbers equal to 1e-9 (1 == 1.0), lists element by element, anything else exactly."""
    if isinstance(wanted, list):
        return isinstance(found, (list, tuple)) and len(found) == len(wanted) and all(
            config_matches(f, w) for f, w in zip(found, wanted))
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        return (isinstance(found, (int, float)) and not isinstance(found, bool)
                and math.isclose(found, wanted, rel_tol=1e-9, abs_tol=1e-12))
    return found == wanted


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


# a kind -> its parser, (the table, the fields every claim shares) -> Claim (claims.CLAIM_PARSERS points here)
PARSERS = {"trace": _trace_claim, "refusal": _refusal_claim, "config": config_claim}
