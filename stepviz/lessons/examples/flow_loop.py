# A flow-matching sampling loop written by hand, as a learner writes SD3's (StableDiffusion3Pipeline's loop),
# on stepviz's toy flow model. No scale_model_input, no init_noise_sigma: x_T is the noise itself, the
# transformer reads t = 1000 sigma and predicts the velocity v = eps - x0, the scheduler steps
# x_{t-1} = x_t + (sigma_next - sigma) v, and the decode adds the VAE's shift_factor.
#
#     stepviz trace flow-loop                      # the loop as the pipeline runs it: no divergence
#     stepviz trace flow-loop shift-missing        # ... or with one of the classic flow mistakes:
#
#   timestep-as-sigma    the transformer gets sigma (t / 1000) where it reads t = 1000 sigma
#   timestep-times-1000  the transformer gets 1000 t (scheduler.timesteps are already 1000 sigma)
#   shift-missing        the sigmas given to the scheduler are the even ones, not shifted (shift 1, not 3)
#   shift-twice          shifted sigmas given to a scheduler that shifts them again
#   init-noise-sigma     the starting noise multiplied by init_noise_sigma, as in an SD loop
#   no-shift-factor      the decode without + shift_factor (the toy flow model's shift_factor is 0: no difference
#                        on it; SD3's is 0.0609)
import sys

import numpy as np
import torch

import stepviz

MISTAKES = ("timestep-as-sigma", "timestep-times-1000", "shift-missing", "shift-twice", "init-noise-sigma",
            "no-shift-factor")
if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1] not in MISTAKES):
    raise SystemExit(f"flow-loop takes nothing or one mistake ({', '.join(MISTAKES)}), not "
                     f"{' '.join(sys.argv[1:])!r}")
mistake = sys.argv[1] if len(sys.argv) == 2 else None

device = "cpu"
pipe = stepviz.load_pipeline("toy-flow").to(device)
generator = torch.Generator(device=device).manual_seed(42)

guidance_scale = 7.0
num_inference_steps = 20
prompt = "a red circle on a black background"
negative_prompt = ""

# 1. the prompt: both CLIP encoders (and T5 where the model has one), pooled vectors; CFG order [negative, prompt]
prompt_embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
    prompt, None, None, negative_prompt=negative_prompt, do_classifier_free_guidance=True, device=device)
prompt_embeds = torch.cat([negative_embeds, prompt_embeds])
pooled = torch.cat([negative_pooled, pooled])

# 2. the schedule: the scheduler shifts its own even sigmas by its config's shift (3.0)
scheduler = pipe.scheduler
shift = scheduler.config.shift
even = np.linspace(1.0, 1.0 / num_inference_steps, num_inference_steps)
if mistake == "shift-missing":  # the even sigmas, and the shift switched off
    scheduler.set_shift(1.0)
    scheduler.set_timesteps(sigmas=even, device=device)
elif mistake == "shift-twice":  # shifted by hand, then shifted again by the scheduler
    scheduler.set_timesteps(sigmas=shift * even / (1 + (shift - 1) * even), device=device)
else:
    scheduler.set_timesteps(num_inference_steps, device=device)

# 3. the starting noise x_T = eps (a flow path starts at pure noise)
size = pipe.transformer.config.sample_size
latents = torch.randn((1, pipe.transformer.config.in_channels, size, size), generator=generator, device=device)
if mistake == "init-noise-sigma":
    latents = latents * 14.6146  # an SD scheduler's init_noise_sigma (EulerDiscreteScheduler, SD's config)

# 4. the loop: the transformer reads t = 1000 sigma (scheduler.timesteps), CFG on v, one Euler step
for t in scheduler.timesteps:
    model_t = {"timestep-as-sigma": t / 1000, "timestep-times-1000": t * 1000}.get(mistake, t)
    with torch.no_grad():
        v = pipe.transformer(hidden_states=torch.cat([latents] * 2), timestep=model_t.expand(2),
                             encoder_hidden_states=prompt_embeds, pooled_projections=pooled, return_dict=False)[0]
    v_uncond, v_text = v.chunk(2)
    v = v_uncond + guidance_scale * (v_text - v_uncond)
    latents = scheduler.step(v, t, latents, return_dict=False)[0]

# 5. decode: latents / scaling_factor + shift_factor
vae = pipe.vae.config
z = latents / vae.scaling_factor + (0.0 if mistake == "no-shift-factor" else vae.shift_factor)
with torch.no_grad():
    image = pipe.vae.decode(z, return_dict=False)[0]
pil = pipe.image_processor.postprocess(image)[0]
