"""P8: what a step costs in the notebook widget, next to `Stepper.step()` alone.

    python bench/p8_notebook_step.py --model toy --steps 10 --kind full

"click -> shown": the widget's step button clicked (headless, its event in Python) until the engine
thread has stepped and shown the step (x_t and x0-hat in the preview kind, the status, the numbers and
the prompt anatomy); "plots": until the plot thread has drawn both matplotlib plots too.
"Stepper.step()": the same step on a second, identical Stepper, interleaved with the first so machine
noise hits both alike. "play": the whole run played by the widget until its last step is shown
(pictures paced to one redraw per 0.3 s, plots to one per 2 s) against `Stepper.run()`.
"click returns": how long the button's callback holds the kernel (it only queues the job).
"""

from __future__ import annotations

import statistics
import time

import torch
from common import model_pipeline, run_options


def main() -> None:
    parser = run_options(steps=10)
    parser.add_argument("--kind", default="full", choices=("full", "approx", "channels"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    import stepviz
    from stepviz.notebook import Debugger

    pipe = model_pipeline(args.model)
    size = dict(height=args.size, width=args.size) if args.size else {}
    run = dict(prompt="a red circle on a black background", seed=0, num_inference_steps=args.steps,
               scheduler=args.scheduler, **size)
    debugger = Debugger(pipe, kind=args.kind, **run)
    debugger.wait(600)
    plain = stepviz.Stepper(pipe, **run)
    widget_times, plot_times, plain_times, click_times = [], [], [], []
    with torch.no_grad():
        while not plain.done:
            started = time.perf_counter()
            plain.step()
            plain_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            debugger.panels.step.click()
            click_times.append(time.perf_counter() - started)
            debugger.engine.wait(600)
            widget_times.append(time.perf_counter() - started)
            debugger.drawing.plotter.wait(600)
            plot_times.append(time.perf_counter() - started)
        assert len(debugger.stepper.records) == len(plain.records)

        debugger.stepper.rewind(0)
        started = time.perf_counter()
        debugger.play()
        debugger.engine.wait(600)  # the last step shown; its plots follow on the plot thread
        played = time.perf_counter() - started
        debugger.wait(600)
        plain.rewind(0)
        started = time.perf_counter()
        plain.run()
        ran = time.perf_counter() - started
    widget, step = statistics.median(widget_times), statistics.median(plain_times)
    plotted = statistics.median(plot_times)
    print(f"P8 model={args.model} kind={args.kind} steps={args.steps}: click -> shown {widget * 1000:.0f} ms, "
          f"Stepper.step() {step * 1000:.0f} ms, ratio {widget / step:.2f}; plots drawn {plotted * 1000:.0f} ms, "
          f"ratio {plotted / step:.2f} (medians); "
          f"play {played:.2f} s vs Stepper.run() {ran:.2f} s, ratio {played / ran:.2f}; "
          f"click returns in {statistics.median(click_times) * 1000:.2f} ms")
    debugger.close()


if __name__ == "__main__":
    main()
