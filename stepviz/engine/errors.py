"""What a Stepper raises besides a refused input (checks.StepvizInputError)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import StepRecord


class NonFiniteError(RuntimeError):
    """A NaN or Inf appeared; `record` is the step where it was first seen (None before any step)."""

    def __init__(self, message: str, record: StepRecord | None = None):
        super().__init__(message)
        self.record = record


class RunFinishedError(RuntimeError):
    """An edit or a step asked of a run that has taken its last step."""
