"""The edits of a run in progress: a new guidance scale, a scheduler swap, a rewind, a fork.

A mixin of `Stepper` (stepper.py holds the run's setup and its loop). Every edit is written in the
Stepper's `log`; every step leaves a `Snapshot`, so `rewind(k)` restores the state after step k
exactly (latents, scheduler with its history, generator) and a fork goes on from a copy of it.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Self

import torch

from . import checks, guidance, noise_scale, schedulers
from .errors import RunFinishedError
from .edit_log import Fork, GuidanceChange, Rewind, RunEdit, SchedulerSwap
from .run_setup import RunSetup
from .snapshots import Snapshot, copy_sharing_tensors


class RunEdits(RunSetup):
    """Guidance, scheduler, rewind and fork for a Stepper (its state: latents, scheduler, records, snapshots)."""

    def _snapshot(self) -> Snapshot:
        return Snapshot(self.latents, copy_sharing_tensors(self.scheduler), self.scheduler_name, self.timesteps,
                         self._loop_index, self._steps_since_swap, self.guidance_scale,
                         self.generator.get_state(), self._swapped)

    def _log(self, edit: type[RunEdit], **fields) -> None:
        """Write an edit of kind `edit` in the log, at the number of steps taken."""
        self.log.append(edit(len(self.records), **fields))

    def set_guidance_scale(self, scale: float) -> None:
        """Use scale s from the next step on."""
        new = checks.check_guidance(scale)
        # what will drive the next steps: CFG, or (s <= 1, an LCM's embedded s) the prompt's prediction alone
        drives = self._noise_pred_from(new)
        self._log(GuidanceChange, old=self.guidance_scale, new=new, noise_pred_from=drives)
        self.guidance_scale = new
        self._snapshots[-1] = dataclasses.replace(self._snapshots[-1], guidance_scale=new)

    def set_scheduler(self, name: str) -> str | None:
        """Continue the remaining steps with scheduler `name`; returns a notice for the user, if any."""
        schedulers.check_scheduler_name(name)
        if self.done:
            raise RunFinishedError("the run is finished: rewind first, then swap the scheduler")
        if name == self.scheduler_name:
            self._log(SchedulerSwap, old=name, new=name)
            return None
        t_now = float(self.timesteps[self._loop_index])
        old_family = schedulers.info_for(self.scheduler).family
        sigma_now, _ = self._noise_level_at(self._loop_index)
        new_family = schedulers.ALL_SCHEDULERS[name].family
        if (old_family == "flow") != (new_family == "flow"):  # one line, before anything changes
            raise checks.StepvizInputError(noise_scale.family_mismatch(old_family, new_family, name))
        new, loop, begin, notice = self._set_up_swap(name, t_now)
        info = schedulers.info_for(new)
        self.latents = noise_scale.convert_latents(self.latents, sigma_now, old_family, info.family)
        notices = [notice] if notice else []
        if info.multistep and self.records:
            notices.append(f"{name} keeps a history of earlier steps; a fresh one restarts at first order")
        self._log(SchedulerSwap, old=self.scheduler_name, new=name, t=t_now, family=f"{old_family}->{info.family}")
        self.scheduler, self.scheduler_name = new, name
        self.timesteps, self._loop_index, self._steps_since_swap, self._swapped = loop, 0, 0, True
        self._snapshots[-1] = self._snapshot()
        message = "; ".join(notices) or None
        if message:
            self.notices.append(message)
        return message

    def _noise_pred_from(self, scale: float) -> str:
        """What drives the steps at guidance `scale`: CFG, or (s <= 1, an LCM's embedded s) the prompt alone."""
        return "cfg" if guidance.uses_cfg(scale, self.pipe.unet.config) else "text"

    def _set_up_swap(self, name: str, t_now: float):
        """(scheduler, loop timesteps, begin index, notice) continuing at t_now on the run's grid."""
        return schedulers.set_up_swap(name, self._base_config, self.scheduler, self.grid, t_now,
                                      self.num_inference_steps, self.device, self._pipeline_class)

    def rewind(self, k: int) -> None:
        """Back to the state after step k (k = 0: before the first step), exactly."""
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= len(self.records):
            raise checks.StepvizInputError(f"rewind k={k!r} is not allowed: use 0..{len(self.records)}")
        snap = self._snapshots[k]
        self._log(Rewind, to=k, from_=len(self.records))
        self.records = self.records[:k]
        self._snapshots = self._snapshots[: k + 1]
        self._restore(snap)
        self.stopped = None

    def _restore(self, snap: Snapshot) -> None:
        self.latents = snap.latents
        self.scheduler = copy_sharing_tensors(snap.scheduler)
        self.scheduler_name, self.timesteps = snap.scheduler_name, snap.timesteps
        self._loop_index, self._steps_since_swap = snap.loop_index, snap.steps_since_swap
        self._swapped = snap.swapped
        self.guidance_scale = snap.guidance_scale
        self.generator.set_state(snap.generator_state)

    def fork(self) -> Self:
        """An independent Stepper at the current state (shares the pipeline's weights)."""
        twin = copy.copy(self)
        twin.generator = torch.Generator(self.generator.device)
        twin.records, twin.log, twin.notices = list(self.records), list(self.log), list(self.notices)
        twin._snapshots = list(self._snapshots)
        twin._restore(self._snapshot())
        self._log(Fork)
        twin._log(Fork)
        return twin
