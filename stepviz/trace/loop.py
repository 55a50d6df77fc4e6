"""A recorded event stream -> the loop it came from: the start, one `LoopStep` per scheduler.step(), the decode.

The same reading serves the user's loop and the reference run, so the two compare quantity by quantity.
One call of `scheduler.step()` closes one loop iteration (the loop index `i` of `enumerate(timesteps)`):
the UNet calls since the previous step belong to it, and `add_noise` calls after it (before the next UNet
call) are its inpaint blend. Classifier-free guidance runs either as one UNet call on a batch of two or
as two calls of one; either way the branches are put in the order [uncond, text] by their embeddings:
the text encoder call of an empty prompt (or, failing that, the later of two) is the uncond branch, as in
diffusers' encode_prompt and the course's loop; without text encoder calls, batch order is taken as
[uncond, text] (the course's `torch.cat([latents] * 2)` with `_encode_prompt`'s [negative, prompt]).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .recorder import Event


@dataclass
class LoopStep:
    index: int
    timestep: float  # the t given to scheduler.step
    latents: torch.Tensor  # x_t given to scheduler.step
    noise_pred: torch.Tensor  # the model output given to scheduler.step (after guidance)
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None
    scheduler_id: int
    rng_state: torch.Tensor | None = None  # the step's generator state before the call (ancestral draws)
    unseeded_draw: bool = False  # step() drew noise without a generator= (torch's global generator)
    unet_timestep: float | None = None
    model_input: torch.Tensor | None = None  # the UNet's x input (latent channels), branches in role order
    eps_uncond: torch.Tensor | None = None
    eps_text: torch.Tensor | None = None
    embeds_uncond: torch.Tensor | None = None
    embeds_text: torch.Tensor | None = None
    scaled: bool = False  # scale_model_input was called during this iteration
    blends: list[dict] = field(default_factory=list)  # add_noise calls after the step: the inpaint background
    carried: torch.Tensor | None = None  # the latents the next iteration starts from (the last: prev_sample)


@dataclass
class LoopRecording:
    steps: list[LoopStep]
    schedulers: dict[int, object]
    text_calls: list[tuple[torch.Tensor, torch.Tensor]]  # (input ids, embeddings) per text encoder call
    draws: list[torch.Tensor]  # torch.randn results, in order
    set_timesteps: dict[int, dict]  # scheduler id -> arguments of its last set_timesteps before the loop
    init_noise_sigma_reads: list[tuple[float, bool]]  # (value, read after set_timesteps on that scheduler)
    start_add_noise: dict | None  # add_noise before the loop: img2img's start
    decode_input: torch.Tensor | None  # the z of the last vae.decode after the loop

    @property
    def scheduler(self):
        return self.schedulers.get(self.steps[0].scheduler_id) if self.steps else None

    @property
    def final_latents(self) -> torch.Tensor | None:
        return self.steps[-1].carried if self.steps else None


def read_loop(events: list[Event], schedulers: dict[int, object], tokenizer=None) -> LoopRecording:
    reader = _LoopReader(tokenizer)
    for event in events:
        reader.read(event)
    steps = reader.steps
    for step, after in zip(steps, steps[1:]):
        step.carried = after.latents
    if steps:
        steps[-1].carried = steps[-1].prev_sample
    decode_input = next((z for at, z in reversed(reader.decodes) if steps and at == len(steps)), None)
    return LoopRecording(steps, schedulers, reader.text_calls, reader.draws, reader.set_timesteps, reader.reads,
                         reader.start_add_noise, decode_input)


class _LoopReader:
    """Reads the recorded calls in their order: each kind of call by its own method; a scheduler step closes a
    loop step with the UNet calls since the last one."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.steps: list[LoopStep] = []
        self.unet_calls: list[Event] = []
        self.scaled = False
        self.text_calls, self.draws, self.reads, self.decodes = [], [], [], []
        self.set_timesteps: dict[int, dict] = {}
        self.start_add_noise = None

    def read(self, event: Event) -> None:
        getattr(self, f"_{event.kind}", lambda event: None)(event)

    def _text_encoder(self, event: Event) -> None:
        self.text_calls.append((event.values["input_ids"], event.values["output"]))

    def _randn(self, event: Event) -> None:
        self.draws.append(event.values["output"])

    def _init_noise_sigma(self, event: Event) -> None:
        self.reads.append((event.values["value"], event.owner in self.set_timesteps))

    def _set_timesteps(self, event: Event) -> None:
        if not self.steps:
            self.set_timesteps[event.owner] = event.values

    def _scale_model_input(self, event: Event) -> None:
        self.scaled = True

    def _unet(self, event: Event) -> None:
        self.unet_calls.append(event)

    def _step(self, event: Event) -> None:
        self.steps.append(_make_step(len(self.steps), event, self.unet_calls, self.scaled, self.text_calls,
                                     self.tokenizer))
        self.unet_calls, self.scaled = [], False

    def _add_noise(self, event: Event) -> None:
        if self.unet_calls:
            return
        if self.steps:
            self.steps[-1].blends.append(event.values)
        else:
            self.start_add_noise = event.values

    def _vae_decode(self, event: Event) -> None:
        self.decodes.append((len(self.steps), event.values["z"]))


def _make_step(index, event, unet_calls, scaled, text_calls, tokenizer) -> LoopStep:
    v = event.values
    step = LoopStep(index=index, timestep=float(torch.as_tensor(v["timestep"]).flatten()[0]), latents=v["sample"],
                    noise_pred=v["model_output"], prev_sample=v["prev_sample"],
                    pred_original_sample=v["pred_original_sample"], scheduler_id=event.owner,
                    rng_state=v.get("rng_state"), unseeded_draw=bool(v.get("unseeded_draw")), scaled=scaled)
    branches = [(call.values["sample"][j:j + 1], call.values["encoder_hidden_states"][j:j + 1],
                 call.values["output"][j:j + 1]) for call in unet_calls for j in range(call.values["sample"].shape[0])]
    if not branches:
        return step
    step.unet_timestep = unet_calls[0].values["timestep"]
    channels = step.latents.shape[1]
    if len(branches) >= 2:
        uncond = uncond_branch(branches[0][1], branches[1][1], text_calls, tokenizer)
        ordered = [branches[uncond], branches[1 - uncond]]
        step.eps_uncond, step.embeds_uncond = ordered[0][2], ordered[0][1]
    else:
        ordered = branches[:1]
    step.eps_text, step.embeds_text = ordered[-1][2], ordered[-1][1]
    step.model_input = torch.cat([sample[:, :channels] for sample, _, _ in ordered])
    return step


def uncond_branch(embeds_a, embeds_b, text_calls, tokenizer) -> int:
    """0 or 1: which of two branches' embeddings is the negative (uncond) prompt's."""
    found = [_encoder_call(embeds, text_calls) for embeds in (embeds_a, embeds_b)]
    if None in found or found[0] == found[1]:
        return 0
    empty = [_is_empty(text_calls[k][0], tokenizer) for k in found]
    if empty[0] != empty[1]:
        return 0 if empty[0] else 1
    return 0 if found[0] > found[1] else 1


def _encoder_call(embeds, text_calls) -> int | None:
    for k, (_, output) in enumerate(text_calls):
        rows = output.reshape(-1, *embeds.shape[1:]) if output.shape[1:] == embeds.shape[1:] else ()
        if any(torch.equal(row[None].to(embeds.device), embeds) for row in rows):
            return k
    return None


def _is_empty(input_ids, tokenizer) -> bool:
    special = {getattr(tokenizer, name, None) for name in ("bos_token_id", "eos_token_id", "pad_token_id")}
    return all(int(i) in special for i in input_ids.flatten()[:77].tolist())


# events that prepare a loop (its prompt, its noise, its schedule): they belong to the loop that follows them
PREPARING = ("text_encoder", "randn", "init_noise_sigma", "set_timesteps")


def split_loops(events: list[Event]) -> list[list[Event]]:
    """The event stream cut into loops: a `set_timesteps` after a loop's steps starts the next loop, with the
    preparing events (text encoding, noise draws, init_noise_sigma reads) just before it."""
    loops: list[list[Event]] = [[]]
    stepped = False
    for event in events:
        if event.kind == "set_timesteps" and stepped:
            current = loops[-1]
            cut = len(current)
            while cut > 0 and current[cut - 1].kind in PREPARING:
                cut -= 1
            loops[-1], loops_next = current[:cut], current[cut:]
            loops.append(loops_next)
            stepped = False
        loops[-1].append(event)
        stepped = stepped or event.kind == "step"
    return [loop for loop in loops if any(event.kind == "step" for event in loop)]
