"""P6: cold start of the TUI until the first step can be taken (target 4 s on the toy), and of
`stepviz export`, with an import-time breakdown; also `stepviz.load_pipeline(MODEL)` in a fresh process.

    python bench/p6_cold_start.py --model toy

Each figure is a fresh Python process (the median of --repeats). The user's wait is the time
from starting the process (the parent's clock) until step 1's numbers are on screen, when space is
pressed as soon as the main screen has the loaded run, along the path `stepviz tui --model M` takes
(parse, validate, app, model, prompt), headless. Printed beside it: when space first works, the first
paint ("loading the model..."), and when each loading stage began.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time

TUI_FIRST_STEP = r"""
import asyncio, os, sys, time
launched = float(sys.argv[1])  # the parent's clock just before it started this process
since = lambda: f"{time.time() - launched:.3f} {time.process_time():.3f}"  # noqa: E731  (wall, CPU)
from stepviz.cli import build_parser, settings_from_args
from stepviz.tui.app import StepvizApp, leave_a_core_for_the_ui
settings = settings_from_args(build_parser().parse_args(["tui", "--model", sys.argv[2]]))
settings.validate()  # what `stepviz tui` does before the window opens
leave_a_core_for_the_ui()
print(f"VALIDATED {since()}", flush=True)
async def main():
    from stepviz.run.session import MAIN
    from stepviz.tui.screens.main import MainScreen
    from stepviz.tui.widgets.guidance_panel import GuidancePanel
    app = StepvizApp(settings, graphics="halfcell")
    display, painted = app._display, asyncio.Event()
    def first_paint(screen, renderable):
        if isinstance(screen, MainScreen) and renderable is not None and not painted.is_set():
            print(f"FIRST_FRAME {since()}", flush=True)
            painted.set()
        return display(screen, renderable)
    app._display = first_paint
    busy = MainScreen.on_engine_jobs_busy
    def stage(screen, message):  # each stage of the load, when the UI thread hears of it
        print(f"STAGE {since()} {message.text}", flush=True)
        busy(screen, message)
    MainScreen.on_engine_jobs_busy = stage
    async with app.run_test(size=(120, 40)) as pilot:
        await asyncio.wait_for(painted.wait(), 120)
        screen = next(s for s in app.screen_stack if isinstance(s, MainScreen))
        while MAIN not in screen.views:  # the "loaded" message handled: space takes step 1 now
            await asyncio.sleep(0.005)
        print(f"STEP_READY {since()}", flush=True)
        await pilot.press("space")  # the user presses space at once
        panel = screen.query_one(GuidancePanel)
        while panel.shown is None or panel.shown.record is None:
            await asyncio.sleep(0.005)
        await pilot.pause()  # step 1's numbers drawn
        print(f"FIRST_STEP {since()}", flush=True)
        os._exit(0)
asyncio.run(main())
"""


LOAD = r"""
import sys, time
started = time.perf_counter()
import diffusers, torch, transformers  # what load_pipeline needs, imported first to time them apart
imported = time.perf_counter()
import stepviz
stepviz.load_pipeline(sys.argv[1])
print(f"LOAD {time.perf_counter() - imported:.3f} IMPORTS {imported - started:.3f}", flush=True)
"""


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    return time.perf_counter() - started, done.stdout + done.stderr


def import_breakdown(module: str, top: int = 6) -> list[tuple[str, float]]:
    _, output = timed([sys.executable, "-X", "importtime", "-c", f"import {module}"])
    rows = []
    for line in output.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s+(\S+)$", line.strip())
        if match and "." not in match.group(2):
            rows.append((match.group(2), int(match.group(1)) / 1e6))
    return sorted(rows, key=lambda row: -row[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="toy")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tui-only", action="store_true", help="time the TUI's cold start only")
    args = parser.parse_args()
    skipped = 1 if args.tui_only else args.repeats  # nan for the figures not timed
    help_times = [timed([sys.executable, "-m", "stepviz", "--help"])[0] if not args.tui_only else float("nan")
                  for _ in range(skipped)]
    export_times = [float("nan")] if args.tui_only else []
    for _ in range(0 if args.tui_only else args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            export_times.append(timed([sys.executable, "-m", "stepviz", "export", "--model", args.model,
                                       "--steps", "1", "--preview", "approx", "--out", f"{folder}/out"])[0])
    runs = []  # per process: {label: seconds since launch}
    for _ in range(args.repeats):
        _, output = timed([sys.executable, "-c", TUI_FIRST_STEP, repr(time.time()), args.model])
        marks = {name: (float(at), float(cpu)) for name, at, cpu in re.findall(
            r"^(VALIDATED|FIRST_FRAME|STEP_READY|FIRST_STEP) ([\d.]+) ([\d.]+)", output, re.M)}
        marks.update({text: (float(at), float(cpu)) for at, cpu, text in re.findall(
            r"^STAGE ([\d.]+) ([\d.]+) (loading: .*)$", output, re.M)})
        if "FIRST_STEP" in marks:
            runs.append(marks)
        else:
            print(output[-2000:], file=sys.stderr)
    loads, imports = [], []
    for _ in range(0 if args.tui_only else args.repeats):
        found = re.search(r"LOAD ([\d.]+) IMPORTS ([\d.]+)", timed([sys.executable, "-c", LOAD, args.model])[1])
        if found:
            loads.append(float(found.group(1)))
            imports.append(float(found.group(2)))
    if loads:
        print(f"P6 load_pipeline({args.model!r}): {statistics.median(loads):.2f} s once torch, diffusers and "
              f"transformers are imported (target 2 s); the imports take {statistics.median(imports):.2f} s")
    median = lambda values: statistics.median(values) if values else float("nan")  # noqa: E731
    at = lambda label, which=0: median([run[label][which] for run in runs if label in run])  # noqa: E731
    print(f"P6 model={args.model}: step 1's numbers on screen {at('FIRST_STEP'):.2f} s after launch, space pressed "
          f"as soon as it steps (target 4 s; CPU {at('FIRST_STEP', 1):.2f} s); ready for the first step "
          f"{at('STEP_READY'):.2f} s; first paint {at('FIRST_FRAME'):.2f} s; `stepviz --help` "
          f"{median(help_times):.2f} s; `stepviz export` (1 step) {median(export_times):.2f} s")
    labels = sorted({label for run in runs for label in run}, key=at)
    print("  after launch: wall clock, CPU time of the process (the wall clock on an idle machine, less the start "
          "of the interpreter)")
    for label in labels:  # the stages of one cold start (medians)
        print(f"  {at(label):6.2f} s {at(label, 1):6.2f} s  {label}")
    for module in () if args.tui_only else ("torch", "diffusers", "transformers", "textual"):
        total = sum(seconds for name, seconds in import_breakdown(module) if name == module)
        print(f"  import {module}: {total:.2f} s")


if __name__ == "__main__":
    main()
