"""P2: key-press-to-repaint latency in the TUI while a step computes (target <= 100 ms).

    python bench/p2_key_latency.py --presses 8

The model is SD-width random UNet (bench/common.py), so each step is real compute of about a
second on a CPU. While the worker thread is inside the UNet, the benchmark sends the `?` key (help
screen) and measures from the key event until the help screen has been painted (the app's first
`_display` of that screen). Pilot.press is not used for the timing: it waits for the process to go
idle, which never happens while the worker computes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

import torch
from common import large_random_pipeline


async def measure(presses: int) -> list[float]:
    from stepviz.run.settings import RunSettings
    from stepviz.tui.app import StepvizApp
    from stepviz.tui.screens.help import HelpScreen

    pipe = large_random_pipeline(resolution=128)
    inside = threading.Event()
    original = pipe.unet.forward

    def watched(*args, **kwargs):
        inside.set()
        try:
            return original(*args, **kwargs)
        finally:
            inside.clear()

    pipe.unet.forward = watched
    app = StepvizApp(RunSettings(model="large-random", steps=50, height=128, width=128), pipe=pipe,
                     graphics="halfcell")
    latencies = []
    painted: list[tuple[float, object]] = []
    display = app._display

    def recording_display(screen, renderable):
        painted.append((time.perf_counter(), screen))
        return display(screen, renderable)

    app._display = recording_display
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(1.0)
        await pilot.press("p")  # auto-play: the worker computes steps back to back
        while len(latencies) < presses:
            while not inside.is_set():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # well inside the UNet call
            painted.clear()
            started = time.perf_counter()
            app.simulate_key("question_mark")
            while not any(isinstance(screen, HelpScreen) for _, screen in painted):
                await asyncio.sleep(0.001)
            shown = next(when for when, screen in painted if isinstance(screen, HelpScreen))
            latencies.append(shown - started)
            app.simulate_key("escape")
            await asyncio.sleep(0.2)
        await pilot.press("p")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=8)
    parser.add_argument("--all-cores", action="store_true",
                        help="let torch use every core (by default one is left for the UI, as run_app does)")
    args = parser.parse_args()
    if not args.all_cores:
        from stepviz.tui.app import leave_a_core_for_the_ui

        leave_a_core_for_the_ui()
    print(f"torch threads {torch.get_num_threads()}")
    latencies = asyncio.run(measure(args.presses))
    median = statistics.median(latencies)
    print(f"P2 key press -> repaint while a step computes: median {median * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} presses (target 100 ms, "
          f"ratio {median / 0.100:.2f})")


if __name__ == "__main__":
    main()
