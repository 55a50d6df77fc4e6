"""A traced loop and its reference as StepRecords, replayed one step at a time (for the step-through view).

`LoopReplay` is a run as a front end shows it (run/shown_run.py's `ShownRun`: records, done, step, rewind,
the scheduler's family and grid), over records fixed in advance; a recorded loop cannot be edited, so
guidance and scheduler changes are refused in one line.
"""

from __future__ import annotations

import torch

from ..engine import flow_schedule, guidance, noise_scale, prediction, prompt_tokens, schedulers
from ..engine.checks import StepvizInputError
from ..engine.records import StepRecord
from .loop import LoopRecording


class LoopReplay:
    """A recorded loop shown as a run (run/shown_run.py's ShownRun), one recorded step at a time."""

    history_fill = None  # a recording keeps no solver history to show
    added_conditioning = strength = sharing = None  # SD's text conditioning only; no input picture; no engine

    def __init__(self, label: str, records: list[StepRecord], scheduler, initial_latents, pipe, prompt: str,
                 notices: tuple[str, ...] = ()):
        self.label, self._all, self.records, self.pipe = label, records, [], pipe
        self.scheduler, self.scheduler_name = scheduler, schedulers.info_for(scheduler).name
        self.mode, self.latents, self.notices = "txt2img", initial_latents, list(notices)
        self.guidance_scale = records[0].guidance_scale if records else 1.0
        self.prediction_type = scheduler.config.get("prediction_type", "epsilon")
        self.device, self.dtype = initial_latents.device, initial_latents.dtype
        self.height, self.width = (size * pipe.vae_scale_factor for size in initial_latents.shape[-2:])
        self.grid = schedulers.first_order_grid([r.timestep for r in records])
        self.prompt_anatomy = self.negative_anatomy = None
        if pipe.tokenizer is not None and records:
            shape = tuple(records[0].noise_pred_text.shape)
            self.prompt_anatomy = prompt_tokens.prompt_anatomy(pipe.tokenizer, prompt, shape)
        self.extra_channels: dict = {}

    @property
    def done(self) -> bool:
        return len(self.records) >= len(self._all)

    @property
    def total_steps(self) -> int:
        return len(self._all)

    @property
    def scheduler_info(self):
        return schedulers.info_for(self.scheduler)

    @property
    def schedule_shift(self) -> float | None:
        """A recorded flow loop's shift, read from its scheduler (None for VP/sigma)."""
        return flow_schedule.plot_shift(self.scheduler)

    def start_on_vp_scale(self) -> torch.Tensor:
        """The recorded starting latents on the VP scale, at the schedule's first timestep."""
        if self.records:
            return noise_scale.to_vp_scale(self.latents, self.records[0].family, self.records[0].sigma)
        if not self.grid:
            return self.latents
        sigma, _ = schedulers.trained_noise_level(self.scheduler, self.grid[0])
        return noise_scale.to_vp_scale(self.latents, self.scheduler_info.family, sigma)

    def step(self) -> StepRecord:
        record = self._all[len(self.records)]
        self.records.append(record)
        return record

    def run(self) -> list[StepRecord]:
        while not self.done:
            self.step()
        return self.records

    def rewind(self, k: int) -> None:
        if not 0 <= k <= len(self.records):
            raise StepvizInputError(f"rewind k={k!r} is not allowed: use 0..{len(self.records)}")
        self.records = self.records[:k]

    def fork(self) -> LoopReplay:
        twin = LoopReplay.__new__(LoopReplay)
        twin.__dict__.update(self.__dict__, records=list(self.records))
        return twin

    def set_guidance_scale(self, scale: float) -> None:
        raise StepvizInputError(f"{self.label} is a recording: its guidance cannot change (edit the script and "
                                "trace it again)")

    def set_scheduler(self, name: str) -> None:
        raise StepvizInputError(f"{self.label} is a recording: its scheduler cannot change (edit the script and "
                                "trace it again)")


def loop_records(loop: LoopRecording, scheduler, guidance_scale: float) -> list[StepRecord]:
    """One StepRecord per recorded loop step: what the loop computed, with the schedule's noise levels."""
    info = schedulers.info_for(scheduler)
    prediction_type = scheduler.config.get("prediction_type", "epsilon")
    records = []
    for step in loop.steps:
        sigma, abar = schedulers.trained_noise_level(scheduler, step.timestep)
        after = loop.steps[step.index + 1].timestep if step.index + 1 < len(loop.steps) else None
        sigma_next = 0.0 if after is None else schedulers.trained_noise_level(scheduler, after)[0]
        x0 = step.pred_original_sample
        if x0 is None:
            x0 = prediction.pred_original(step.noise_pred, step.latents, sigma, info.family, prediction_type)
        uncond = step.eps_uncond if step.eps_uncond is not None else step.eps_text
        metrics = guidance.branch_metrics(uncond, step.eps_text, step.noise_pred, step.carried, x0)
        records.append(StepRecord(
            index=step.index, num_steps=len(loop.steps), timestep=step.timestep, sigma=sigma, alpha_cumprod=abar,
            guidance_scale=guidance_scale, scheduler=info.name, latents=step.carried, pred_original_sample=x0,
            noise_pred_uncond=uncond, noise_pred_text=step.eps_text, family=info.family,
            prediction_type=prediction_type, sigma_next=sigma_next, **metrics))
    return records


def prompt_of(loop: LoopRecording, tokenizer) -> str:
    """The prompt the loop encoded (its text branch's input ids, decoded), or a placeholder."""
    step = loop.steps[0] if loop.steps else None
    for ids, output in loop.text_calls:
        if step is not None and step.embeds_text is not None and output.shape[1:] == step.embeds_text.shape[1:] \
                and any(torch.equal(row[None], step.embeds_text) for row in output):
            return tokenizer.decode(ids[0], skip_special_tokens=True)
    return "(embeddings made before the trace)"


def replays(report, pipe) -> tuple[LoopReplay, LoopReplay]:
    """(the traced loop, the pipeline's reference) as replays, with their starting latents."""
    run, user, reference = report.run, report.user, report.reference
    prompt = prompt_of(user, pipe.tokenizer) if pipe.tokenizer is not None else ""
    sides = []
    for label, loop in (("your loop", user), ("the pipeline", reference)):
        scheduler = type(run.scheduler).from_config(run.scheduler.config)
        records = loop_records(loop, scheduler, run.guidance_scale)
        sides.append(LoopReplay(label, records, scheduler, loop.steps[0].latents, pipe, prompt))
    return sides[0], sides[1]


def flow_loop_replay(trace, report) -> LoopReplay:
    """A traced flow loop (flow.FlowTraceReport) as a replay of its own steps: x0-hat = x_t - sigma v_hat, the
    branches as its guidance line combined them (flow_reference.py), on the pipeline's scheduler. FLUX.1's packed
    tokens are shown unpacked, as a square."""
    from ..engine.flow_layout import unpack
    from .flow_reference import fitted_combination, model_rows

    def layout(x: torch.Tensor) -> torch.Tensor:
        side = 2 * int(round((x.shape[1]) ** 0.5)) if x.ndim == 3 else 0
        return unpack(x, side, side) if x.ndim == 3 else x

    steps, scheduler = report.steps, trace.pipeline_scheduler(report.steps)
    records = []
    for step in steps:
        x_t, v_hat, latents = layout(step.sample), layout(step.model_output), layout(step.prev_sample)
        x0 = prediction.pred_original_flow(v_hat, x_t, step.sigma)
        combination = fitted_combination(model_rows(step), step.model_output)
        uncond = text = v_hat
        if combination is not None and combination.uncond is not None:
            rows = model_rows(step)
            uncond, text = layout(rows[combination.uncond]), layout(rows[combination.text])
        metrics = guidance.branch_metrics(uncond, text, v_hat, latents, x0)
        records.append(StepRecord(
            index=step.index, num_steps=len(steps), timestep=step.timestep, sigma=step.sigma,
            alpha_cumprod=1.0 - step.sigma, guidance_scale=combination.scale if combination else 1.0,
            scheduler=schedulers.info_for(scheduler).name, latents=latents, pred_original_sample=x0,
            noise_pred_uncond=uncond, noise_pred_text=text, family="flow",
            prediction_type=prediction.FLOW_PREDICTION, sigma_next=step.sigma_next, **metrics))
    replay = LoopReplay("your loop", records, scheduler, layout(steps[0].sample), trace.pipe, "")
    replay.prediction_type = prediction.FLOW_PREDICTION
    return replay
