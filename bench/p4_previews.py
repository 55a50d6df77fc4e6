"""P4: cost of each preview kind per step, as a fraction of the step (target: approx <= 10%).

    python bench/p4_previews.py --model toy --steps 10

Each kind draws both pictures the TUI shows per step (x_t and x0-hat).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import model_pipeline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="toy")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=None)
    args = parser.parse_args()
    import stepviz
    from stepviz.render import PREVIEW_KINDS
    from stepviz.render.preview import record_previews

    pipe = model_pipeline(args.model)
    size = dict(height=args.size, width=args.size) if args.size else {}
    st = stepviz.Stepper(pipe, prompt="a red circle on a black background", seed=0, num_inference_steps=args.steps,
                         **size)
    step_times = []
    kind_times: dict[str, list[float]] = {kind: [] for kind in PREVIEW_KINDS}
    with torch.no_grad():
        while not st.done:
            started = time.perf_counter()
            record = st.step()
            step_times.append(time.perf_counter() - started)
            for kind in PREVIEW_KINDS:
                started = time.perf_counter()
                record_previews(pipe, record, kind)
                kind_times[kind].append(time.perf_counter() - started)
    step = statistics.median(step_times)
    parts = [f"{kind}={statistics.median(t) * 1000:.1f} ms ({statistics.median(t) / step:.1%})"
             for kind, t in kind_times.items()]
    print(f"P4 model={args.model} step={step * 1000:.1f} ms; per step, both pictures: " + ", ".join(parts))


if __name__ == "__main__":
    main()
