"""The run behind a front end (the TUI, the notebook): the steppers, a lock, and frozen views of them.

Plain Python (no Textual, no Jupyter). The engine worker calls the mutating methods from its thread, each
under `lock`, so a rewind or a scheduler swap waits for a step in progress instead of racing it.
The widgets only ever see `RunView`s: frozen snapshots taken under the same lock.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from ..engine import families
from ..engine.pipeline_facts import facts_of
from ..engine.schedulers import schedule_curve
from .shown_run import ShownRun

MAIN, FORK = "main", "fork"


@dataclass(frozen=True)
class RunView:
    """Everything a panel shows about one branch of the run, at one moment."""

    branch: str
    model: str
    mode: str
    scheduler: str
    family: str
    order: int
    multistep: bool
    history_fill: tuple[int, int] | None
    total_steps: int
    guidance_scale: float
    done: bool
    records: tuple = ()
    initial_latents: object = None
    prompt_anatomy: object = None
    negative_anatomy: object = None
    alphas_cumprod: tuple[float, ...] = ()
    grid: tuple[float, ...] = ()
    extra_channels: dict = field(default_factory=dict)  # the UNet's inputs besides x_t (Stepper.extra_channels)
    notices: tuple[str, ...] = field(default=())
    prediction_type: str = "epsilon"  # what the UNet predicts: epsilon, v_prediction or sample
    device: str = "cpu"  # where the run computes, and in which dtype (the status line says)
    dtype: str = "float32"
    added_conditioning: str | None = None  # SDXL: the pooled embedding and add_time_ids, in one line
    height: int = 0  # the picture's size in pixels
    width: int = 0
    inputs: dict = field(default_factory=dict)  # the pictures the run takes: "input" (and "mask"), as PIL images
    strength: float | None = None
    sharing: str | None = None  # a shared engine's session: how its results relate to a solo run (for the help)
    model_family: str = ""  # SD, SDXL, SD3 or FLUX.1 (engine/families.py)
    schedule_shift: float | None = None  # the flow family: the shift s (FLUX.1: e^mu), None for VP/sigma

    @property
    def steps_taken(self) -> int:
        return len(self.records)

    def record(self, index: int | None):
        """The record at `index` (None: the latest; -1: before the first step, no record)."""
        if not self.records or (index is not None and index < 0):
            return None
        if index is None or index >= len(self.records):
            return self.records[-1]
        return self.records[max(index, 0)]


class Shown(NamedTuple):
    """What a panel is asked to show: a branch's view and the step index looked at (None: the latest)."""

    view: RunView
    index: int | None = None

    @property
    def record(self):
        return self.view.record(self.index)

    def draws_like(self, other: Shown | None) -> bool:
        """True when `other` shows the same steps of the same run (the plots need no redraw).

        Records are compared by identity (they hold tensors, and a rewound step is a new object).
        """
        if other is None:
            return False
        mine, theirs = self.view.records, other.view.records
        return (self.index == other.index and len(mine) == len(theirs)
                and (not mine or mine[-1] is theirs[-1])
                and self.view.total_steps == other.view.total_steps and self.view.grid == other.view.grid
                and self.view.alphas_cumprod is other.view.alphas_cumprod)


class RunSession:
    """The steppers of one run (the main branch and, after `f`, a fork) and their settings."""

    def __init__(self, settings, pipe=None, engine=None):
        """engine: a SharedEngine; its pipeline is the run's, and every branch is a session of it."""
        self.settings = settings
        self.engine = engine
        self.pipe = engine.pipe if engine is not None else pipe
        self.steppers: dict[str, object] = {}
        self.lock = threading.RLock()
        self.writing = False  # an export is writing its file (run_app waits for it when quitting)
        self._alphas_cumprod: tuple[float, ...] = ()
        self._initial_latents = None
        self._inputs: dict = {}

    # ------------------------------------------------------------ set-up (worker thread)
    def load(self, progress=lambda text: None) -> RunView:
        """Load the model if none was given, and build the main stepper; `progress(text)` hears each stage."""
        from ..models.loading import collection_paused, quiet_libraries

        with self.lock, collection_paused(freeze=self.pipe is None):
            if self.pipe is None:
                progress("importing torch and diffusers")
                quiet_libraries()  # imports diffusers: the longest part of a cold start, timed apart from the weights

                progress(f"loading the weights of {self.settings.model}")
                self.pipe = self.settings.load_pipeline(
                    progress=lambda part: progress(f"{self.settings.model}: {part}"))
            progress("encoding the prompt, preparing the run")
            self._inputs = self.settings.input_pictures()
            return self.adopt(self.settings.make_stepper(self.pipe, self.engine))

    def adopt(self, stepper) -> RunView:
        """Make `stepper` (built here or by the user) the main branch."""
        with self.lock:
            self.pipe = stepper.pipe
            self.steppers = {MAIN: stepper}
            self._alphas_cumprod = schedule_curve(stepper.scheduler)
            self._initial_latents = stepper.start_on_vp_scale()
            return self.view(MAIN)

    @property
    def model_name(self) -> str:
        return str(facts_of(self.pipe).model_id or self.settings.model)

    def has(self, branch: str) -> bool:
        return branch in self.steppers

    def steps_taken(self, branch: str = MAIN) -> int:
        return len(self.steppers[branch].records)

    def pipe_of(self, branch: str):
        """The pipeline that draws `branch`'s pictures (a [[compare]] run on another model has its own)."""
        return self.steppers[branch].pipe

    # ------------------------------------------------------------ edits (worker thread)
    def step(self, branch: str = MAIN):
        """One scheduler step of `branch`; None if that branch is finished."""
        with self.lock:
            stepper = self.steppers[branch]
            if stepper.done:
                return None
            return stepper.step()

    def rewind(self, keep: int, branch: str = MAIN) -> None:
        with self.lock:
            self.steppers[branch].rewind(keep)

    def set_guidance_scale(self, scale: float, branch: str = MAIN) -> None:
        with self.lock:
            self.steppers[branch].set_guidance_scale(scale)

    def set_scheduler(self, name: str, branch: str = MAIN) -> str | None:
        with self.lock:
            return self.steppers[branch].set_scheduler(name)

    def fork(self, steps: int | None = None) -> None:
        """A fork of the main branch after its first `steps` steps (None: as it is now); replaces an earlier fork.

        The main branch keeps every step it took: the fork is rewound, not the run.
        """
        with self.lock:
            fork = self.steppers[MAIN].fork()
            if steps is not None and steps < len(fork.records):
                fork.rewind(steps)
            self.steppers[FORK] = fork

    def lesson_branches(self) -> list[str]:
        """The lesson's [[compare]] runs as branches "compare-1".. (built once, at step 0, without events)."""
        names = [f"compare-{n}" for n in range(1, len(self.settings.compare) + 1)]
        with self.lock:
            for name, branch in zip(names, self.settings.compare):
                if name not in self.steppers:
                    settings = self.settings.branch_settings(branch)
                    pipe, engine = self.pipe, self.engine
                    if str(settings.model) != str(self.settings.model):
                        pipe, engine = settings.load_pipeline(), None
                    self.steppers[name] = settings.make_stepper(pipe, engine)
        return names

    def label(self, branch: str) -> str:
        """What a branch is called on screen."""
        if branch == MAIN:
            return self.settings.title or "the run"
        if branch.startswith("compare-"):
            return self.settings.compare[int(branch.split("-")[1]) - 1].label
        return branch

    def play(self, branch: str = MAIN, steps: int | None = None, from_start: bool = False):
        """`branch` played by the one loop (run/play.py) under the lock; only the main branch has the lesson's
        events (a fork and the [[compare]] runs go without them)."""
        from .play import play

        events = self.settings.events if branch == MAIN else ()
        return play(self.steppers[branch], events, steps=steps, from_start=from_start, lock=self.lock)

    def due_events(self, branch: str = MAIN) -> list:
        """Apply the scripted events due now on `branch`; returns them (notes and pauses are the UI's)."""
        return list(next(self.play(branch, steps=0, from_start=True)).events)

    def fast_forward(self):
        """Take the main run to `settings.start_at` steps, applying the events on the way.

        Returns the events passed before start_at, and the moment reached (`Played`: the events due there).
        """
        moments = []
        for played in self.play(MAIN, steps=max(0, self.settings.start_at - self.steps_taken()), from_start=True):
            if played.stopped is not None:
                raise played.stopped
            moments.append(played)
        return [event for moment in moments[:-1] for event in moment.events], moments[-1]

    @contextmanager
    def writing_file(self):
        """The main stepper, held under the lock while an export writes its file (run_app waits for it)."""
        with self.lock:
            self.writing = True
            try:
                yield self.steppers[MAIN]
            finally:
                self.writing = False

    # ------------------------------------------------------------ views
    def view(self, branch: str = MAIN) -> RunView:
        """A frozen snapshot of `branch` for the widgets."""
        with self.lock:
            shared = branch in (MAIN, FORK)  # a fork starts where the run started, from the same pictures
            return run_view(branch, self.steppers[branch], self.model_name, self._alphas_cumprod,
                            self._initial_latents if shared else None, self._inputs if shared else {})


def run_view(branch: str, stepper: ShownRun, model: str, alphas_cumprod: tuple[float, ...] = (), initial_latents=None,
             inputs: dict | None = None) -> RunView:
    """A frozen snapshot of one Stepper (the caller holds whatever lock guards it).

    `initial_latents` (the start on the VP scale) is taken from the stepper when not given; for a fork it is
    the start of the run it came from, which the fork shares.
    """
    st = stepper
    info = st.scheduler_info
    if not alphas_cumprod:
        alphas_cumprod = schedule_curve(st.scheduler)
    if initial_latents is None:
        initial_latents = st.start_on_vp_scale()
    return RunView(
        branch=branch, model=model, mode=st.mode, scheduler=st.scheduler_name,
        family=info.family, order=info.order, multistep=info.multistep, history_fill=st.history_fill,
        total_steps=st.total_steps, guidance_scale=st.guidance_scale, done=st.done,
        records=tuple(st.records), initial_latents=initial_latents,
        prompt_anatomy=st.prompt_anatomy, negative_anatomy=st.negative_anatomy,
        alphas_cumprod=alphas_cumprod, grid=tuple(st.grid), extra_channels=st.extra_channels,
        notices=tuple(st.notices), prediction_type=st.prediction_type, device=str(st.device),
        dtype=str(st.dtype).removeprefix("torch."), height=st.height, width=st.width,
        added_conditioning=st.added_conditioning, inputs=inputs or {}, strength=st.strength, sharing=st.sharing,
        model_family=families.model_family(type(st.pipe).__name__), schedule_shift=st.schedule_shift,
    )


def describe_failure(exc: Exception) -> tuple[str, str]:
    """(title, text) for a notification, in the user's words."""
    from ..engine import NonFiniteError, RunFinishedError, StepvizInputError
    from ..models import ModelLoadError

    if isinstance(exc, NonFiniteError):
        return "NaN/Inf", str(exc)
    if isinstance(exc, RunFinishedError):
        return "Nothing left to change", str(exc)  # the engine's line says what to do
    if isinstance(exc, ModelLoadError):
        return "Model not loaded", str(exc)
    if isinstance(exc, StepvizInputError):
        return "Not allowed", str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc):
        return "Out of memory", f"{exc}".strip()[:300] + " (try a smaller picture or fewer branches)"
    if isinstance(exc, ModuleNotFoundError):
        return "Not available", f"{exc} (this part of stepviz is not installed yet)"
    return type(exc).__name__, str(exc)[:300] or type(exc).__name__
