"""Hand-written sampling loops for the trace tests: a correct one per mode, and the classic mistakes on demand.

`mistake` names the cause id the loop commits (None: a correct loop, the way diffusers' pipelines run).
"""

from __future__ import annotations

import inspect

import diffusers
import torch

from stepviz.engine.schedulers import SCHEDULERS


def scheduler_for(pipe, name: str, mistake: str | None = None):
    cls = getattr(diffusers, SCHEDULERS[name].class_name)
    if mistake == "timesteps-mismatch":
        return cls()  # not from_config: the library's default schedule
    config = dict(pipe.scheduler.config)
    if mistake == "clip-sample":
        config.pop("clip_sample")  # DDIM's default is clip_sample=True
    return cls.from_config(config)


def encode(pipe, prompt: str, negative_prompt: str = ""):
    return pipe._encode_prompt(prompt, "cpu", 1, True, negative_prompt)  # [negative, prompt], as the course


def denoise(pipe, scheduler, latents, embeddings, timesteps, guidance_scale, mistake=None, generator=None,
            blend=None):
    """The course's loop body; `blend` = (image_latents, mask, noise) for the DIY inpaint loop."""
    for i, t in enumerate(timesteps):
        latent_model_input = torch.cat([latents] * 2)
        if mistake != "missing-scale-model-input":
            latent_model_input = scheduler.scale_model_input(latent_model_input, t)
        t_unet = i if mistake in ("unet-given-i", "call-timestep") else t
        with torch.no_grad():
            noise_pred = pipe.unet(latent_model_input, t_unet, encoder_hidden_states=embeddings).sample
        if mistake == "cfg-branches-swapped":
            noise_pred_text, noise_pred_uncond = noise_pred.chunk(2)
        else:
            noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
        if mistake == "cfg-formula":
            noise_pred = noise_pred_uncond + guidance_scale * noise_pred_text
        else:
            noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
        kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        t_step = timesteps[min(i + 1, len(timesteps) - 1)] if mistake == "step-given-next-t" else t
        latents = scheduler.step(noise_pred, t_step, latents, **kwargs).prev_sample
        if blend is not None:
            image_latents, mask, noise = blend
            if i < len(timesteps) - 1:
                t_noise = t if mistake == "inpaint-blend-timestep" else timesteps[i + 1]
                if noise is None:  # the course's loop: fresh noise at every step
                    noise = torch.randn(image_latents.shape, generator=generator)
                background = scheduler.add_noise(image_latents, noise, torch.tensor([t_noise]))
            elif noise is None:  # the course's loop blends only while i < len(timesteps) - 1
                continue
            else:
                background = image_latents
            latents = latents * mask + background * (1 - mask)
            noise = blend[2]
    return latents


def decode(pipe, latents, mistake=None):
    with torch.no_grad():
        if mistake == "decode-scaling-factor":
            return pipe.vae.decode(latents).sample
        return pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample


def txt2img_loop(pipe, scheduler_name="ddim", mistake=None, steps=4, guidance_scale=7.5, seed=0, size=4):
    """A txt2img DIY loop; returns (final latents, decoded pixels)."""
    scheduler = scheduler_for(pipe, scheduler_name, mistake)
    generator = torch.Generator().manual_seed(seed)
    embeddings = encode(pipe, "a red circle on a black background")
    latents = torch.randn((1, 4, size, size), generator=generator)
    if mistake == "init-noise-sigma-order":
        latents = latents * scheduler.init_noise_sigma
        scheduler.set_timesteps(steps)
    else:
        scheduler.set_timesteps(steps)
        latents = latents * scheduler.init_noise_sigma
    latents = denoise(pipe, scheduler, latents, embeddings, scheduler.timesteps, guidance_scale, mistake, generator)
    return latents, decode(pipe, latents, mistake)


def image_latents_of(pipe, size=4, seed=3):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((1, 4, size, size), generator=generator) * 0.8


def img2img_loop(pipe, scheduler_name="ddim", mistake=None, steps=6, strength=0.5, guidance_scale=7.5, seed=0):
    """The course's DIY img2img: t_start from strength, noise the image latents to the first loop timestep."""
    scheduler = scheduler_for(pipe, scheduler_name)
    generator = torch.Generator().manual_seed(seed)
    embeddings = encode(pipe, "a red circle on a black background")
    image_latents = image_latents_of(pipe)
    scheduler.set_timesteps(steps)
    init_timestep = int(steps * strength)
    t_start = steps - init_timestep
    timesteps = scheduler.timesteps[t_start:]
    noise = torch.randn(image_latents.shape, generator=generator)
    start_t = scheduler.timesteps[t_start - 1] if mistake == "img2img-start" else timesteps[0]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start)
    latents = scheduler.add_noise(image_latents, noise, torch.tensor([start_t]))
    latents = denoise(pipe, scheduler, latents, embeddings, timesteps, guidance_scale, mistake, generator)
    return latents, decode(pipe, latents)


def inpaint_loop(pipe, scheduler_name="ddim", mistake=None, steps=5, guidance_scale=7.5, seed=0, course=False):
    """The DIY inpaint loop with diffusers' blend: re-noise the original to the next t; the clean original last.

    course=True: the course's variant, fresh noise for each blend and no blend at the last step.
    """
    scheduler = scheduler_for(pipe, scheduler_name)
    generator = torch.Generator().manual_seed(seed)
    embeddings = encode(pipe, "a red circle on a black background")
    image_latents = image_latents_of(pipe)
    mask = torch.zeros((1, 1, 4, 4))
    mask[..., :2, 2:] = 1.0
    scheduler.set_timesteps(steps)
    noise = torch.randn(image_latents.shape, generator=generator)
    latents = noise * scheduler.init_noise_sigma
    latents = denoise(pipe, scheduler, latents, embeddings, scheduler.timesteps, guidance_scale, mistake, generator,
                      blend=(image_latents, mask, None if course else noise))
    return latents, decode(pipe, latents)
