"""The stepping engine: torch + diffusers only (never textual)."""

from .checks import StepvizInputError
from .records import PromptAnatomy, RunLogEntry, StepRecord
from .schedulers import SCHEDULERS
from .stepper import NonFiniteError, Stepper

__all__ = ["NonFiniteError", "PromptAnatomy", "RunLogEntry", "SCHEDULERS", "StepRecord", "Stepper",
           "StepvizInputError"]
