"""P9: the cost of capturing cross-attention maps: Stepper.run() with capture_attention=True / without.

    python bench/p9_attention.py --model toy --steps 25 --repeats 9
    python bench/p9_attention.py --model large --size 64 --steps 4 --repeats 3    (SD 1.x widths, random weights)
    python bench/p9_attention.py --model large --size 256 --steps 1 --repeats 3   (32x32 latents)

Prints the median seconds of each (CPU seconds of this process by default: other jobs on the machine
do not count), their ratio (target: <= 1.15) and the memory the maps add per step
(what each StepRecord keeps; capture_attention="layers" adds the per-layer maps).
"""

from __future__ import annotations

import time

import torch
from common import interleaved, model_pipeline, run_options


def main() -> None:
    parser = run_options(steps=25)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: stable timings)")
    parser.add_argument("--clock", default="cpu", choices=("cpu", "wall"),
                        help="cpu: this process's CPU seconds (default: steady on a shared machine); wall: elapsed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import stepviz

    pipe = model_pipeline(args.model)
    size = dict(height=args.size, width=args.size) if args.size else {}

    def run(capture):
        st = stepviz.Stepper(pipe, prompt="a red circle on a black background", seed=0,
                             num_inference_steps=args.steps, scheduler=args.scheduler, capture_attention=capture,
                             **size)
        return st.run()

    with torch.no_grad():
        run(False), run(True)  # warm-up
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        medians = interleaved({"off": lambda: run(False), "on": lambda: run(True)}, args.repeats, clock)
        record, layered = run(True)[0], run("layers")[0]
    maps = record.cross_attention
    per_step = maps.numel() * maps.element_size()
    layers = sum(m.numel() * m.element_size() for m in layered.cross_attention_layers.values())
    print(f"P9 model={args.model} steps={args.steps} size={args.size or 'default'} threads={args.threads} "
          f"clock={args.clock} "
          f"off={medians['off']:.3f}s on={medians['on']:.3f}s ratio={medians['on'] / medians['off']:.3f}")
    print(f"   maps {list(maps.shape)} float32: {per_step / 1024:.1f} KiB per step; with per-layer maps "
          f"(capture_attention='layers', {len(layered.cross_attention_layers)} layers) "
          f"+{layers / 1024:.1f} KiB per step")


if __name__ == "__main__":
    main()
