"""What both loops set up the same way: the run's own fields, its seeded generator, the prompt's anatomy, and
the state a prepared run starts from.

A mixin of both loops (stepper.py for SD, flow_stepper.py for SD3 and FLUX.1); each calls these in its
__init__, between its own checks, text conditioning and mode preparation.
"""

from __future__ import annotations

import torch

from . import prompt_tokens
from .pipeline_facts import facts_of


class RunSetup:
    """The setup steps the SD loop and the flow loop share."""

    def _set_run_fields(self, pipe, mode: str, prompt: str, negative_prompt: str | None, seed: int | None,
                        num_inference_steps: int, inpaint_noise: str, generator_device) -> None:
        """The run's arguments, where it runs, its generator (seeded unless seed is None, on generator_device or,
        for None, the run's device), and the empty records, log and notices (what loading noticed first)."""
        self.pipe, self.mode, self.prompt = pipe, mode, prompt
        self.negative_prompt = negative_prompt or ""
        self.seed, self.num_inference_steps, self.inpaint_noise = seed, num_inference_steps, inpaint_noise
        self.device = pipe._execution_device
        self.generator = torch.Generator(self.device if generator_device is None else generator_device)
        if seed is not None:
            self.generator.manual_seed(seed)
        self._base_config = pipe.scheduler.config
        self.records, self.log = [], []
        self.notices: list[str] = list(facts_of(pipe).notices)
        self.stopped = None  # a NonFiniteError once the watchdog stops the run
        self._setup_nonfinite: str | None = None

    def _read_prompts(self, tokenizer) -> None:
        """The prompt's and the negative prompt's token anatomy against the embeddings' shape, with their
        notices (a prompt cut at the tokenizer's length)."""
        shape = tuple(self.prompt_embeds[1:].shape)
        self.prompt_anatomy = prompt_tokens.prompt_anatomy(tokenizer, self.prompt, shape)
        self.negative_anatomy = prompt_tokens.prompt_anatomy(tokenizer, self.negative_prompt, shape)
        for anatomy in (self.prompt_anatomy, self.negative_anatomy):
            if anatomy.notice:
                self.notices.append(anatomy.notice)

    def _start_from(self, run, grid: list[float]) -> None:
        """The state before step 1, from a prepared run (the mode's inputs, size, x_T and timesteps), and its
        snapshot; `grid` is the first-order timestep grid the schedule plot marks."""
        self.run_inputs = run
        self.height, self.width = run.height, run.width
        self.latents = run.latents
        self.timesteps, self._loop_index, self._steps_since_swap = run.timesteps, 0, 0
        self._swapped = False  # True once set_scheduler has replaced the run's first scheduler
        self.grid = grid
        self._snapshots = [self._snapshot()]
