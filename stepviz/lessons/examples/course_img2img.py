# The DIY img2img loop of the Hugging Face diffusion course, Unit 3: encode the starting picture with the VAE,
# let `strength` choose how much of the schedule to run, noise the picture's latents to the first timestep run,
# then the course's loop over the remaining timesteps. Adapted to stepviz's toy model: the model loading, the
# prompt, the picture (a toy scene instead of a download) and the latent size. The scheduler is LMS, as in the
# course; another can be named: lms (default), euler, ddim or pndm.
#
#     stepviz trace course-img2img            # or: stepviz trace course-img2img ddim --open
import sys

import numpy as np
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LMSDiscreteScheduler, PNDMScheduler

import stepviz
from stepviz.lessons.toy_scenes import draw_toy_picture

scheduler_classes = {"lms": LMSDiscreteScheduler, "euler": EulerDiscreteScheduler, "ddim": DDIMScheduler,
                     "pndm": PNDMScheduler}
if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1] not in scheduler_classes):
    raise SystemExit(f"course-img2img takes one scheduler name, lms (default), euler, ddim or pndm, not "
                     f"{' '.join(sys.argv[1:])!r}")
device = "cpu"
pipe = stepviz.load_pipeline("toy").to(device)
pipe.scheduler = scheduler_classes[sys.argv[1] if len(sys.argv) > 1 else "lms"].from_config(pipe.scheduler.config)
generator = torch.Generator(device=device).manual_seed(42)

init_image = draw_toy_picture("a red circle on a white background", seed=3)
prompt = "a blue square on a white background"
guidance_scale = 8
num_inference_steps = 30
strength = 0.6

# the picture as a tensor in [-1, 1], then its latents (scaled as the UNet was trained on them)
init_image_tensor = torch.from_numpy(np.array(init_image).transpose(2, 0, 1)).float() / 255.0
init_image_tensor = 2.0 * init_image_tensor - 1.0
init_image_tensor = init_image_tensor.unsqueeze(0).to(device)
with torch.no_grad():
    init_image_latents = pipe.vae.encode(init_image_tensor).latent_dist.sample(generator)
init_image_latents = init_image_latents * pipe.vae.config.scaling_factor

text_embeddings = pipe._encode_prompt(prompt, device, 1, True, "")

# strength: run only the last init_timestep of the num_inference_steps timesteps
pipe.scheduler.set_timesteps(num_inference_steps, device=device)
init_timestep = int(num_inference_steps * strength)
t_start = num_inference_steps - init_timestep
timesteps = pipe.scheduler.timesteps[t_start:]

noise = torch.randn(init_image_latents.shape, generator=generator, device=device)
latents = pipe.scheduler.add_noise(init_image_latents, noise, timesteps[:1])

for t in timesteps:
    latent_model_input = torch.cat([latents] * 2)
    latent_model_input = pipe.scheduler.scale_model_input(latent_model_input, t)
    with torch.no_grad():
        noise_pred = pipe.unet(latent_model_input, t, encoder_hidden_states=text_embeddings).sample
    noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
    noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
    latents = pipe.scheduler.step(noise_pred, t, latents).prev_sample

with torch.no_grad():
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
image = (image / 2 + 0.5).clamp(0, 1)
