"""P6: cold start of `stepviz export` and of the TUI's first frame, with an import-time breakdown.

    python bench/p6_cold_start.py --model toy

Each figure is a fresh Python process (the median of --repeats). The TUI's first frame is the time
until the app has mounted its main screen and painted once, measured inside a headless run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time

TUI_FIRST_FRAME = r"""
import asyncio, sys, time
started = time.perf_counter()
from stepviz.settings import RunSettings
from stepviz.tui.app import StepvizApp
async def main():
    app = StepvizApp(RunSettings(model=sys.argv[1]), graphics="halfcell")
    async with app.run_test(size=(120, 40)) as pilot:
        await app.wait_until_ready() if hasattr(app, "wait_until_ready") else await pilot.pause()
        print(f"FIRST_FRAME {time.perf_counter() - started:.3f}")
asyncio.run(main())
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
    args = parser.parse_args()
    help_times = [timed([sys.executable, "-m", "stepviz", "--help"])[0] for _ in range(args.repeats)]
    export_times = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            export_times.append(timed([sys.executable, "-m", "stepviz", "export", "--model", args.model,
                                       "--steps", "1", "--preview", "approx", "--out", f"{folder}/out"])[0])
    frames = []
    for _ in range(args.repeats):
        _, output = timed([sys.executable, "-c", TUI_FIRST_FRAME, args.model])
        found = re.search(r"FIRST_FRAME ([\d.]+)", output)
        if found:
            frames.append(float(found.group(1)))
    print(f"P6 model={args.model}: `stepviz --help` {statistics.median(help_times):.2f} s; "
          f"`stepviz export` (1 step) {statistics.median(export_times):.2f} s; "
          f"TUI first frame {statistics.median(frames) if frames else float('nan'):.2f} s (target 4 s)")
    for module in ("torch", "diffusers", "transformers", "textual"):
        total = sum(seconds for name, seconds in import_breakdown(module) if name == module)
        print(f"  import {module}: {total:.2f} s")


if __name__ == "__main__":
    main()
