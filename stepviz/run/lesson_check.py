"""`stepviz lessons check [LESSON ...]`: play lessons headless and test every claim their notes make.

Each lesson's main run (with its scripted events) and each [[compare]] run a claim names is played
once on the lesson's model; pictures are full VAE decodes, judged by the toy checker
(stepviz.toy.checker). A count over seeds plays the runs it names once more per seed (shared by the
counts over the same seeds); a config claim reads the model's config. Every claim is printed with
what was measured, its margin and pass or FAIL, and the lesson's time in class at its pace. Exit
status: 0 when every claim passes, 1 otherwise.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

from ..lessons.claims import Claim
from ..lessons.pacing import MAX_CLASS_SECONDS, class_seconds, describe_seconds
from .metric_measures import mean_difference, metric_value


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
    """The runs of one lesson, each played to its end once, with pictures decoded on demand; `changes`: settings
    every run takes instead of its own (another seed, a count's overrides)."""

    def __init__(self, settings, changes: tuple = ()):
        self.settings, self.changes = settings, changes
        self.played: dict[str, object] = {}  # label -> its stepper, played to the end
        self._pictures: dict[tuple, object] = {}
        self._elsewhere: dict[tuple, LessonRuns] = {}  # changes -> the same lesson's runs with them

    def settings_of(self, label: str):
        settings = self.settings
        if label != "main":
            branch = next(b for b in self.settings.compare if b.label == label)
            settings = self.settings.branch_settings(branch)
        return settings.with_overrides(**dict(self.changes)) if self.changes else settings

    def with_changes(self, changes: tuple) -> LessonRuns:
        """The lesson's runs with `changes` ((key, value) pairs, e.g. (("seed", 3),)), each played once per check:
        claims counted over the same seeds and settings share them."""
        if changes not in self._elsewhere:
            self._elsewhere[changes] = LessonRuns(self.settings, changes)
        return self._elsewhere[changes]

    def runs_played(self) -> int:
        return len(self.played) + sum(runs.runs_played() for runs in self._elsewhere.values())

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
def measure(claim: Claim, runs: LessonRuns) -> ClaimResult:
    """Measure one claim on the lesson's runs."""
    try:
        return _measured(claim, runs)
    except LookupError as exc:
        return ClaimResult(claim, claim.step, False, f"cannot measure: {exc}")


def _measured(claim: Claim, runs: LessonRuns) -> ClaimResult:
    """A claim's result; LookupError when it cannot be measured."""
    if claim.kind == "seeds":
        return seed_count(claim, runs)
    if claim.kind == "config":
        return _config(claim, runs)
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


def seed_count(claim: Claim, runs: LessonRuns) -> ClaimResult:
    """At how many of its seeds the counted claim holds: the lesson's run (with its events, or a [[compare]] run)
    played at each seed with the count's overrides, pictures judged as every claim judges them. A bar with the time
    left on a terminal."""
    from tqdm import tqdm

    from ..lessons.claim_record import seeds_words
    from ..lessons.claims_beyond_the_run import counts_attention

    held = []
    with tqdm(claim.seeds, unit="seed", leave=False, file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        for seed in bar:
            bar.set_description(f"{claim.run}, seed {seed}")
            changes = (("seed", seed), ("capture_attention", counts_attention(claim)), *claim.overrides)
            try:
                result = _measured(claim.per_seed, runs.with_changes(changes))
            except (LookupError, ValueError) as exc:  # ValueError: an override the run refuses
                raise LookupError(f"seed {seed}: {exc}") from None
            if result.passed:
                held.append(seed)
    count = len(held)
    passed = (claim.at_least is None or count >= claim.at_least) and (claim.at_most is None or count <= claim.at_most)
    which = seeds_words(tuple(held)) if held else "none"
    return ClaimResult(claim, claim.per_seed.step, passed, f"holds at {count} of {len(claim.seeds)} ({which})",
                       float(count))


def _config(claim: Claim, runs: LessonRuns) -> ClaimResult:
    """A value of the run's model config (a component without one, the tokenizer: its attribute)."""
    from ..lessons.claims_beyond_the_run import config_matches

    pipe = pipeline(str(runs.settings_of(claim.run).model))
    component_name, _, key = claim.config.partition(".")
    component = getattr(pipe, component_name, None)
    if component is None:
        raise LookupError(f"the {claim.run} run's model has no {component_name}")
    config = getattr(component, "config", component)
    found = config.get(key) if hasattr(config, "get") else getattr(config, key, None)
    if found is None:
        raise LookupError(f"{component_name} has no config value {key!r}")
    found = list(found) if isinstance(found, tuple) else found
    return ClaimResult(claim, "-", config_matches(found, claim.equals), f"{claim.config} = {found!r}")


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


# ---------------------------------------------------------------- lessons
def check_lesson(name_or_path) -> LessonReport:
    from .lesson_file import load_lesson
    from ..lessons.shipped import lesson_path

    started = time.perf_counter()
    path = lesson_path(name_or_path)
    settings = load_lesson(path)
    runs = LessonRuns(settings)
    claims = [*settings.expect, *(claim for event in settings.events for claim in event.expect)]
    results = [measure(claim, runs) for claim in claims]
    return LessonReport(path.stem, settings.title, results, runs.runs_played(), time.perf_counter() - started,
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
