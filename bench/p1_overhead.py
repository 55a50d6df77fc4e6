"""P1: Stepper.run() with full records / diffusers' pipeline(...) on the same model, steps and seed.

    python bench/p1_overhead.py --model toy --steps 25 --repeats 5
    python bench/p1_overhead.py --model large --steps 10 --repeats 3    (SD widths, random weights)

Prints the median seconds of each and their ratio (target: <= 1.10 toy, <= 1.02 large).
"""

from __future__ import annotations

import argparse

import torch
from common import model_pipeline, timed_pair


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="toy")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--size", type=int, default=None, help="height = width in pixels")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both (default 1: stable timings)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import stepviz
    from stepviz.engine.schedulers import make_scheduler

    pipe = model_pipeline(args.model).to(args.device, getattr(torch, args.dtype))
    pipe.scheduler = make_scheduler(args.scheduler, pipe.scheduler.config)
    prompt = "a red circle on a black background"
    size = dict(height=args.size, width=args.size) if args.size else {}

    def with_diffusers():
        generator = torch.Generator("cpu").manual_seed(0)  # as the Stepper draws its seeded noise
        pipe(prompt=prompt, num_inference_steps=args.steps, generator=generator, output_type="latent", **size)

    def with_stepviz():
        st = stepviz.Stepper(pipe, prompt=prompt, seed=0, num_inference_steps=args.steps,
                             scheduler=args.scheduler, **size)
        st.run()
        if args.device != "cpu":
            torch.cuda.synchronize()

    timed_pair("P1", {"diffusers": with_diffusers, "stepviz": with_stepviz}, args.repeats,
               f"model={args.model} steps={args.steps} device={args.device} dtype={args.dtype} threads={args.threads}")

if __name__ == "__main__":
    main()
