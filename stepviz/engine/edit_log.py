"""The edits made to a run, one typed record each, in the order made: what `Stepper.log` holds.

    GuidanceChange   set_guidance_scale(s)        old, new and what then drives the steps (CFG or the prompt)
    TrueCfgChange    set_true_cfg_scale(s)        FLUX.1's true CFG scale, the same fields
    SchedulerSwap    set_scheduler(name)          old, new; for a real swap the timestep and the families
    Rewind           rewind(k)                    to step k, from the step the run had reached
    Fork             fork()                       written in both branches' logs

`at_step` is how many steps the run had taken (0 = before the first). What an edit becomes in a lesson
(an `Event`) is lessons/events.py's `events_from_edits`, the one conversion export and the notebook use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class RunEdit:
    """One edit made to a run: at which step and (in the subclass's fields) what changed."""

    at_step: int
    action: ClassVar[str] = ""  # the Stepper method that made it, as the manifest and describe() name it

    @property
    def detail(self) -> dict:
        """The edit's own fields, those that hold a value (the manifest writes these)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "at_step" and getattr(self, f.name) is not None}

    def describe(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.detail.items())
        return f"step {self.at_step}: {self.action}({parts})"


@dataclass(frozen=True)
class GuidanceChange(RunEdit):
    old: float
    new: float
    noise_pred_from: str  # "cfg" or "text": what drives the steps from here
    action: ClassVar[str] = "set_guidance_scale"


@dataclass(frozen=True)
class TrueCfgChange(RunEdit):
    old: float
    new: float
    noise_pred_from: str
    action: ClassVar[str] = "set_true_cfg_scale"


@dataclass(frozen=True)
class SchedulerSwap(RunEdit):
    old: str
    new: str
    t: float | None = None  # the timestep the new scheduler goes on from (None: the same name, nothing swapped)
    family: str | None = None  # "old family->new family", e.g. "vp->sigma"
    action: ClassVar[str] = "set_scheduler"

    @property
    def changed(self) -> bool:
        return self.new != self.old


@dataclass(frozen=True)
class Rewind(RunEdit):
    to: int
    from_: int
    action: ClassVar[str] = "rewind"


@dataclass(frozen=True)
class Fork(RunEdit):
    action: ClassVar[str] = "fork"
