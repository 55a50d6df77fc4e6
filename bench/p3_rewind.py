"""P3: time to rewind to the first step after 50 steps (target <= 50 ms).

    python bench/p3_rewind.py --model toy --steps 50
"""

from __future__ import annotations

import statistics
import time

from common import finished_run, run_options


def main() -> None:
    args = run_options(steps=50, scheduler="dpmpp_2m").parse_args()
    _, st = finished_run(args)
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
