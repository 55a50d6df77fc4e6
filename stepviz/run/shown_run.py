"""What a front end reads from a run to show it and step it, named once: `ShownRun`.

Two kinds of object are shown: a live run (engine/stepper.py's `Stepper`, its flow loop, a shared engine's
session in run/shared_session.py) and a recorded loop (trace/replay.py's `LoopReplay`, a hand-written loop
and its reference replayed step by step). session.py's `run_view` and the session's stepping read a run
through these names only, so both are shown by the same code; each kind answers them in its own way rather
than one imitating the other (tests/test_shown_run.py checks both against this list).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class ShownRun(Protocol):
    pipe: object  # the diffusers pipeline: its tokenizer and VAE make the pictures and labels
    mode: str  # txt2img, img2img, inpaint, depth2img
    scheduler: object  # the diffusers scheduler stepping the run
    scheduler_name: str
    records: list  # StepRecords of the steps taken
    guidance_scale: float
    prompt_anatomy: object  # engine/prompt_tokens.py's PromptAnatomy, or None
    negative_anatomy: object
    grid: object  # the run's timesteps, the schedule panel's marks
    notices: list
    device: object
    dtype: object
    height: int  # the picture's size in pixels
    width: int

    @property
    def done(self) -> bool: ...

    @property
    def total_steps(self) -> int: ...

    @property
    def scheduler_info(self): ...  # engine/schedulers.py's SchedulerInfo: name, family, order, multistep

    @property
    def history_fill(self) -> tuple[int, int] | None: ...  # a multistep solver's (filled, capacity)

    @property
    def prediction_type(self) -> str: ...  # epsilon, v_prediction or sample

    @property
    def extra_channels(self) -> dict: ...  # the UNet's inputs besides x_t, at latent size

    @property
    def added_conditioning(self) -> str | None: ...  # SDXL's pooled embedding and size numbers, in one line

    @property
    def strength(self) -> float | None: ...  # img2img/inpaint: the strength the run started at

    @property
    def sharing(self) -> str | None: ...  # a shared engine's session: how its results relate to a solo run

    @property
    def schedule_shift(self) -> float | None: ...  # the flow family's shift s (FLUX.1: e^mu); None for VP/sigma

    def start_on_vp_scale(self): ...  # the starting latents on the VP scale, at the first step's noise level

    def step(self): ...

    def rewind(self, k: int) -> None: ...

    def fork(self): ...

    def set_guidance_scale(self, scale: float) -> None: ...

    def set_scheduler(self, name: str): ...
