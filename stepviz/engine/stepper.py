"""The DIY sampling loop of the Hugging Face diffusion course (Unit 3), one scheduler step per call.

Notation (Ho et al. 2020; Song et al. 2021 (DDIM); Karras et al. 2022; Ho & Salimans 2022):

    x_t         latents at timestep t                      -> latents
    eps_uncond  noise predicted for the negative prompt     -> noise_pred_uncond
    eps_text    noise predicted for the prompt              -> noise_pred_text
    s           guidance scale                              -> guidance_scale
    eps_hat     eps_uncond + s (eps_text - eps_uncond)      -> noise_pred
                (eps_text alone where diffusers skips CFG: s <= 1, or an LCM UNet that embeds s)
    abar_t      cumulative product of (1 - beta)            -> alpha_cumprod
    sigma_t     sqrt((1 - abar_t) / abar_t)                 -> sigma
    x0_hat      predicted clean latents at step t           -> pred_original_sample
    m           mask at latent size, 1 = repaint            -> mask

Run without edits, the loop gives the same bits as diffusers' StableDiffusion(Img2Img|Inpaint)Pipeline.
"""

from __future__ import annotations

import inspect
import time

import torch
from diffusers.utils.torch_utils import randn_tensor

from . import (attention, checks, conditioning, constructor_fixes, defaults, families, guidance, memory, modes,
               prediction, schedulers)
from .errors import NonFiniteError, RunFinishedError
from .flow_stepper import FlowLoop
from .records import StepRecord
from .run_edits import RunEdits
from .vae import vae_upcast


class Stepper(RunEdits):
    """The course's loop, one scheduler step per `step()`; edits mid-run (guidance, scheduler swap, rewind,
    fork) are in run_edits.py. An SD3 or FLUX.1 pipeline gets the flow loop (flow_stepper.py)."""

    def __new__(cls, pipe=None, *args, **kwargs):
        if cls is Stepper and families.is_flow_class(type(pipe).__name__):
            return super().__new__(FlowStepper)
        return super().__new__(cls)

    def __init__(self, pipe, prompt: str = "", negative_prompt: str | None = None, seed: int | None = defaults.SEED,
                 num_inference_steps: int = defaults.NUM_INFERENCE_STEPS,
                 guidance_scale: float | None = None, scheduler=None,
                 height: int | None = None, width: int | None = None, mode: str = "txt2img",
                 image=None, mask_image=None, depth_map=None, strength: float | None = None,
                 inpaint_noise: str = "fixed", latents=None, prompt_embeds=None, negative_prompt_embeds=None,
                 generator_device="cpu", capture_attention: bool | str = False):
        """guidance_scale: None is the model's pipeline's default (SD 7.5, SDXL 5.0: engine/defaults.py).

        scheduler: None runs the pipeline's own (a fresh copy of the config it runs with), as pipe() would; a
        stepviz name builds one from its config as the mode's diffusers pipeline would (constructor_fixes.py);
        or a diffusers scheduler instance, used as given.

        generator_device: where the seeded torch.Generator lives. "cpu" (the default) draws the same noise on
        every device, as diffusers does when given generator=torch.Generator("cpu"); None: the run's device.

        capture_attention: True records each step's cross-attention maps (StepRecord.cross_attention, see
        engine/attention.py); "layers" also each layer's own map.
        """
        checks.check_run(height=height, width=width, steps=num_inference_steps, guidance_scale=guidance_scale,
                         strength=strength, seed=seed, mode=mode, inpaint_noise=inpaint_noise, image=image,
                         mask_image=mask_image, depth_map=depth_map)
        checks.check_prompts(prompt, negative_prompt, prompt_embeds)
        checks.check_pipeline(type(pipe).__name__, families.PIPELINE_CLASSES)
        self.sdxl = families.is_sdxl(pipe)
        checks.check_mode(mode, pipe.unet.config.in_channels, sdxl=self.sdxl)
        checks.check_steps_fit(num_inference_steps, pipe.scheduler.config.num_train_timesteps)
        checks.check_scheduler_argument(scheduler, schedulers.SCHEDULERS)
        if mode in ("img2img", "depth2img"):
            image = checks.load_image("image", image, mode)
        memory.check_pipeline_run(pipe, mode, height, width, image, num_inference_steps)
        checks.check_capture_attention(capture_attention)
        self.capture_attention = capture_attention
        self._set_run_fields(pipe, mode, prompt, negative_prompt, seed, num_inference_steps, inpaint_noise,
                             generator_device)
        # None: the default of the model family's pipeline (defaults.py)
        self.guidance_scale = checks.check_guidance(defaults.guidance_scale_for(self.sdxl) if guidance_scale is None
                                                    else guidance_scale)
        self.dtype = pipe.unet.dtype
        # the diffusers pipeline that runs this mode: its constructor's fixes to the scheduler config apply
        self._pipeline_class = constructor_fixes.pipeline_class_for(pipe, mode)
        self.scheduler = schedulers.scheduler_for(pipe, mode, scheduler)
        self.scheduler_name = scheduler if isinstance(scheduler, str) else schedulers.info_for(self.scheduler).name

        # Text conditioning, always both branches so the guidance scale can cross 1.0 later.
        # Given embeddings (diffusers' prompt_embeds / negative_prompt_embeds) are used as they are.
        with torch.no_grad():  # SD: one text encoder; SDXL: two and a pooled embedding (engine/conditioning.py)
            self.conditioning = conditioning.text_conditioning(pipe, prompt, negative_prompt, self.device,
                                                       prompt_embeds, negative_prompt_embeds)
        self.prompt_embeds = self.conditioning.prompt_embeds
        if not self._finite(self.prompt_embeds, self.conditioning.text_embeds):
            self._setup_nonfinite = "text_encoder"
        self._read_prompts(pipe.tokenizer or pipe.tokenizer_2)

        with torch.no_grad():
            run = modes.prepare(pipe, self.scheduler, mode, num_inference_steps=num_inference_steps,
                                height=height, width=width, dtype=self.prompt_embeds.dtype, device=self.device,
                                generator=self.generator, image=image, mask_image=mask_image,
                                strength=strength, depth_map=depth_map, noise=latents)
        if run.notice:
            self.notices.append(run.notice)
        if self.sdxl:  # SDXL's size conditioning: the picture's own size, no crop
            conditioning.add_time_ids(pipe, self.conditioning, run.height, run.width, self.device)
        if not self._finite(run.image_latents, run.masked_image_latents):
            self._setup_nonfinite = self._setup_nonfinite or "vae_encode"
        self._start_from(run, schedulers.first_order_grid(run.timesteps))

    # ---------------------------------------------------------------- state
    @property
    def done(self) -> bool:
        return self._loop_index >= len(self.timesteps) or self.stopped is not None

    @property
    def total_steps(self) -> int:
        """Steps taken plus steps left on the current scheduler (changes when a swap changes order)."""
        return len(self.records) + len(self.timesteps) - self._loop_index

    @property
    def scheduler_info(self) -> schedulers.SchedulerInfo:
        return schedulers.info_for(self.scheduler)

    @property
    def prediction_type(self) -> str:
        """What the UNet predicts (engine/prediction.py): "epsilon", "v_prediction" or "sample"."""
        return self.scheduler.config.get("prediction_type", "epsilon")

    @property
    def history_fill(self):
        return schedulers.history_fill(self.scheduler)

    @property
    def extra_channels(self) -> dict[str, torch.Tensor]:
        """The UNet's inputs besides x_t, fixed for the whole run (step 2b); empty for a 4-channel UNet.

        Inpainting model: the mask m and E(masked image); Depth2Img: the depth map. All at latent size.
        """
        run = self.run_inputs
        if self.mode == "inpaint" and self.pipe.unet.config.in_channels == 9:
            return {"mask": run.mask, "masked_image_latents": run.masked_image_latents}
        if self.mode == "depth2img":
            return {"depth": run.depth}
        return {}

    # ------------------------------------------------------- what a front end shows (run/shown_run.py)
    @property
    def added_conditioning(self) -> str | None:
        """SDXL's pooled embedding and add_time_ids in one line, for the prompt panel (None for SD)."""
        return self.conditioning.describe()

    @property
    def strength(self) -> float | None:
        """The strength the run started at (img2img, inpaint), as it ran; None for txt2img."""
        return getattr(self.run_inputs, "strength", None)

    sharing: str | None = None  # a shared engine's session says how its results relate to a solo run
    schedule_shift: float | None = None  # the flow family's shift of its schedule (FlowLoop's); VP/sigma have none

    def start_on_vp_scale(self) -> torch.Tensor:
        """The run's starting latents on the VP scale, at its first step's noise level (engine/schedulers.py)."""
        return schedulers.start_on_vp_scale(self)

    @staticmethod
    def _finite(*tensors) -> bool:
        """The NaN/Inf watchdog's check: True while every given tensor is finite."""
        return all(tensor is None or bool(torch.isfinite(tensor).all()) for tensor in tensors)

    # ---------------------------------------------------------------- the loop
    @torch.no_grad()
    def step(self) -> StepRecord:
        """One iteration of the course's loop: x_t -> x_{t-1}, recorded."""
        self._check_can_step()
        started = time.perf_counter()
        pipe, sched, x_t = self.pipe, self.scheduler, self.latents
        t = self.timesteps[self._loop_index]
        family = schedulers.info_for(sched).family
        prediction_type = self.prediction_type  # eps, v or x0: what the UNet gives
        sigma, abar = self._noise_level_at(self._loop_index)
        s = self.guidance_scale
        nonfinite = self._setup_nonfinite

        # 1. latent_model_input = [x_t, x_t]: uncond first, then text
        latent_model_input = torch.cat([x_t] * 2)
        # 2. scale_model_input: sigma family divides by sqrt(sigma^2 + 1), VP family leaves it
        latent_model_input = sched.scale_model_input(latent_model_input, t)
        # 2b. extra conditioning channels, appended in order: inpainting model [m, E(masked image)], Depth2Img [depth]
        extra = self.extra_channels
        latent_model_input = self._with_extra_channels(latent_model_input, extra)
        # 3. UNet -> eps (or v, or x0, as prediction_type says) for both branches (and, when asked, the text
        #    branch's cross-attention maps beside it). With CFG (diffusers: s > 1 and no guidance embedding) one
        #    call on the batch of two; without, the prompt's call alone drives the step, as in diffusers, and the
        #    negative prompt's is made beside it for the panels
        cfg = guidance.uses_cfg(s, pipe.unet.config)
        timestep_cond = guidance.scale_embedding(pipe, s, latents_dtype=x_t.dtype)
        unet_started = time.perf_counter()
        noise_pred_uncond, noise_pred_text, maps = self._both_branches(latent_model_input, t, timestep_cond, x_t, cfg)
        seconds_unet = time.perf_counter() - unet_started
        nonfinite = self._watch(nonfinite, "unet", noise_pred_uncond, noise_pred_text)
        # 4. CFG: eps_hat = eps_uncond + s (eps_text - eps_uncond); without CFG eps_hat = eps_text
        noise_pred = guidance.combine(noise_pred_uncond, noise_pred_text, s) if cfg else noise_pred_text
        nonfinite = self._watch(nonfinite, "guidance", noise_pred)
        # 5. scheduler step x_t -> x_{t-1}; x0_hat from the scheduler or the family's formula
        sched_started = time.perf_counter()
        kwargs = schedulers.step_kwargs(sched, self.generator, self._swapped, self._steps_since_swap)
        out = self._call_scheduler(noise_pred, t, x_t, kwargs)
        seconds_scheduler = time.perf_counter() - sched_started
        latents = out.prev_sample
        pred_original_sample = getattr(out, "pred_original_sample", None)
        if pred_original_sample is None:
            pred_original_sample = prediction.pred_original(noise_pred, x_t, sigma, family, prediction_type)
        nonfinite = self._watch(nonfinite, "scheduler", latents)
        # 6. DIY inpaint blend: x_{t-1} = m * x_{t-1} + (1 - m) * add_noise(E(image), eps, t_next)
        background = latents_before_blend = None
        if self.mode == "inpaint" and pipe.unet.config.in_channels == 4:
            latents_before_blend = latents
            background = self._noised_background()
            latents = (1 - self.run_inputs.mask) * background + self.run_inputs.mask * latents
            nonfinite = self._watch(nonfinite, "blend", latents)

        self.latents = latents
        self._loop_index += 1
        self._steps_since_swap += 1
        metrics = guidance.branch_metrics(noise_pred_uncond, noise_pred_text, noise_pred, latents,
                                          pred_original_sample)
        record = StepRecord(
            index=len(self.records), num_steps=self.total_steps + 1, timestep=float(t), sigma=sigma,
            alpha_cumprod=abar, guidance_scale=s, scheduler=self.scheduler_name, latents=latents,
            pred_original_sample=pred_original_sample, noise_pred_uncond=noise_pred_uncond,
            noise_pred_text=noise_pred_text, mode=self.mode, background=background,
            latents_before_blend=latents_before_blend,
            mask=self.run_inputs.mask, masked_image_latents=extra.get("masked_image_latents"),
            depth=extra.get("depth"), nonfinite=nonfinite, seconds_unet=seconds_unet,
            seconds_scheduler=seconds_scheduler, family=family, prediction_type=prediction_type,
            add_time_ids=self.conditioning.size_numbers(),
            cross_attention=maps.maps, cross_attention_layers=maps.layer_maps,
            sigma_next=self._noise_level_at(self._loop_index)[0], history_fill=schedulers.history_fill(sched),
            noise_pred_from="cfg" if cfg else "text",
            **metrics,
        )
        record.seconds_total = time.perf_counter() - started
        self._keep(record)
        return record

    def _check_can_step(self) -> None:
        """A run stopped by the watchdog raises its error again; a finished run says how to go on."""
        if self.stopped is not None:
            raise self.stopped
        if self.done:
            raise RunFinishedError("the run is finished: rewind(k) or fork() to go on from an earlier step")

    def _watch(self, nonfinite: str | None, where: str, *tensors) -> str | None:
        """The NaN/Inf watchdog: the step part where a non-finite value first appeared (`nonfinite` if one
        already had, else `where` if one of `tensors` is not finite)."""
        return nonfinite or (None if self._finite(*tensors) else where)

    @staticmethod
    def _with_extra_channels(latent_model_input: torch.Tensor, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        """Step 2b: the extra channels, one copy per branch, appended after x_t's along the channels."""
        if not extra:
            return latent_model_input
        return torch.cat([latent_model_input, *(torch.cat([c] * 2) for c in extra.values())], dim=1)

    def _both_branches(self, latent_model_input: torch.Tensor, t, timestep_cond, x_t: torch.Tensor, cfg: bool):
        """Step 3: (eps_uncond, eps_text, the text branch's attention maps). With CFG one UNet call on the batch
        of two; without, one call per branch (the negative one captures no maps)."""
        if cfg:
            noise_pred_both, maps = self._unet(latent_model_input, t, slice(0, 2), timestep_cond, x_t)
            noise_pred_uncond, noise_pred_text = noise_pred_both.chunk(2)
            return noise_pred_uncond, noise_pred_text, maps
        noise_pred_uncond, _ = self._unet(latent_model_input[:1], t, slice(0, 1), timestep_cond, x_t, capture=False)
        noise_pred_text, maps = self._unet(latent_model_input[1:], t, slice(1, 2), timestep_cond, x_t)
        return noise_pred_uncond, noise_pred_text, maps

    def _call_scheduler(self, noise_pred: torch.Tensor, t, x_t: torch.Tensor, kwargs: dict):
        """Step 5's scheduler call (a shared engine's session shares the LMS coefficients of its sessions)."""
        return self.scheduler.step(noise_pred, t, x_t, **kwargs, return_dict=True)

    def _noised_background(self) -> torch.Tensor:
        """Step 6's background: E(image) noised to the next step's level, add_noise(E(image), eps, t_next) with
        the run's noise (or fresh noise, inpaint_noise="fresh"); at the last step E(image) itself."""
        run = self.run_inputs
        if self._loop_index >= len(self.timesteps) - 1:
            return run.image_latents
        eps = run.noise
        if self.inpaint_noise == "fresh":
            eps = randn_tensor(run.noise.shape, generator=self.generator, device=self.device, dtype=run.noise.dtype)
        t_next = self.timesteps[self._loop_index + 1]
        return self.scheduler.add_noise(run.image_latents, eps, torch.tensor([t_next]))

    def _keep(self, record: StepRecord) -> None:
        """Append the step's record and snapshot; a non-finite step stops the run with its error."""
        self.records.append(record)
        self._snapshots.append(self._snapshot())
        if record.nonfinite:
            self.stopped = NonFiniteError(self._nonfinite_message(record), record)
            raise self.stopped

    def _unet(self, latent_model_input: torch.Tensor, t, rows: slice, timestep_cond, x_t: torch.Tensor,
              capture: bool = True):
        """Step 3's UNet call on the conditioning's `rows` (0: negative prompt, 1: prompt; 0:2 both) -> (output,
        the cross-attention maps captured beside it when `capture` and the run asks for them).

        The one place the loop calls the UNet: a session of a shared engine (run/shared_session.py) sends it
        to the engine's queue instead, to be batched with other sessions' calls.
        """
        with (self._attention_capture(x_t) if capture else attention.NoCapture()) as maps:
            output = self.pipe.unet(latent_model_input, t, encoder_hidden_states=self.prompt_embeds[rows],
                                    timestep_cond=timestep_cond, cross_attention_kwargs=None,
                                    added_cond_kwargs=self.conditioning.added_cond_kwargs(rows), return_dict=False)[0]
        return output, maps

    def _attention_capture(self, x_t: torch.Tensor):
        if not self.capture_attention:
            return attention.NoCapture()
        return attention.CrossAttentionCapture(self.pipe.unet, len(self.prompt_anatomy.tokens), x_t.shape[-2:],
                                               per_layer=self.capture_attention == "layers")

    def _noise_level_at(self, loop_index: int) -> tuple[float, float]:
        """(sigma, abar) at a position of the loop; past the end, where the last step lands."""
        if loop_index >= len(self.timesteps):
            return schedulers.final_noise_level(self.scheduler)
        begin = getattr(self.scheduler, "begin_index", None) or 0
        return schedulers.noise_level(self.scheduler, begin + loop_index, self.timesteps[loop_index])

    def _nonfinite_message(self, record: StepRecord) -> str:
        message = (f"NaN/Inf first appeared at step {record.index + 1} in the {record.nonfinite.replace('_', ' ')}; "
                   "stepping stopped so no black image is produced")
        if self.dtype == torch.float16:
            message += " (fp16 overflows easily: load the model in float32, or keep the VAE in float32)"
        return message

    def run(self) -> list[StepRecord]:
        while not self.done:
            self.step()
        return self.records

    # ---------------------------------------------------------------- pictures
    @torch.no_grad()
    def image(self, latents: torch.Tensor | None = None):
        """Full VAE decode of the current latents (or the given ones) as a PIL image."""
        latents = self.latents if latents is None else latents
        with vae_upcast(self.pipe):  # SDXL's fp16 VAE decodes in float32, as its pipeline does
            vae = self.pipe.vae
            pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        if not bool(torch.isfinite(pixels).all()):
            raise NonFiniteError("NaN/Inf appeared in the VAE decode"
                                 + (" (fp16: keep the VAE in float32)" if self.dtype == torch.float16 else ""))
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")[0]


# Stepper(...)'s signature is __init__'s (inspect would read __new__'s, which only picks the family's loop)
_init_parameters = list(inspect.signature(Stepper.__init__).parameters.values())[1:]
Stepper.__signature__ = inspect.Signature(_init_parameters)


class FlowStepper(FlowLoop, Stepper):
    """What Stepper(pipe, ...) is for an SD3 or FLUX.1 pipeline: the flow family's setup and loop (flow_stepper.py)
    before Stepper's, the edits (rewind, fork, guidance, scheduler swap among flow schedulers) shared."""
