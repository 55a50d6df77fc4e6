"""The stepping engine: torch + diffusers only (never textual).

Names load lazily, so input checks (`stepviz.engine.checks`) and the scheduler table answer
without importing torch: the CLI validates its arguments before the heavy imports.
"""

import importlib

_WHERE = {
    "StepvizInputError": ".checks",
    "PromptAnatomy": ".records",
    "RunEdit": ".edit_log",
    "GuidanceChange": ".edit_log",
    "TrueCfgChange": ".edit_log",
    "SchedulerSwap": ".edit_log",
    "Rewind": ".edit_log",
    "Fork": ".edit_log",
    "StepRecord": ".records",
    "SCHEDULERS": ".schedulers",
    "NonFiniteError": ".errors",
    "RunFinishedError": ".errors",
    "Stepper": ".stepper",
}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
