"""diffusers' warnings while a model loads, turned into one-line notices.

An outdated scheduler config makes diffusers' pipeline constructors warn with a FutureWarning that prints the
whole config (17 lines for SD 1.4's first one) and then rewrite it (engine/constructor_fixes.py). stepviz keeps
those warnings off the terminal and says in one line what the pipeline set, among the loading notices.
"""

from __future__ import annotations

import functools
import re
import warnings

from ..engine.pipeline_facts import facts_of

SHOULD_BE = re.compile(r"`(\w+)` should be set to (\w+)")


def notice_for(messages: list[str]) -> str | None:
    """One line for diffusers' config warnings (None when none is about a config value)."""
    fixes = dict(fix for message in messages for fix in SHOULD_BE.findall(message))
    if not fixes:
        return None
    what = ", ".join(f"{key} to {value}" for key, value in fixes.items())
    return f"the scheduler config is outdated: the pipeline set {what}, as diffusers' constructor does"


def warnings_as_notices(load):
    """Decorate a loader that returns a pipeline: FutureWarnings and deprecation warnings raised while it runs
    are kept off the terminal, and the config fixes among them added to its notices (facts_of(pipe).notices)."""

    @functools.wraps(load)
    def loading(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FutureWarning)
            warnings.simplefilter("always", DeprecationWarning)
            pipe = load(*args, **kwargs)
        quiet = (FutureWarning, DeprecationWarning)
        for warning in caught:
            if not issubclass(warning.category, quiet):  # anything else is shown as it would have been
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        notice = notice_for([str(w.message) for w in caught if issubclass(w.category, quiet)])
        if notice:
            facts_of(pipe).notices.append(notice)
        return pipe

    return loading
