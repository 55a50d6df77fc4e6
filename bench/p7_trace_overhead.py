"""P7: a hand-written loop under `stepviz.trace` / the same loop without it (the recording's cost, not compare()).

    python bench/p7_trace_overhead.py --model toy --steps 30 --repeats 7
    python bench/p7_trace_overhead.py --model large --steps 10 --repeats 3    (SD widths, random weights)

The loop is the course's (Hugging Face diffusion course, Unit 3), with LMS. Prints the median seconds of each
and their ratio (target: <= 1.05).
"""

from __future__ import annotations

import argparse

import torch
from common import model_pipeline, timed_pair


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="toy")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: stable timings)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import stepviz
    from diffusers import LMSDiscreteScheduler

    pipe = model_pipeline(args.model)
    pipe.scheduler = LMSDiscreteScheduler.from_config(pipe.scheduler.config)
    embeddings = pipe._encode_prompt("a red circle on a black background", "cpu", 1, True, "")
    size = pipe.unet.config.sample_size

    def course_loop():
        generator = torch.Generator().manual_seed(42)
        latents = torch.randn((1, 4, size, size), generator=generator)
        latents *= pipe.scheduler.init_noise_sigma
        pipe.scheduler.set_timesteps(args.steps)
        for t in pipe.scheduler.timesteps:
            latent_model_input = pipe.scheduler.scale_model_input(torch.cat([latents] * 2), t)
            noise_pred = pipe.unet(latent_model_input, t, encoder_hidden_states=embeddings).sample
            noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
            noise_pred = noise_pred_uncond + 8 * (noise_pred_text - noise_pred_uncond)
            latents = pipe.scheduler.step(noise_pred, t, latents).prev_sample
        return pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample

    def traced():
        with stepviz.trace(pipe):
            course_loop()

    timed_pair("P7", {"plain": course_loop, "traced": traced}, args.repeats,
               f"model={args.model} steps={args.steps} threads={args.threads}")


if __name__ == "__main__":
    main()
