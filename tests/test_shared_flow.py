"""The shared engine with flow sessions (SD3, toy-flow; FLUX.1): max_batch_size=1 is bit-exact with a plain
flow stepper; batched SD3-transformer calls (per-row t = 1000 sigma) stay within the stated tolerance; calls of
another latent size, and FLUX.1's, run in batches of their own (bit-exact)."""

from __future__ import annotations

import pytest
import torch
from test_flow_parity import SIZE, TOKENS, pipe_for
from test_shared_engine import in_threads

import stepviz
from stepviz import Stepper
from stepviz.run.shared_engine import TOLERANCE, SharedEngine

PROMPTS = ["a red circle on a black background", "a blue square on a white background", "a green triangle"]
SCHEDULERS = ["flow_euler", "flow_dpmpp_2m", "flow_unipc"]


@pytest.fixture(scope="module")
def toy_flow():
    return stepviz.load_pipeline("toy-flow")


def settings(i: int) -> dict:
    return dict(prompt=PROMPTS[i % 3], seed=20 + i, num_inference_steps=6, scheduler=SCHEDULERS[i % 3],
                guidance_scale=[7.0, 1.0, 3.0][i % 3])


def solo(pipe, i: int, **extra) -> Stepper:
    st = Stepper(pipe, **{**settings(i), **extra})
    st.run()
    return st


def test_a_flow_session_alone_is_bit_exact_with_a_plain_flow_stepper(toy_flow):
    with SharedEngine(toy_flow, max_batch_size=1, max_wait_ms=20) as engine:
        sessions = [engine.stepper(**settings(i)) for i in range(3)]
        in_threads(*(s.run for s in sessions))
        assert engine.stats.largest_batch == 2  # one session's two CFG rows, never more
        for i, session in enumerate(sessions):
            alone = solo(toy_flow, i)
            assert torch.equal(session.latents, alone.latents), SCHEDULERS[i]
            assert all(torch.equal(a.pred_original_sample, b.pred_original_sample)
                       for a, b in zip(session.records, alone.records))
        session = sessions[0]  # rewind and fork on a flow session
        session.rewind(2)
        twin = session.fork()
        in_threads(session.run, twin.run)
        assert torch.equal(session.latents, twin.latents)
        assert torch.equal(session.latents, solo(toy_flow, 0).latents)


def test_batched_flow_sessions_stay_within_the_stated_tolerance(toy_flow):
    with SharedEngine(toy_flow, max_batch_size=32, max_wait_ms=100, workers=1) as engine:
        sessions = [engine.stepper(**settings(i)) for i in range(6)]
        in_threads(*(s.run for s in sessions))
        assert engine.stats.rows_per_call > 2  # the transformer calls were batched
        for i, session in enumerate(sessions):
            alone = solo(toy_flow, i)
            assert session.done and len(session.records) == len(alone.records)
            difference = float((session.latents - alone.latents).abs().max())
            assert difference <= TOLERANCE["toy-flow"], (i, difference)


def test_another_latent_size_runs_in_a_batch_of_its_own(toy_flow):
    """Sessions of two picture sizes on one engine: never in one call, so each (alone in its batch) keeps the
    bits of its solo run."""
    sizes = [dict(height=64, width=64), dict(height=32, width=32)]
    with SharedEngine(toy_flow, max_batch_size=32, max_wait_ms=50, workers=1) as engine:
        sessions = [engine.stepper(**{**settings(0), **size}) for size in sizes]
        in_threads(*(s.run for s in sessions))
        assert engine.stats.largest_batch == 2
        for session, size in zip(sessions, sizes):
            assert torch.equal(session.latents, solo(toy_flow, 0, **size).latents)


def test_flux_sessions_share_the_engine_one_call_at_a_time():
    pipe = pipe_for("FluxPipeline")
    kwargs = dict(prompt="a red circle", height=SIZE, width=SIZE, num_inference_steps=4, max_sequence_length=TOKENS)
    with SharedEngine(pipe, max_batch_size=32, max_wait_ms=50) as engine:
        sessions = [engine.stepper(seed=seed, **kwargs) for seed in (1, 2)]
        in_threads(*(s.run for s in sessions))
        for seed, session in zip((1, 2), sessions):
            alone = Stepper(pipe, seed=seed, **kwargs)
            alone.run()
            assert torch.equal(session.latents, alone.latents)
