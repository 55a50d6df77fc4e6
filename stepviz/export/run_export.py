"""`stepviz export`: run a lesson (or a prompt) headless and write everything a class handout needs.

    strip.png            x_t and x0-hat per kept step (8 to a row), labelled with the step, t, sigma
    sheet.png            the run on one 16:9 slide: input, mask, chosen steps, result (sheet-<n>-<label>.png:
                         each compared run; sheet-traced-<example>.png: the hand-written loop a lesson
                         traces, e.g. the course's own, on its own slide)
    steps.webp|.gif      one frame per step
    metrics.csv / .json  every float of every StepRecord, one row per step
    schedule.png         sigma_t and abar_t per step        norms.png   the guidance norms
    path.png             each run's distance from the straight line noise -> picture, and its step sizes
    blend.png            the DIY inpaint blend (inpaint mode, 4-channel UNet)
    extra_channels.png   the inpainting model's mask and masked picture, or Depth2Img's depth
    attention.png/.npz   what each word of the prompt attends to, per step (see attention.py)
    compare.png, compare-<n>-<label>.png   the [[compare]] runs
    manifest.json        versions, weights hash, seed, scheduler configs, events, steps run
    index.html           the explorable page: a step slider moving every view, plots, notes, claims (page.py)
    handout.html         all of it as one printable page of strips and tables (handout.py)

Everything is written into a hidden folder beside DIR, which is renamed to DIR at the end:
an interrupted export (Ctrl-C) leaves nothing behind. What `--force` may replace, and how leftovers
of a killed export are cleaned, is in folder.py.

A run stopped by the NaN/Inf watchdog still writes the steps that ran (the handout says where it
stopped); the command then prints the watchdog's line and exits with STOPPED_EXIT_CODE.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import shutil
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ..engine.checks import StepvizInputError
from ..engine.prediction import prediction_for
from ..render.strip import (
    animation_frames,
    blend_image,
    compare_image,
    extra_channels_image,
    strip_image,
    strip_pictures,
)
from ..run.play import play
from .attention import parse_steps, write_attention
from .folder import check_output_folder, make_staging, move_into_place
from .manifest import build_manifest, describe_picture, plain_config, write_json
from .strip import save_atomically

__all__ = ["export_run", "run_export_command"]

FRAME_MS, LAST_FRAME_MS = 250, 1500
STOPPED_EXIT_CODE = 3  # `stepviz export` when the NaN/Inf watchdog stopped the run (the files are written)


@dataclass
class FinishedRun:
    """One run taken to its end (or to a NaN stop), with what the manifest needs."""

    label: str
    stepper: object
    scheduler_configs: list[dict]
    events_applied: list[dict]
    stopped: str | None


def run_export_command(settings, args) -> int:
    """The CLI's entry: checks the options, exports, prints where the files are."""
    if args.every < 1:
        raise StepvizInputError(f"--every {args.every} is not allowed: it must be an integer >= 1")
    attention_steps = parse_steps(getattr(args, "attention_steps", None), most=settings.steps)
    check_output_folder(args.out, args.force)
    with _interrupts_honoured():
        out = export_run(settings, args.out, kind=args.preview, every=args.every, animation_format=args.format,
                         force=args.force, progress=sys.stderr.isatty(), attention_steps=attention_steps)
    for notice in _manifest(out).get("notices", []):  # what loading and the run noticed, one line each
        print(f"stepviz: note: {' '.join(str(notice).split())}", file=sys.stderr)
    print(f"stepviz: wrote {out} (open {out / 'index.html'})")
    stopped = _stopped_line(out)
    if stopped:
        print(f"stepviz: stopped: {stopped} (the steps that ran are written)", file=sys.stderr)
        return STOPPED_EXIT_CODE
    return 0


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _stopped_line(out: Path) -> str | None:
    return _manifest(out).get("stopped")


def export_run(settings, out: Path, *, kind: str = "full", every: int = 1, animation_format: str = "webp",
               force: bool = False, progress: bool = False, pipe=None,
               attention_steps: list[int] | None = None) -> Path:
    """Run `settings` (and its compare branches) and write the export folder `out` atomically; returns it."""
    target = check_output_folder(out, force)
    staging = make_staging(target)
    try:
        write_export(settings, staging, kind=kind, every=every, animation_format=animation_format,
                     progress=progress, pipe=pipe, attention_steps=attention_steps)
        _raise_if_interrupted()
        move_into_place(staging, target, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


_interrupt_requested = threading.Event()


@contextlib.contextmanager
def _interrupts_honoured():
    """While exporting, Ctrl-C and SIGTERM stop the export and clean up (main thread only).

    Python drops a KeyboardInterrupt raised inside a finalizer (`Exception ignored in ... __del__`),
    which a Ctrl-C during the model's loading often hits; the request is remembered here and honoured
    at the next step (`_raise_if_interrupted`).
    """
    def interrupt(signum, frame):
        _interrupt_requested.set()
        raise KeyboardInterrupt

    def unraisable(report):  # the dropped interrupt is honoured later: no "Exception ignored" traceback
        if not isinstance(report.exc_value, KeyboardInterrupt):
            default_unraisable(report)

    _interrupt_requested.clear()
    try:
        previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        previous = {}
    default_unraisable, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        _interrupt_requested.clear()
        sys.unraisablehook = default_unraisable
        for number, handler in previous.items():
            signal.signal(number, handler)


def _raise_if_interrupted() -> None:
    if _interrupt_requested.is_set():
        raise KeyboardInterrupt


# ---------------------------------------------------------------- running
def play_to_the_end(label: str, settings, pipe, bar) -> FinishedRun:
    """Take every step, applying the scripted events at their steps (pauses and notes are for the TUI)."""
    stepper = settings.make_stepper(pipe)
    configs = [{"at_step": 0, "scheduler": stepper.scheduler_name, "config": plain_config(stepper.scheduler.config)}]
    applied, stopped = [], None
    bar.set_description(label)
    for played in play(stepper, settings.events, from_start=True):
        _raise_if_interrupted()
        if played.record is not None:
            bar.total = bar.n + 1 + max(0, stepper.total_steps - len(stepper.records))
            bar.update(1)
        stopped = str(played.stopped) if played.stopped is not None else stopped
        if not played.applied:
            continue  # the run has ended: these events are listed below as not reached
        for event in played.events:
            if event.set_scheduler is not None:
                configs.append({"at_step": played.steps_taken, "scheduler": stepper.scheduler_name,
                                "config": plain_config(stepper.scheduler.config)})
            applied.append({"at_step": played.steps_taken, "applied": True,
                            "set_guidance_scale": event.set_guidance_scale, "set_scheduler": event.set_scheduler,
                            "note": event.note, "pause": event.pause})
    reached = {e["at_step"] for e in applied}
    for event in settings.events:
        if event.at_step not in reached:
            applied.append({"at_step": event.at_step, "applied": False, "set_guidance_scale": event.set_guidance_scale,
                            "set_scheduler": event.set_scheduler, "note": event.note, "pause": event.pause,
                            "why": f"the run ended after {len(stepper.records)} steps"})
    applied.sort(key=lambda e: e["at_step"])
    return FinishedRun(label, stepper, configs, applied, stopped)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "branch"


# ---------------------------------------------------------------- writing
def write_metrics(records, folder: Path) -> None:
    # what the norms measure (eps, v or x0, as the TUI says) and what drove each step (cfg, or the prompt alone)
    rows = [{**record.floats(), "scheduler": record.scheduler,
             "predicts": prediction_for(record.prediction_type).symbol, "noise_pred_from": record.noise_pred_from}
            for record in records]
    columns = list(rows[0]) if rows else ["step"]
    with (folder / "metrics.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    write_json(rows, folder / "metrics.json")


def write_path_figure(main: FinishedRun, others: list[FinishedRun], path: Path) -> None:
    """path.png: every run's distance from its straight line and its step sizes (render/path_plot.py)."""
    from ..engine.path_geometry import path_distances
    from ..render.path_plot import path_figure

    runs = [(run.label if run is not main else "this run", run.stepper.records, path_distances(run.stepper))
            for run in (main, *others)]
    path_figure(runs, path)


def save_animation(frames, path: Path) -> None:
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    options = dict(save_all=True, append_images=frames[1:], duration=durations, loop=0)
    if path.suffix == ".webp":
        options.update(quality=90, method=4)
    else:
        options.update(optimize=False, disposal=1)
    save_atomically(frames[0], path, **options)


def write_inputs(inputs: dict, folder: Path) -> list[str]:
    """The run's input pictures (img2img, inpaint, depth2img), as the handout shows them."""
    written = []
    for role, name in (("input", "input.png"), ("mask", "mask.png")):
        if role in inputs:
            save_atomically(inputs[role], folder / name)
            written.append(name)
    return written


def write_sheet(run: FinishedRun, settings, pictures, inputs: dict, kind: str, path: Path) -> None:
    """The run on one slide (sheet.png): inputs, chosen steps, result."""
    from ..render.sheet import sheet_image

    stepper = run.stepper
    scale = stepper.records[0].guidance_scale if stepper.records else stepper.guidance_scale  # the run's first
    subtitle = (f"{settings.prompt!r} · seed {settings.seed} · {stepper.scheduler_name} · guidance "
                f"{scale:g} · {len(stepper.records)} steps · {kind} pictures")
    save_atomically(sheet_image(run.label if run.label != "run" else "stepviz run", subtitle, stepper.records,
                                pictures, inputs), path)


def write_export(settings, folder: Path, *, kind: str, every: int, animation_format: str, progress: bool,
                 pipe=None, attention_steps: list[int] | None = None) -> None:
    from tqdm import tqdm

    from ..render import plots
    from .handout import write_handout
    from .page import write_page
    from .traced_sheet import write_traced_sheets

    pipes = {}

    def pipeline_for(model):
        if pipe is not None and model == settings.model:
            return pipe
        if str(model) not in pipes:
            pipes[str(model)] = settings.load_pipeline(model)
        return pipes[str(model)]

    total = settings.steps * (1 + len(settings.compare))
    with tqdm(total=total, disable=not progress, unit="step", leave=False, file=sys.stderr) as bar:
        bar.set_description("loading the model")
        main = play_to_the_end(settings.title or "run", settings, pipeline_for(settings.model), bar)
        others = []
        for branch in settings.compare:
            branch_run = settings.branch_settings(branch)
            others.append(play_to_the_end(branch.label, branch_run, pipeline_for(branch_run.model), bar))

    stepper, records = main.stepper, main.stepper.records
    if not records:
        raise StepvizInputError(f"the run stopped before its first step: {main.stopped}")
    files = []
    if kind == "full":
        from ..render.preview import slow_preview_notice

        notice = slow_preview_notice(stepper.pipe, stepper.height, stepper.width, "--preview approx is instant")
        if notice:
            print(f"stepviz: {notice}", file=sys.stderr)
    pictures = strip_pictures(stepper.pipe, records, kind, progress)
    title = f"{settings.title + ':  ' if settings.title else ''}{settings.prompt!r}  seed {settings.seed}  ({kind})"
    save_atomically(strip_image(records, pictures, every, title=title), folder / "strip.png")
    animation = f"steps.{animation_format}"
    save_animation(animation_frames(records, pictures), folder / animation)
    write_metrics(records, folder)
    branches = {run.label: run.stepper.records for run in others}
    plots.schedule_figure(records, folder / "schedule.png", branches, size=plots.SLIDE)
    plots.norms_figure(records, folder / "norms.png", size=plots.SLIDE)
    write_path_figure(main, others, folder / "path.png")
    files += ["strip.png", animation, "metrics.csv", "metrics.json", "schedule.png", "norms.png", "path.png"]
    inputs = settings.input_pictures()
    files += write_inputs(inputs, folder)
    write_sheet(main, settings, pictures, inputs, kind, folder / "sheet.png")
    files.append("sheet.png")
    files += write_traced_sheets(settings, folder, kind, progress)
    blend = blend_image(stepper.pipe, records, kind, pictures, every)
    if blend is not None:
        save_atomically(blend, folder / "blend.png")
        files.append("blend.png")
    extra = extra_channels_image(stepper.pipe, stepper.extra_channels, kind)
    if extra is not None:
        save_atomically(extra, folder / "extra_channels.png")
        files.append("extra_channels.png")
    files += write_attention(folder, stepper, attention_steps)

    compare, run_pictures_list = [], [pictures]
    if others:
        edited = any(e.set_guidance_scale is not None or e.set_scheduler for e in settings.events)
        rows = [("this run, with edits" if edited else "this run", records, pictures)]
        for number, run in enumerate(others, start=1):
            run_pictures = strip_pictures(run.stepper.pipe, run.stepper.records, kind, progress)
            name = f"compare-{number}-{slug(run.label)}.png"
            save_atomically(strip_image(run.stepper.records, run_pictures, every,
                                        title=f"{run.label}  ({kind})"), folder / name)
            rows.append((run.label, run.stepper.records, run_pictures))
            run_pictures_list.append(run_pictures)
            branch = settings.compare[number - 1]
            branch_settings = settings.branch_settings(branch)
            sheet = f"sheet-{number}-{slug(run.label)}.png"
            write_sheet(run, branch_settings, run_pictures, branch_settings.input_pictures(), kind, folder / sheet)
            overrides = {k: describe_picture(v) if k in ("image", "mask_image", "depth_map") else v
                         for k, v in branch.overrides.items()}
            compare.append({"label": run.label, "overrides": overrides, "file": name, "sheet": sheet,
                            "steps_run": len(run.stepper.records), "stopped": run.stopped,
                            "scheduler_configs": run.scheduler_configs})
            files += [name, sheet]
        save_atomically(compare_image(rows, every), folder / "compare.png")
        files.insert(len(files) - 2 * len(others), "compare.png")
    files += ["manifest.json", "index.html", "handout.html"]
    manifest = build_manifest(settings, stepper, scheduler_configs=main.scheduler_configs,
                              events_applied=main.events_applied, stopped=main.stopped, kind=kind, every=every,
                              animation=animation, compare=compare, files=files)
    write_json(manifest, folder / "manifest.json")
    write_handout(folder, manifest, records)
    write_page(folder, manifest, settings, main, others, run_pictures_list, kind, every)
