# The DIY sampling loop of the Hugging Face diffusion course, Unit 3, as the course prints it.
# Adapted to stepviz's toy model: the model loading, the prompt and the latent size (8x8 for 64x64 pictures).
# The course swaps in LMS (`LMSDiscreteScheduler.from_config`) before this loop; another scheduler can be named
# on the command line: lms (default), euler, ddim or pndm.
#
#     stepviz trace course-loop            # or: stepviz trace course-loop euler --open
import sys

import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LMSDiscreteScheduler, PNDMScheduler

import stepviz

device = "cpu"
pipe = stepviz.load_pipeline("toy").to(device)
scheduler_classes = {"lms": LMSDiscreteScheduler, "euler": EulerDiscreteScheduler, "ddim": DDIMScheduler,
                     "pndm": PNDMScheduler}
if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1] not in scheduler_classes):
    raise SystemExit(f"course-loop takes one scheduler name, lms (default), euler, ddim or pndm, not "
                     f"{' '.join(sys.argv[1:])!r}")
scheduler_class = scheduler_classes[sys.argv[1] if len(sys.argv) > 1 else "lms"]
pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
generator = torch.Generator(device=device).manual_seed(42)

guidance_scale = 8
num_inference_steps = 30
prompt = "a red circle on a black background"
negative_prompt = ""

text_embeddings = pipe._encode_prompt(prompt, device, 1, True, negative_prompt)

latents = torch.randn((1, 4, 8, 8), device=device, generator=generator)
latents *= pipe.scheduler.init_noise_sigma

pipe.scheduler.set_timesteps(num_inference_steps, device=device)

for i, t in enumerate(pipe.scheduler.timesteps):  # noqa: B007 (as the course prints it)
    latent_model_input = torch.cat([latents] * 2)
    latent_model_input = pipe.scheduler.scale_model_input(latent_model_input, t)

    with torch.no_grad():
        noise_pred = pipe.unet(
            latent_model_input, t, encoder_hidden_states=text_embeddings
        ).sample

    noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
    noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)

    latents = pipe.scheduler.step(noise_pred, t, latents).prev_sample

with torch.no_grad():
    image = pipe.decode_latents(latents.detach())
pil = pipe.numpy_to_pil(image)[0]
