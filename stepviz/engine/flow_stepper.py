"""The flow family's loop (SD3, FLUX.1), one scheduler step per call: the same Stepper, another path.

Notation (Lipman et al. 2023; Esser et al. 2024 (SD3); Black Forest Labs 2024 (FLUX.1)):

    x_t        latents at noise level sigma: (1 - sigma) x0 + sigma eps       -> latents
    v_uncond   velocity predicted for the negative prompt                       -> noise_pred_uncond
    v_text     velocity predicted for the prompt                                -> noise_pred_text
    s          guidance scale (FLUX.1: embedded in the model; true_cfg_scale
               is its two-call CFG)                                             -> guidance_scale
    v_hat      v_uncond + s (v_text - v_uncond), or v_text alone                 -> noise_pred
    sigma      the noise level, 1 - sigma the picture's share                   -> sigma, alpha_cumprod
    x0_hat     x_t - sigma v_hat                                                -> pred_original_sample
    eps_hat    x_t + (1 - sigma) v_hat
    m          mask at latent size, 1 = repaint                                 -> mask
    E(masked)  the masked picture's latents, beside x_t and m for an SD3
               inpainting transformer (33 channels)                             -> masked_image_latents

No scale_model_input and no init_noise_sigma: the flow path starts at x_T = eps and the transformer reads
t = 1000 sigma. Run without edits, the loop gives the same bits as diffusers' StableDiffusion3(Img2Img|Inpaint)
Pipeline and Flux(Img2Img|Inpaint)Pipeline.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from . import checks, defaults, families, flow_modes, flow_schedule, flow_text, guidance, prediction
from .flow_modes import FLOW_MODES
from .flow_layout import image_ids, pack, unpack
from .errors import NonFiniteError, RunFinishedError
from .edit_log import TrueCfgChange
from .records import StepRecord
from .run_edits import RunEdits

MODE_CLASSES = {"SD3": dict(zip(FLOW_MODES, families.SD3_CLASSES)),
                "FLUX.1": dict(zip(FLOW_MODES, families.FLUX_CLASSES))}


class FlowLoop(RunEdits):
    """The flow family's setup and loop, placed before Stepper's in stepper.FlowStepper (what Stepper(pipe, ...)
    is for an SD3 or FLUX.1 pipeline); the state, the edits and the rest are Stepper's. Extra arguments:
    true_cfg_scale (FLUX.1's two-call CFG, on when > 1 and a negative prompt is given, as FluxPipeline decides)
    and max_sequence_length (T5's tokens)."""

    def __init__(self, pipe, prompt: str = "", negative_prompt: str | None = None, seed: int | None = defaults.SEED,
                 num_inference_steps: int = defaults.NUM_INFERENCE_STEPS, guidance_scale: float | None = None,
                 scheduler=None, height: int | None = None, width: int | None = None, mode: str = "txt2img",
                 image=None, mask_image=None, depth_map=None, strength: float | None = None,
                 inpaint_noise: str = "fixed", latents=None, prompt_embeds=None, negative_prompt_embeds=None,
                 generator_device="cpu", capture_attention: bool | str = False, true_cfg_scale: float = 1.0,
                 max_sequence_length: int | None = None):
        self.model_family = families.model_family(type(pipe).__name__)
        self.flux = self.model_family == "FLUX.1"
        flow_modes.check_flow_run(pipe, self.model_family, height=height, width=width, steps=num_inference_steps,
                                  strength=strength, seed=seed, mode=mode, image=image, mask_image=mask_image,
                                  depth_map=depth_map, inpaint_noise=inpaint_noise,
                                  given_embeds=prompt_embeds is not None or negative_prompt_embeds is not None)
        checks.check_capture_attention(capture_attention)
        self.capture_attention = False
        self.sdxl = False
        self._set_run_fields(pipe, mode, prompt, negative_prompt, seed, num_inference_steps, inpaint_noise,
                             generator_device)
        self.has_negative_prompt = negative_prompt is not None
        default_scale = defaults.GUIDANCE_SCALES[self.model_family]  # SD3 7.0 (CFG), FLUX.1 3.5 (embedded)
        self.guidance_scale = checks.check_guidance(default_scale if guidance_scale is None else guidance_scale)
        self.true_cfg_scale = checks.check_guidance(true_cfg_scale)
        self.dtype = pipe.transformer.dtype
        self._pipeline_class = MODE_CLASSES[self.model_family][mode]
        self.scheduler = flow_modes.scheduler_for(pipe, scheduler, self.model_family)
        self.scheduler_name = scheduler if isinstance(scheduler, str) else self.scheduler_info.name
        if capture_attention:  # the transformer's joint attention mixes text and image tokens in one softmax
            self.notices.append(f"no cross-attention maps for {self.model_family}: its transformer attends to text "
                                "and image tokens jointly (MM-DiT), not through the UNet's cross-attention layers")

        # Text conditioning, both branches (negative first) so the guidance can change mid-run
        with torch.no_grad():
            self.conditioning = flow_text.text_conditioning(pipe, prompt, negative_prompt, self.device,
                                                            max_sequence_length)
        self.prompt_embeds = self.conditioning.prompt_embeds
        if not self._finite(self.prompt_embeds, self.conditioning.pooled):
            self._setup_nonfinite = "text_encoder"
        self._read_prompts(pipe.tokenizer)

        with torch.no_grad():
            run = flow_modes.prepare(pipe, self.scheduler, mode, flux=self.flux,
                                     num_inference_steps=num_inference_steps, height=height, width=width,
                                     dtype=self.prompt_embeds.dtype, device=self.device, generator=self.generator,
                                     image=image, mask_image=mask_image, strength=strength, noise=latents)
        self.img_ids = image_ids(*run.latents.shape[-2:], self.device, self.prompt_embeds.dtype) if self.flux else None
        if not self._finite(run.image_latents, run.masked_image_latents):
            self._setup_nonfinite = "vae_encode"
        self._start_from(run, [float(t) for t in run.timesteps])

    # ---------------------------------------------------------------- state
    @property
    def prediction_type(self) -> str:
        return prediction.FLOW_PREDICTION

    @property
    def extra_channels(self) -> dict[str, torch.Tensor]:
        """The transformer's inputs besides x_t, fixed for the run: an SD3 inpainting transformer's mask m and
        E(masked image) (step 3 appends them); empty otherwise."""
        run = self.run_inputs
        if self.mode == "inpaint" and flow_modes.inpainting_transformer(self.pipe, self.model_family):
            return {"mask": run.mask, "masked_image_latents": run.masked_image_latents}
        return {}

    @property
    def schedule_shift(self) -> float | None:
        """The shift s that maps the linear schedule to this run's sigmas (FLUX.1: e^mu), for the schedule panel."""
        return flow_schedule.plot_shift(self.scheduler, self.run_inputs.mu)

    @property
    def shift(self) -> float | None:
        """The fixed shift s of the run's schedule; None where it shifts by resolution (mu)."""
        return None if self.run_inputs.mu is not None else flow_schedule.shift_of(self.scheduler)

    def _noise_pred_from(self, scale: float) -> str:
        """What drives a step at guidance `scale`: SD3 CFG above 1; FLUX.1 embeds the scale (true CFG drives)."""
        if self.flux:
            return "cfg" if self._true_cfg(self.true_cfg_scale) else "text"
        return "cfg" if scale > 1 else "text"

    def _true_cfg(self, scale: float) -> bool:
        return scale > 1 and self.has_negative_prompt

    def set_true_cfg_scale(self, scale: float) -> None:
        """FLUX.1's true CFG scale (two transformer calls), from the next step on."""
        new = checks.check_guidance(scale)
        self._log(TrueCfgChange, old=self.true_cfg_scale, new=new,
                  noise_pred_from="cfg" if self._true_cfg(new) else "text")
        self.true_cfg_scale = new
        self._snapshots[-1] = dataclasses.replace(self._snapshots[-1], true_cfg_scale=new)

    def _snapshot(self):
        return dataclasses.replace(super()._snapshot(), true_cfg_scale=getattr(self, "true_cfg_scale", None))

    def _restore(self, snap) -> None:
        super()._restore(snap)
        self.true_cfg_scale = snap.true_cfg_scale

    def _noise_level_at(self, loop_index: int) -> tuple[float, float]:
        """(sigma, 1 - sigma) at a position of the loop; past the end, where the last step lands."""
        if loop_index >= len(self.timesteps):
            sigma = float(self.scheduler.sigmas[-1])
        else:
            begin = getattr(self.scheduler, "begin_index", None) or 0
            sigma = float(self.scheduler.sigmas[begin + loop_index])
        return sigma, 1.0 - sigma

    # ---------------------------------------------------------------- the loop
    @torch.no_grad()
    def step(self) -> StepRecord:
        """One iteration of the flow loop: x_t -> x_{t-1}, recorded."""
        if self.stopped is not None:
            raise self.stopped
        if self.done:
            raise RunFinishedError("the run is finished: rewind(k) or fork() to go on from an earlier step")
        started = time.perf_counter()
        sched, x_t, run = self.scheduler, self.latents, self.run_inputs
        t = self.timesteps[self._loop_index]
        sigma, one_minus_sigma = self._noise_level_at(self._loop_index)
        s = self.guidance_scale
        nonfinite = self._setup_nonfinite

        # 1-3. the transformer's velocity for both branches. No scale_model_input: the model reads x_t as it is
        #      and t = 1000 sigma. SD3 with CFG (s > 1): one call on [x_t, x_t]; FLUX.1: one call per branch,
        #      s embedded, and the negative prompt's call drives only with true CFG. Without CFG the prompt's call
        #      alone drives the step, as in diffusers; the negative prompt's is made beside it for the panels.
        #      An SD3 inpainting transformer reads [x_t, m, E(masked image)]: one copy of m and E per row.
        cfg = self._noise_pred_from(s) == "cfg"
        cfg_scale = self.true_cfg_scale if self.flux else s
        extra = self.extra_channels
        transformer_started = time.perf_counter()
        if cfg and not self.flux:
            v_both = self._transformer(self._with_extra_channels(torch.cat([x_t] * 2), extra), t, slice(0, 2))
            v_uncond, v_text = v_both.chunk(2)
        else:
            x_in = self._with_extra_channels(x_t, extra)
            v_text = self._transformer(x_in, t, slice(1, 2))
            v_uncond = self._transformer(x_in, t, slice(0, 1))
        seconds_unet = time.perf_counter() - transformer_started
        if not self._finite(v_uncond, v_text):
            nonfinite = nonfinite or "unet"
        # 4. CFG: v_hat = v_uncond + s (v_text - v_uncond); without CFG v_hat = v_text
        v_hat = guidance.combine(v_uncond, v_text, cfg_scale) if cfg else v_text
        if not self._finite(v_hat):
            nonfinite = nonfinite or "guidance"
        # 5. scheduler step x_t -> x_{t-1} (FlowMatchEuler: x_t + (sigma_next - sigma) v_hat);
        #    x0_hat = x_t - sigma v_hat for every flow scheduler (none of them returns it)
        sched_started = time.perf_counter()
        latents = self._scheduler_step(v_hat, t, x_t)
        seconds_scheduler = time.perf_counter() - sched_started
        pred_original_sample = prediction.pred_original_flow(v_hat, x_t, sigma)
        if not self._finite(latents):
            nonfinite = nonfinite or "scheduler"
        # 6. inpaint: E(image) re-noised to the next sigma with the noise drawn once, kept outside the mask
        #    (an inpainting transformer is shown the mask instead: no blend)
        background = latents_before_blend = None
        if self.mode == "inpaint" and not extra:
            latents_before_blend = latents
            background = run.image_latents
            if self._loop_index < len(self.timesteps) - 1:
                t_next = self.timesteps[self._loop_index + 1]
                background = flow_modes.noised(sched, run.image_latents, run.noise, torch.tensor([t_next]))
            latents = (1 - run.mask) * background + run.mask * latents
            if not self._finite(latents):
                nonfinite = nonfinite or "blend"

        self.latents = latents
        self._loop_index += 1
        self._steps_since_swap += 1
        metrics = guidance.branch_metrics(v_uncond, v_text, v_hat, latents, pred_original_sample)
        record = StepRecord(
            index=len(self.records), num_steps=self.total_steps + 1, timestep=float(t), sigma=sigma,
            alpha_cumprod=one_minus_sigma, guidance_scale=s, scheduler=self.scheduler_name, latents=latents,
            pred_original_sample=pred_original_sample, noise_pred_uncond=v_uncond, noise_pred_text=v_text,
            mode=self.mode, background=background, latents_before_blend=latents_before_blend, mask=run.mask,
            masked_image_latents=extra.get("masked_image_latents"), nonfinite=nonfinite, seconds_unet=seconds_unet,
            seconds_scheduler=seconds_scheduler, family="flow",
            prediction_type=prediction.FLOW_PREDICTION, sigma_next=self._noise_level_at(self._loop_index)[0],
            history_fill=self.history_fill, noise_pred_from="cfg" if cfg else "text",
            shift=self.shift, mu=run.mu, true_cfg_scale=self.true_cfg_scale if self.flux else None,
            **metrics,
        )
        record.seconds_total = time.perf_counter() - started
        self.records.append(record)
        self._snapshots.append(self._snapshot())
        if nonfinite:
            self.stopped = NonFiniteError(self._nonfinite_message(record), record)
            raise self.stopped
        return record

    def _transformer(self, x: torch.Tensor, t, rows: slice) -> torch.Tensor:
        """Step 3's transformer call on the conditioning's `rows` (0: negative prompt, 1: prompt; 0:2 both), as
        the family's pipeline makes it; the velocity comes back at latent layout [n, C, h, w]."""
        cond = self.conditioning
        if self.flux:
            h, w = x.shape[-2:]
            timestep = t.expand(x.shape[0]).to(x.dtype)
            embedded = None
            if self.pipe.transformer.config.guidance_embeds:  # FLUX.1-dev: s is an input, not a second call
                embedded = torch.full([1], self.guidance_scale, device=self.device, dtype=torch.float32)
                embedded = embedded.expand(x.shape[0])
            v = self.pipe.transformer(hidden_states=pack(x), timestep=timestep / 1000, guidance=embedded,
                                      pooled_projections=cond.pooled[rows],
                                      encoder_hidden_states=cond.prompt_embeds[rows], txt_ids=cond.text_ids,
                                      img_ids=self.img_ids, joint_attention_kwargs={}, return_dict=False)[0]
            return unpack(v, h, w)
        return self.pipe.transformer(hidden_states=x, timestep=t.expand(x.shape[0]),
                                     encoder_hidden_states=cond.prompt_embeds[rows],
                                     pooled_projections=cond.pooled[rows], joint_attention_kwargs=None,
                                     return_dict=False)[0]

    @staticmethod
    def _with_extra_channels(x: torch.Tensor, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        """[x, m, E(masked image)] along the channels, one copy of each extra input per row of x."""
        if not extra:
            return x
        return torch.cat([x, *(torch.cat([c] * x.shape[0]) for c in extra.values())], dim=1)

    def _scheduler_step(self, v_hat: torch.Tensor, t, x_t: torch.Tensor) -> torch.Tensor:
        """scheduler.step on the layout the pipeline steps (FLUX.1: packed tokens), back at [1, C, h, w]."""
        from . import schedulers

        kwargs = schedulers.step_kwargs(self.scheduler, self.generator, self._swapped, self._steps_since_swap)
        if self.flux:
            h, w = x_t.shape[-2:]
            out = self.scheduler.step(pack(v_hat), t, pack(x_t), **kwargs, return_dict=False)[0]
            return unpack(out, h, w)
        return self.scheduler.step(v_hat, t, x_t, **kwargs, return_dict=False)[0]

    def _set_up_swap(self, name: str, t_now: float):
        """A flow scheduler that continues on this run's sigmas from here (a VP/sigma one is refused)."""
        flow_modes.check_flow_family(name, self.model_family)
        new = flow_schedule.make_flow_scheduler(name, self._base_config)
        if self.run_inputs.mu is not None:
            new.set_timesteps(self.num_inference_steps, device=self.device, mu=self.run_inputs.mu)
        else:
            new.set_timesteps(self.num_inference_steps, device=self.device)
        begin = getattr(self.scheduler, "begin_index", None) or 0
        loop, begin = flow_schedule.continue_on_grid(new, self.scheduler, begin + self._loop_index, self.device)
        return new, loop, begin, None

    # ---------------------------------------------------------------- pictures
    @torch.no_grad()
    def image(self, latents: torch.Tensor | None = None):
        """Full VAE decode of the current latents (or the given ones): D(x / scaling_factor + shift_factor)."""
        latents = self.latents if latents is None else latents
        vae = self.pipe.vae
        pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor,
                            return_dict=False)[0]
        if not bool(torch.isfinite(pixels).all()):
            raise NonFiniteError("NaN/Inf appeared in the VAE decode")
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")[0]
