"""Why a loop's first divergence happened: the classic mistakes of a hand-written sampling loop, by stable id.

Each check looks only at the quantity that differed first and at the loop's own inputs to it, and answers
a `Cause` (id + one line with the numbers) or None when the difference is not one it knows.
"""

from __future__ import annotations

from dataclasses import dataclass

CAUSES = {
    "init-noise-sigma-order": "the starting noise was scaled by init_noise_sigma read before set_timesteps",
    "missing-scale-model-input": "the UNet got x_t without scheduler.scale_model_input",
    "cfg-branches-swapped": "the uncond and text branches are exchanged in the guidance line",
    "cfg-formula": "the guidance line is not eps_uncond + s (eps_text - eps_uncond) for any s",
    "timesteps-mismatch": "the loop's timesteps or noise schedule are not the pipeline's",
    "clip-sample": "DDIM clipped x0-hat to [-1, 1] on latents (clip_sample=True)",
    "decode-scaling-factor": "vae.decode got latents not divided by vae.config.scaling_factor",
    "inpaint-blend-timestep": "the inpaint background was re-noised at t instead of the next t",
    "img2img-start": "img2img's starting latents were noised at a timestep that does not follow strength",
    "call-timestep": "pipe.unet or scheduler.step got another t than the step's timestep",
}
# the classic mistakes of a flow loop (SD3, FLUX.1): flow.py finds them
FLOW_CAUSES = {
    "flow-timestep-as-sigma": "the transformer got sigma where it reads t = 1000 sigma",
    "flow-timestep-times-1000": "the transformer got 1000 times the t its pipeline gives (FLUX.1: t = 1000 sigma "
                                "where it reads sigma; SD3: 1000 t, where scheduler.timesteps are already 1000 sigma)",
    "flow-shift-missing": "the schedule's sigmas are not shifted (shift 1 where the model's config says more)",
    "flow-shift-twice": "the schedule's sigmas were shifted twice (shifted sigmas given to a shifting scheduler)",
    "flow-decode-shift-factor": "vae.decode got latents / scaling_factor without + shift_factor",
    "flow-init-noise-sigma": "the starting noise was scaled (a VP/sigma scheduler's init_noise_sigma): the flow "
                             "path starts at x_T = eps",
}
SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "steps_offset",
                 "timestep_spacing", "prediction_type", "timestep_type", "rescale_betas_zero_snr", "clip_sample")


@dataclass(frozen=True)
class Cause:
    id: str
    explanation: str

    def __str__(self) -> str:
        return f"{self.id}: {self.explanation}"


def diagnose(quantity: str, index: int, user, reference, run, pipe, base_config) -> Cause | None:
    check = {
        "starting latents": _starting_latents,
        "timestep": _timestep,
        "scaled model input": _scaled_model_input,
        "guidance combination": _guidance,
        "scheduler output": _scheduler_output,
        "blend": _blend,
        "decode": _decode,
    }.get(quantity)
    return None if check is None else check(index, user, reference, run, pipe, base_config)


def _sigma(scheduler, t: float) -> float:
    from ..engine.schedulers import trained_noise_level

    return trained_noise_level(scheduler, t)[0]


def _schedule_differences(user_config, base_config) -> str | None:
    """Why the loop's schedule is not the pipeline's, in words (None when the schedule keys agree)."""
    found = [f"{key} {user_config.get(key)!r} vs {base_config.get(key)!r}" for key in SCHEDULE_KEYS
             if key in base_config and user_config.get(key) != base_config.get(key)]
    if not found:
        return None
    return f"the loop's scheduler was not built with from_config(pipe.scheduler.config): {', '.join(found)}"


def _starting_latents(index, user, reference, run, pipe, base_config):
    import torch

    if run.mode == "img2img":
        t_used = float(torch.as_tensor(user.start_add_noise["timesteps"]).flatten()[0])
        t_ref = float(torch.as_tensor(reference.start_add_noise["timesteps"]).flatten()[0])
        if t_used == t_ref:
            return None
        taken, total = len(user.steps), run.num_inference_steps
        return Cause("img2img-start", (
            f"the starting latents were noised to t={t_used:g} (sigma {_sigma(run.scheduler, t_used):.2f}) and the "
            f"loop's first step runs at t={user.steps[0].timestep:g}; {taken} of {total} steps is strength "
            f"{taken / total:.2f}, and the pipeline starts both at t={t_ref:g} "
            f"(timesteps[N - int(N * strength)] = timesteps[{total - taken}])"))
    if run.noise_scale is None:
        return None
    used = run.noise_scale
    after = float(reference.steps[0].latents.double().flatten().norm() / run.noise.double().flatten().norm())
    reasons = _schedule_differences(user.scheduler.config, base_config)
    if reasons:
        return Cause("timesteps-mismatch", (
            f"the starting noise was scaled by {used:.2f} instead of {after:.2f}: {reasons}"))
    before = float(type(user.scheduler).from_config(user.scheduler.config).init_noise_sigma)
    read_early = any(not after_set for _, after_set in user.init_noise_sigma_reads)
    if abs(used - before) <= 1e-3 * before and abs(before - after) > 1e-3 * after and (
            read_early or not user.init_noise_sigma_reads):
        return Cause("init-noise-sigma-order", (
            f"the starting noise was scaled by {used:.2f}, init_noise_sigma read before set_timesteps (the training "
            f"schedule's largest sigma, sqrt(sigma_max^2 + 1)), instead of {after:.2f}, its value after "
            f"set_timesteps({run.num_inference_steps}) (from the first inference sigma): call set_timesteps first"))
    return None


def _timestep(index, user, reference, run, pipe, base_config):
    step, t_ref = user.steps[index], reference.steps[index].timestep
    t_user, t_unet = step.timestep, step.unet_timestep
    if t_unet is not None and t_unet != t_user and t_ref in (t_user, t_unet):
        wrong, right = ("pipe.unet", "scheduler.step") if t_user == t_ref else ("scheduler.step", "pipe.unet")
        got = t_unet if wrong == "pipe.unet" else t_user
        hint = f" (the loop index i = {index}?)" if got == index else ""
        return Cause("call-timestep", f"at step {index} {wrong} got t={got:g}{hint} while {right} got t={t_ref:g}, "
                                      f"the step's timestep: give both calls the same t from scheduler.timesteps")
    reasons = _schedule_differences(user.scheduler.config, base_config)
    asked = user.set_timesteps.get(user.steps[0].scheduler_id, {}).get("num_inference_steps")
    why = reasons or (f"set_timesteps({asked}) while the loop ran {len(user.steps)} steps"
                      if asked and asked != run.num_inference_steps else "the loop does not walk scheduler.timesteps")
    return Cause("timesteps-mismatch", f"step {index} ran at t={t_user:g}, the pipeline's at t={t_ref:g} "
                                       f"({run.num_inference_steps} steps); {why}")


def _scaled_model_input(index, user, reference, run, pipe, base_config):
    import torch

    step, ref = user.steps[index], reference.steps[index]
    unscaled = torch.cat([step.latents] * (step.model_input.shape[0]))
    if torch.allclose(step.model_input, unscaled.to(step.model_input.dtype)):
        factor = float(ref.latents.double().norm() / ref.model_input[:1].double().norm())
        if abs(factor - 1.0) > 1e-4:
            return Cause("missing-scale-model-input", (
                f"the UNet got x_t as it is (std {float(step.model_input.std()):.2f}); at t={step.timestep:g} "
                f"scale_model_input divides it by sqrt(sigma^2 + 1) = {factor:.2f} (std "
                f"{float(ref.model_input.std()):.2f}){'' if step.scaled else '; the loop never called it'}"))
    return None


def _guidance(index, user, reference, run, pipe, base_config):
    from .reference import fit_guidance

    fit = fit_guidance(user.steps[index])
    if fit is None:
        return None
    if fit.swapped:
        return Cause("cfg-branches-swapped", (
            f"the loop computed eps_text + {fit.a:.4g} (eps_uncond - eps_text): the negative prompt's and the prompt's "
            f"predictions are exchanged (torch.cat order vs chunk(2) order), which is guidance {fit.b:.4g}, "
            f"not {fit.a:.4g}"))
    if not fit.is_cfg:
        return Cause("cfg-formula", (
            f"the loop's combination is {fit.a:.4g} eps_uncond + {fit.b:.4g} eps_text (weights sum to "
            f"{fit.a + fit.b:.4g}, fit residual {fit.residual:.2g}); eps_uncond + s (eps_text - eps_uncond) has "
            f"weights 1 - s and s, summing to 1"))
    return None


def _scheduler_output(index, user, reference, run, pipe, base_config):
    config = user.schedulers[user.steps[index].scheduler_id].config
    if config.get("clip_sample") and not run.scheduler.config.get("clip_sample"):
        x0 = reference.steps[index].pred_original_sample
        limit = config.get("clip_sample_range", 1.0)
        biggest = "" if x0 is None else f": x0-hat reached {float(x0.abs().max()):.2f} and was cut to {limit:g}"
        return Cause("clip-sample", (
            f"the loop's {type(user.scheduler).__name__} has clip_sample=True (a config without clip_sample "
            f"defaults to it), so it clips x0-hat to [-{limit:g}, {limit:g}]{biggest}; latents are not pixels, "
            f"and the pipeline's constructor turns clip_sample off"))
    reasons = _schedule_differences(config, base_config)
    if reasons:
        return Cause("timesteps-mismatch", reasons)
    return None


def _blend(index, user, reference, run, pipe, base_config):
    import torch

    step = user.steps[index]
    if not step.blends or index + 1 >= len(reference.steps):
        return None
    t_used = float(torch.as_tensor(step.blends[-1]["timesteps"]).flatten()[0])
    t_next = reference.steps[index + 1].timestep
    if t_used == t_next:
        return None
    own = " (the step's own t)" if t_used == step.timestep else ""
    return Cause("inpaint-blend-timestep", (
        f"the background was re-noised to t={t_used:g}{own}, sigma {_sigma(run.scheduler, t_used):.3f}, but the "
        f"latents this step returns sit at the next t={t_next:g}, sigma {_sigma(run.scheduler, t_next):.3f}: "
        f"add_noise(..., timesteps[i + 1])"))


def _decode(index, user, reference, run, pipe, base_config):
    import torch

    factor = float(pipe.vae.config.scaling_factor)
    expected = reference.final_latents
    if torch.allclose(user.decode_input.to(expected.dtype), expected, rtol=1e-4, atol=1e-5):
        return Cause("decode-scaling-factor", (
            f"vae.decode got the final latents as they are (std {float(user.decode_input.std()):.3f}) instead of "
            f"divided by vae.config.scaling_factor = {factor:g} (std {float(expected.std() / factor):.3f})"))
    return None
