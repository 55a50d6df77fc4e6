"""The trace report as text: what was inferred, a table step by step, and the verdict."""

from __future__ import annotations

import math


def _num(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    if value == 0:
        return "0"
    return f"{value:.2e}"


def report_text(report) -> str:
    run, user, first = report.run, report.user, report.first_divergence
    scheduler = type(user.scheduler).__name__
    embeds = list(run.embeds_text.shape)
    mode = run.mode if run.mask is None else f"{run.mode} with the DIY inpaint blend"
    lines = [
        f"stepviz trace: {len(user.steps)} steps of {scheduler}, compared with the pipeline's loop (stepviz Stepper)",
        f"  inferred: {mode}, num_inference_steps={run.num_inference_steps}, guidance_scale={run.guidance_scale:g}"
        + (f", strength={len(user.steps) / run.num_inference_steps:.2f}" if run.mode == "img2img" else ""),
        f"  prompt embeddings {embeds} per branch; starting noise: {run.noise_source or 'as drawn'}",
        *(["  the loop runs the prompt's branch alone (no CFG): compared with the pipeline's run without guidance "
           "(diffusers at guidance_scale <= 1)"] if user.steps and user.steps[0].eps_uncond is None else []),
        "",
        "  step         t   pipeline t   |model input diff|   |eps_hat diff|   |latents diff|",
    ]
    for step, t_user, t_ref, d_input, d_eps, d_latents in report.rows:
        mark = "  <- first divergence" if first is not None and first.step == step else ""
        lines.append(f"  {step:>4} {t_user:>9} {t_ref:>12g}   {_num(d_input):>18}   {_num(d_eps):>14}   "
                     f"{_num(d_latents):>14}{mark}")
    if any("|" in row[1] for row in report.rows):
        lines.append("  (t as unet|step: the loop gave pipe.unet and scheduler.step different timesteps)")
    lines.append("")
    if report.final_difference is not None:
        lines.append(f"  final latents: max abs difference {report.final_difference:.3g}")
    unseeded = [step.index for step in user.steps if step.unseeded_draw]
    if unseeded:
        lines.append(f"  note: scheduler.step drew random noise without generator= at {len(unseeded)} of "
                     f"{len(user.steps)} steps, from torch's global generator: this run cannot be reproduced from "
                     f"a seed; pass generator=torch.Generator().manual_seed(seed) to step()")
    if first is None:
        lines.append("verdict: the loop matches the pipeline (every quantity within float rounding)")
        return "\n".join(lines)
    lines += [
        f"verdict: first divergence at step {first.step}, {first.quantity}",
        f"  measured (the loop):     {first.measured}",
        f"  expected (the pipeline): {first.expected}",
        f"  cause: {first.cause}" if first.cause is not None else
        "  cause: not one stepviz recognises (see the table: where the differences start)",
    ]
    if first.cause is None and first.quantity == "blend" and first.step == len(user.steps) - 1:
        lines.append("  note: at the last step diffusers' inpaint pipeline blends with the clean image latents "
                     "(the course's loop skips the blend there)")
    return "\n".join(lines)
