"""P3: time to rewind to the first step after 50 steps (target <= 50 ms).

    python bench/p3_rewind.py --model toy --steps 50
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
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--scheduler", default="dpmpp_2m")
    parser.add_argument("--size", type=int, default=None)
    args = parser.parse_args()
    import stepviz

    pipe = model_pipeline(args.model)
    size = dict(height=args.size, width=args.size) if args.size else {}
    st = stepviz.Stepper(pipe, prompt="a red circle on a black background", seed=0, num_inference_steps=args.steps,
                         scheduler=args.scheduler, **size)
    with torch.no_grad():
        st.run()
    snapshots = list(st._snapshots)
    records = list(st.records)
    times = []
    for _ in range(7):
        st._snapshots, st.records = list(snapshots), list(records)  # back at step 50 without re-running
        started = time.perf_counter()
        st.rewind(1)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"P3 model={args.model} scheduler={args.scheduler} rewind 50 -> 1: {median * 1000:.2f} ms "
          f"(target 50 ms, ratio {median / 0.050:.3f})")


if __name__ == "__main__":
    main()
