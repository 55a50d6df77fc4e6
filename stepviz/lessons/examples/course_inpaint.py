# The DIY inpainting loop of the Hugging Face diffusion course, Unit 3: the course's loop, and after every
# step but the last, the original picture's latents re-noised to the next timestep replace everything
# outside the mask. Adapted to stepviz's toy model: the model loading, the prompt, the picture and mask (a toy
# scene and a hole around its shape, in whole latent cells) and the latent size. The scheduler is LMS, as in
# the course; another can be named: lms (default), euler, ddim or pndm.
#
#     stepviz trace course-inpaint            # or: stepviz trace course-inpaint ddim --open
import sys

import numpy as np
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LMSDiscreteScheduler, PNDMScheduler

import stepviz
from stepviz.lessons.toy_scenes import draw_toy_picture

scheduler_classes = {"lms": LMSDiscreteScheduler, "euler": EulerDiscreteScheduler, "ddim": DDIMScheduler,
                     "pndm": PNDMScheduler}
if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1] not in scheduler_classes):
    raise SystemExit(f"course-inpaint takes one scheduler name, lms (default), euler, ddim or pndm, not "
                     f"{' '.join(sys.argv[1:])!r}")
device = "cpu"
pipe = stepviz.load_pipeline("toy").to(device)
pipe.scheduler = scheduler_classes[sys.argv[1] if len(sys.argv) > 1 else "lms"].from_config(pipe.scheduler.config)
generator = torch.Generator(device=device).manual_seed(42)

init_image = draw_toy_picture("a red circle on a white background", seed=3)
mask_image = draw_toy_picture("a red circle on a white background", seed=3, layer="box")  # white: repaint
prompt = "a blue square on a white background"
guidance_scale = 8
num_inference_steps = 30

init_image_tensor = torch.from_numpy(np.array(init_image).transpose(2, 0, 1)).float() / 255.0
init_image_tensor = 2.0 * init_image_tensor - 1.0
init_image_tensor = init_image_tensor.unsqueeze(0).to(device)
with torch.no_grad():
    init_image_latents = pipe.vae.encode(init_image_tensor).latent_dist.sample(generator)
init_image_latents = init_image_latents * pipe.vae.config.scaling_factor

# the mask at latent size (one value per 8x8 pixels), 1 where the picture is repainted
mask = torch.from_numpy(np.array(mask_image.resize((8, 8)))).float()[None, None] / 255.0
mask_image_latent_size = (mask > 0.5).float().to(device)

text_embeddings = pipe._encode_prompt(prompt, device, 1, True, "")

pipe.scheduler.set_timesteps(num_inference_steps, device=device)
latents = torch.randn(init_image_latents.shape, generator=generator, device=device)
latents = latents * pipe.scheduler.init_noise_sigma

for i, t in enumerate(pipe.scheduler.timesteps):
    latent_model_input = torch.cat([latents] * 2)
    latent_model_input = pipe.scheduler.scale_model_input(latent_model_input, t)
    with torch.no_grad():
        noise_pred = pipe.unet(latent_model_input, t, encoder_hidden_states=text_embeddings).sample
    noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
    noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
    latents = pipe.scheduler.step(noise_pred, t, latents).prev_sample

    if i < len(pipe.scheduler.timesteps) - 1:
        noise = torch.randn(init_image_latents.shape, generator=generator, device=device, dtype=torch.float32)
        background = pipe.scheduler.add_noise(
            init_image_latents, noise, torch.tensor([pipe.scheduler.timesteps[i + 1]])
        )
        latents = latents * mask_image_latent_size
        background = background * (1 - mask_image_latent_size)
        latents += background

latents_norm = latents / pipe.vae.config.scaling_factor
with torch.no_grad():
    inpainted = pipe.vae.decode(latents_norm).sample
inpainted = (inpainted / 2 + 0.5).clamp(0, 1)
