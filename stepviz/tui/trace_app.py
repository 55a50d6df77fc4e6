"""`stepviz trace SCRIPT.py --open`: the traced loop and the pipeline's run side by side, stepped together.

The main screen holds the loop's own steps (A); the compare view (screens/compare.py) opens at once
with the pipeline's reference run (B) beside it. Both are recordings (trace/replay.py): space
steps both; escape goes back to the main screen, where the left arrow and `b` look back and rewind as
in any run; guidance and scheduler edits are refused.
"""

from __future__ import annotations

import dataclasses
from functools import partial

from ..run.session import FORK, MAIN, RunSession
from .app import StepvizApp, leave_a_core_for_the_ui
from .engine_jobs import EngineJobs
from .screens.main import MainScreen


def verdict_lines(report) -> tuple[str, str]:
    """(a short title, the verdict with its cause) for the screen."""
    first = report.first_divergence
    if first is None:
        return "your loop matches the pipeline", "every quantity agrees within float rounding"
    cause = f"{first.cause.id}: {first.cause.explanation}" if first.cause else "cause not recognised"
    return f"first divergence: step {first.step}, {first.quantity}", cause


class TraceSession(RunSession):
    """The two replays as the session's main branch and fork, each with its own starting latents."""

    def __init__(self, settings, pipe, loop, reference):
        super().__init__(settings, pipe)
        self._sides = {MAIN: loop, FORK: reference}

    def load(self, progress=lambda text: None):
        with self.lock:
            self.steppers = dict(self._sides)
            self._alphas_cumprod = tuple(float(a) for a in self._sides[MAIN].scheduler.alphas_cumprod)
            return self.view(MAIN)

    def view(self, branch: str = MAIN):
        with self.lock:
            view = super().view(branch)
            return dataclasses.replace(view, initial_latents=self.steppers[branch].start_on_vp_scale())


class TraceMainScreen(MainScreen):
    """The main screen, opening the comparison as soon as the recordings are in."""

    def __init__(self, session, graphics, titles, verdict: str = ""):
        super().__init__(session, graphics)
        self.compare_titles, self.verdict = titles, verdict

    def on_engine_jobs_run_changed(self, message: EngineJobs.RunChanged) -> None:
        super().on_engine_jobs_run_changed(message)
        if message.reason == "loaded":
            from .screens.compare import CompareScreen

            session = self.session
            pairs = [(b, self.compare_titles[b]) for b in (MAIN, FORK)]
            self.app.push_screen(CompareScreen(session, pairs, self.graphics, kind=self.kind, selected=1,
                                               title=self.verdict),
                                 partial(self.keys.compare_closed, [MAIN, FORK]))


class TraceApp(StepvizApp):
    def __init__(self, report, loop, reference, pipe, graphics: str = "halfcell") -> None:
        from ..run.settings import RunSettings

        title, verdict = verdict_lines(report)
        settings = RunSettings(title=f"stepviz trace: {title}", description=verdict)
        super().__init__(settings, pipe, graphics)
        self.session = TraceSession(settings, pipe, loop, reference)
        self.titles = {MAIN: f"your loop ({title})", FORK: "the pipeline (stepviz Stepper, same inputs)"}
        self.verdict = verdict

    def main_screen(self):
        return TraceMainScreen(self.session, self.graphics, self.titles, self.verdict)

    def on_mount(self) -> None:  # after StepvizApp.on_mount (Textual calls both), which pushes main_screen()
        self.notify(self.verdict, title="stepviz trace", timeout=15)


def run_trace_app(tr, report, graphics: str = "halfcell") -> int:
    from ..trace.replay import replays

    leave_a_core_for_the_ui()
    loop, reference = replays(report, tr.pipe)
    TraceApp(report, loop, reference, tr.pipe, graphics=graphics).run()
    return 0
