"""`stepviz lessons check [LESSON ...]`: play lessons headless and test every claim their notes make.

Each lesson's main run (with its scripted events) and each [[compare]] run a claim names is played
once on the lesson's model; pictures are full VAE decodes, judged by the toy checker
(stepviz.toy.checker). Every claim is printed with what was measured and pass or FAIL, and the
lesson's time in class at its pace. Exit status: 0 when every claim passes, 1 otherwise.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

from ..lessons import run_measures
from ..lessons.claims import ATTENTION_METRICS, Claim
from ..lessons.pacing import MAX_CLASS_SECONDS, class_seconds, describe_seconds


@dataclass
class ClaimResult:
    claim: Claim
    step: int | str
    passed: bool
    measured: str
    value: float | None = None


@dataclass
class LessonReport:
    name: str
    title: str
    results: list[ClaimResult]
    runs_played: int
    seconds: float
    class_seconds: float

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results) and self.class_seconds <= MAX_CLASS_SECONDS


@functools.cache
def pipeline(model: str):
    """One pipeline per model for the whole check (lessons share them)."""
    from ..models import load_pipeline

    return load_pipeline(model)


class LessonRuns:
    """The runs of one lesson, each played to its end once, with pictures decoded on demand."""

    def __init__(self, settings):
        self.settings = settings
        self.played: dict[str, object] = {}  # label -> its stepper, played to the end
        self._pictures: dict[tuple, object] = {}

    def settings_of(self, label: str):
        if label == "main":
            return self.settings
        branch = next(b for b in self.settings.compare if b.label == label)
        return self.settings.branch_settings(branch)

    def stepper(self, label: str):
        if label not in self.played:
            from .play import play

            settings = self.settings_of(label)
            stepper = settings.make_stepper(pipeline(str(settings.model)))
            for _ in play(stepper, settings.events, from_start=True):
                pass  # to the end, or to a NaN stop: the claims measure what ran
            self.played[label] = stepper
        return self.played[label]

    def steps_taken(self, label: str, step: int | str) -> int:
        records = self.stepper(label).records
        taken = len(records) if step == "end" else step
        if taken > len(records):
            raise LookupError(f"the {label} run took only {len(records)} steps")
        return taken

    def latents(self, label: str, picture: str, taken: int):
        """x_t (on the VP scale) or x0-hat once `taken` steps are taken."""
        from ..engine.noise_scale import to_vp_scale

        stepper = self.stepper(label)
        if picture == "x_t" and taken == 0:
            return stepper.start_on_vp_scale()
        if taken == 0:
            raise LookupError("there is no x0-hat before the first step")
        record = stepper.records[taken - 1]
        if picture == "x0_hat":
            return record.pred_original_sample
        return to_vp_scale(record.latents, record.family, record.sigma_next)

    def picture(self, label: str, picture: str, taken: int):
        key = (label, picture, taken)
        if key not in self._pictures:
            from ..render.preview import decode_images

            self._pictures[key] = decode_images(self.stepper(label).pipe, self.latents(label, picture, taken))[0]
        return self._pictures[key]

    def input_picture(self, label: str, key: str = "image"):
        from ..engine.checks import load_image

        settings, stepper = self.settings_of(label), self.stepper(label)
        if getattr(settings, key) is None:
            raise LookupError(f"the {label} run has no {key}")
        return load_image(key, getattr(settings, key), settings.mode).resize((stepper.width, stepper.height))


# ---------------------------------------------------------------- measuring
def mean_difference(a, b, where=None) -> float:
    """Mean |pixel difference| on 0..255 over all pixels (or where `where` is True)."""
    import numpy as np

    diff = np.abs(np.asarray(a.convert("RGB"), dtype=np.float32) - np.asarray(b.convert("RGB"), dtype=np.float32))
    if where is not None:
        diff = diff[where]
    return float(diff.mean())


def measure(claim: Claim, runs: LessonRuns) -> ClaimResult:
    """Measure one claim on the lesson's runs."""
    try:
        if claim.kind == "trace":
            return _trace(claim)
        if claim.kind == "refusal":
            return _refusal(claim, runs)
        taken = runs.steps_taken(claim.run, claim.step)
        if claim.kind == "sees":
            return _sees(claim, runs, taken)
        if claim.kind in ("differs", "same"):
            other_taken = runs.steps_taken(claim.other, claim.step)
            value = mean_difference(runs.picture(claim.run, claim.picture, taken),
                                    runs.picture(claim.other, claim.picture, other_taken))
            passed = value > claim.threshold if claim.kind == "differs" else value <= claim.threshold
            return ClaimResult(claim, taken, passed, f"mean |difference| {value:.2f}", value)
        value = metric_value(claim, runs, taken)
        passed = (claim.above is None or value > claim.above) and (claim.below is None or value < claim.below)
        return ClaimResult(claim, taken, passed, f"{claim.metric} = {value:.4g}", value)
    except LookupError as exc:
        return ClaimResult(claim, claim.step, False, f"cannot measure: {exc}")


@functools.cache
def traced_run(command: str):
    """(the trace, its report) of a shipped example run with its arguments (each run once per process)."""
    from ..trace.script import run_traced
    from ..lessons.shipped import script_path

    name, *args = command.split()
    traces, _ = run_traced(script_path(name), args)
    if not traces:
        raise LookupError(f"{command} stepped no scheduler")
    return traces[-1], traces[-1].compare()


def traced_report(command: str):
    """The trace report of a shipped example run with its arguments."""
    return traced_run(command)[1]


def _trace(claim: Claim) -> ClaimResult:
    report = traced_report(claim.trace)
    first, value = report.first_divergence, report.final_difference
    found = "none" if first is None else first.cause.id if first.cause else "unexplained"
    passed = found == claim.divergence and (claim.divergence_step is None or (
        first is not None and first.step == claim.divergence_step))
    if claim.above is not None or claim.below is not None:  # a bound needs the final latents compared
        passed = passed and value is not None and (claim.above is None or value > claim.above) and \
            (claim.below is None or value < claim.below)
    where = "" if first is None else f" at step {first.step} ({first.quantity})"
    final = "final latents not compared" if value is None else f"final {value:.3g} apart"
    return ClaimResult(claim, "-", passed, f"found {found}{where}, {final}", value)


def _refusal(claim: Claim, runs: LessonRuns) -> ClaimResult:
    from ..engine.checks import StepvizInputError

    try:
        runs.settings_of(claim.run).with_overrides(**dict(claim.refused)).validate()
    except StepvizInputError as exc:
        return ClaimResult(claim, "-", claim.says in str(exc), f"refused: {exc}")
    return ClaimResult(claim, "-", False, "accepted")


def _sees(claim: Claim, runs: LessonRuns, taken: int) -> ClaimResult:
    from ..toy.checker import classify

    found = dict(zip(("colour", "shape", "background"), classify(runs.picture(claim.run, claim.picture, taken))))
    passed = all(found[key] in names for key, names in claim.sees.items())
    words = f"{found['colour'] or 'no'} {found['shape'] or 'shape'}, {found['background']} background"
    return ClaimResult(claim, taken, passed, f"found: {words}")


def metric_value(claim: Claim, runs: LessonRuns, taken: int) -> float:
    """The value of a metric claim's metric once `taken` steps are taken: computed by the checker (METRIC_MEASURES)
    or, for a StepRecord's float, read from the record of step `taken`."""
    stepper = runs.stepper(claim.run)
    measured = METRIC_MEASURES.get(claim.metric)
    if measured is not None:
        return measured(claim, runs, taken, stepper)
    if taken < 1:
        raise LookupError(f"{claim.metric} is recorded by a step: there is none before step 1")
    return float(getattr(stepper.records[taken - 1], claim.metric))


def _picture_change(claim: Claim, runs: LessonRuns, taken: int, stepper) -> float:
    if taken < 1 + (claim.picture == "x0_hat"):
        raise LookupError(f"picture_change of {claim.picture} needs a step before it")
    return mean_difference(runs.picture(claim.run, claim.picture, taken),
                           runs.picture(claim.run, claim.picture, taken - 1))


def _input_overlap(claim: Claim, runs: LessonRuns, taken: int, stepper) -> float:
    import numpy as np

    from ..toy.checker import inspect

    mine = inspect(runs.picture(claim.run, claim.picture, taken))["mask"]
    theirs = inspect(runs.input_picture(claim.run))["mask"]
    union = np.logical_or(mine, theirs).sum()
    return float(np.logical_and(mine, theirs).sum() / union) if union else 0.0


def _outside_mask_difference(claim: Claim, runs: LessonRuns, taken: int, stepper) -> float:
    import numpy as np

    keep = np.asarray(runs.input_picture(claim.run, "mask_image").convert("L")) < 128
    return mean_difference(runs.picture(claim.run, claim.picture, taken), runs.input_picture(claim.run), keep)


def _input_latents(claim: Claim, stepper):
    """E(input) * scaling_factor, the latents an img2img/inpaint/depth2img run starts from."""
    latents = stepper.run_inputs.image_latents
    if latents is None:
        raise LookupError(f"{claim.metric} needs a run that encodes an input picture (img2img, inpaint, depth2img)")
    return latents


def _input_round_trip(claim: Claim, runs: LessonRuns, taken: int, stepper) -> float:
    from ..render.preview import decode_images

    latents = _input_latents(claim, stepper)
    return mean_difference(decode_images(stepper.pipe, latents)[0], runs.input_picture(claim.run))


def _run_measure(claim: Claim, runs: LessonRuns, taken: int, stepper) -> float:
    return run_measures.measure(claim.metric, runs, claim.run, taken, mean_difference)


# metric -> how the checker computes it, (claim, runs, steps taken, the run's stepper) -> float; the StepRecord's
# floats (claims.RECORD_METRICS) are read from the record instead
METRIC_MEASURES = {
    "steps_run": lambda claim, runs, taken, stepper: float(len(stepper.records)),
    "prompt_tokens": lambda claim, runs, taken, stepper: float(len(stepper.prompt_anatomy.tokens)),
    "prompt_truncated": lambda claim, runs, taken, stepper: float(stepper.prompt_anatomy.truncated_text is not None),
    "x_t_vs_x0_hat": lambda claim, runs, taken, stepper: float(
        (runs.latents(claim.run, "x_t", taken) - runs.latents(claim.run, "x0_hat", taken)).abs().mean()),
    "picture_change": _picture_change,
    "input_difference": lambda claim, runs, taken, stepper: mean_difference(
        runs.picture(claim.run, claim.picture, taken), runs.input_picture(claim.run)),
    "input_overlap": _input_overlap,
    "outside_mask_difference": _outside_mask_difference,
    **{name: (lambda claim, runs, taken, stepper: attention_value(claim, runs, taken)) for name in ATTENTION_METRICS},
    **{name: _run_measure for name in run_measures.MEASURES},
    "input_round_trip": _input_round_trip,
    "input_latents_std": lambda claim, runs, taken, stepper: float(_input_latents(claim, stepper).std()),
    "path_distance": lambda claim, runs, taken, stepper: path_distance_value(runs, claim.run, taken),
    "sigma_step": lambda claim, runs, taken, stepper: sigma_step_value(runs, claim.run, taken),
}


def path_distance_value(runs: LessonRuns, label: str, taken: int) -> float:
    """x_t's distance from the straight line between the run's start noise and its final latents, once `taken`
    steps are taken (0 before the first step)."""
    from ..engine.path_geometry import path_distances

    return 0.0 if taken == 0 else path_distances(runs.stepper(label))[taken - 1]


def sigma_step_value(runs: LessonRuns, label: str, taken: int) -> float:
    """sigma - sigma_next of the step that `taken` completes: the step size on the noise level."""
    if taken < 1:
        raise LookupError("sigma_step is recorded by a step: there is none before step 1")
    record = runs.stepper(label).records[taken - 1]
    return float(record.sigma - record.sigma_next)


def attention_value(claim: Claim, runs: LessonRuns, taken: int) -> float:
    """A word's share of cross-attention mass on the shape in x0-hat (attention_on_shape), or that share over
    the share of the picture the shape covers (attention_vs_even), as the TUI's attention view shows them."""
    from ..render.attention_pictures import foreground_shares, token_labels

    if taken < 1:
        raise LookupError("the attention maps are recorded by a step: there is none before step 1")
    stepper = runs.stepper(claim.run)
    maps = stepper.records[taken - 1].cross_attention
    if maps is None:
        raise LookupError(f"the {claim.run} run records no attention maps")
    labels = token_labels(stepper.prompt_anatomy.tokens)
    if claim.token not in labels:
        raise LookupError(f"token {claim.token!r} is not in the prompt; its tokens are {', '.join(labels)}")
    cells, shares = foreground_shares(runs.picture(claim.run, "x0_hat", taken), maps)
    share = shares[labels.index(claim.token)]
    if claim.metric == "attention_on_shape":
        return share
    if cells.mean() <= 0:
        raise LookupError("the checker finds no shape in x0-hat at this step")
    return share / float(cells.mean())


# ---------------------------------------------------------------- lessons
def check_lesson(name_or_path) -> LessonReport:
    from .lesson_file import load_lesson
    from ..lessons.shipped import lesson_path

    started = time.perf_counter()
    path = lesson_path(name_or_path)
    settings = load_lesson(path)
    runs = LessonRuns(settings)
    results = [measure(claim, runs) for event in settings.events for claim in event.expect]
    return LessonReport(path.stem, settings.title, results, len(runs.played), time.perf_counter() - started,
                        class_seconds(settings))


def print_report(report: LessonReport, out=None) -> None:
    out = out or sys.stdout
    print(f"{report.name}: {report.title}  ({report.runs_played} runs played in {report.seconds:.1f} s)", file=out)
    for result in report.results:
        claim = result.claim
        mark = "pass" if result.passed else "FAIL"
        margin = claim.margin_words(result.value)
        print(f"  {mark}  step {str(result.step):>3}  {claim.describe():<58} {result.measured}"
              + (f", {margin}" if margin else ""), file=out)
        if claim.say:
            print(f"              ({claim.say})", file=out)
    if not report.results:
        print("  FAIL  the lesson checks no claim: add [[events.expect]] tables", file=out)
    fits = report.class_seconds <= MAX_CLASS_SECONDS
    print(f"  {'pass' if fits else 'FAIL'}  in class at its pace: {describe_seconds(report.class_seconds)} "
          f"(at most {describe_seconds(MAX_CLASS_SECONDS)})", file=out)


def run_check_command(names: list[str]) -> int:
    """Check the named lessons (all ready lessons when none is named); 0 when every claim passes."""
    from ..lessons.shipped import LESSONS_FOLDER

    from tqdm import tqdm

    names = names or [path.stem for path in sorted(LESSONS_FOLDER.glob("*.toml"))]
    reports = []
    with tqdm(names, unit="lesson", leave=False, file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        for name in bar:  # a bar with the time left, on a terminal only
            bar.set_description(str(name))
            report = check_lesson(name)
            with tqdm.external_write_mode(file=sys.stdout):
                print_report(report)
            reports.append(report)
    claims = sum(len(r.results) for r in reports)
    failed = sum(not c.passed for r in reports for c in r.results)
    bad_lessons = [r.name for r in reports if not r.passed or not r.results]
    lessons = f"{len(reports)} lesson" + ("" if len(reports) == 1 else "s")
    print(f"{lessons}, {claims} claims: {claims - failed} pass, {failed} fail"
          + (f"; not passing: {', '.join(bad_lessons)}" if bad_lessons else ""))
    return 1 if bad_lessons else 0
