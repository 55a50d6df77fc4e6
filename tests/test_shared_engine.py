"""SharedEngine: sessions of one model whose UNet calls are batched; solo mode bit-exact; errors stay home."""

import threading

import pytest
import torch

import stepviz
from stepviz import NonFiniteError, Stepper, StepvizInputError
from stepviz.run.shared_engine import TOLERANCE, EngineClosedError, SharedEngine, UNetRequest

PROMPTS = ["a red circle on a black background", "a blue square on a white background", "a green triangle"]
SCHEDULERS = ["ddim", "euler", "dpmpp_2m", "heun", "euler_a", "pndm"]


@pytest.fixture(scope="module")
def toy_pipe():
    """The toy model: the tolerance is stated (and measured, bench/p10_shared_engine.py) on it."""
    return stepviz.load_pipeline("toy")


def settings(i: int) -> dict:
    return dict(prompt=PROMPTS[i % 3], seed=10 + i, num_inference_steps=6, scheduler=SCHEDULERS[i % 6],
                guidance_scale=[7.5, 1.0, 3.0][i % 3], height=32, width=32)


def in_threads(*jobs) -> list:
    """Run the callables at once, one thread each; their results (an exception is returned, not raised)."""
    results: list = [None] * len(jobs)

    def run(i, job):
        try:
            results[i] = job()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def solo(pipe, i: int) -> Stepper:
    st = Stepper(pipe, **settings(i))
    st.run()
    return st


def solo_final(pipe, i: int) -> torch.Tensor:
    return solo(pipe, i).latents


def test_max_batch_size_one_is_bit_exact_with_a_plain_stepper(tiny_pipe):
    with SharedEngine(tiny_pipe, max_batch_size=1, max_wait_ms=20) as engine:
        sessions = [engine.stepper(**settings(i)) for i in range(6)]
        in_threads(*(s.run for s in sessions))
        assert engine.stats.largest_batch == 2  # one session's two CFG rows, never more
        for i, session in enumerate(sessions):
            assert torch.equal(session.latents, solo_final(tiny_pipe, i)), SCHEDULERS[i]
        # rewind and fork keep working on a session
        session = sessions[0]
        session.rewind(2)
        twin = session.fork()
        in_threads(session.run, twin.run)
        assert torch.equal(session.latents, twin.latents)
        assert torch.equal(session.latents, solo_final(tiny_pipe, 0))


@pytest.mark.parametrize("workers", [1, 2])
def test_batched_sessions_stay_within_the_stated_tolerance(toy_pipe, workers):
    with SharedEngine(toy_pipe, max_batch_size=32, max_wait_ms=100, workers=workers) as engine:
        sessions = [engine.stepper(**settings(i)) for i in range(6)]
        assert engine.sessions == 6
        in_threads(*(s.run for s in sessions))
        stats = engine.stats
        assert stats.rows_per_call > 2  # calls were batched
        # one request per step: with CFG one call of two rows; at s <= 1 the prompt's and the negative prompt's
        # one-row calls (two calls in a plain Stepper, as in diffusers) travel as one request of two rows
        assert stats.requests == sum(len(s.records) for s in sessions)
        assert stats.rows == 2 * stats.requests
        for i, session in enumerate(sessions):
            alone = solo(toy_pipe, i)
            assert session.done and len(session.records) == len(alone.records)
            difference = float((session.latents - alone.latents).abs().max())
            assert difference <= TOLERANCE["toy"], (SCHEDULERS[i], difference)


def test_a_nan_session_or_a_bad_edit_does_not_touch_the_others(toy_pipe):
    with SharedEngine(toy_pipe, max_batch_size=32, max_wait_ms=100) as engine:
        sessions = [engine.stepper(**settings(i)) for i in range(4)]
        broken = sessions[1]
        broken.latents = torch.full_like(broken.latents, float("nan"))
        results = in_threads(*(s.run for s in sessions),
                             lambda: sessions[2].set_scheduler("no-such-scheduler"))
        assert isinstance(results[1], NonFiniteError) and broken.stopped is not None
        assert isinstance(results[4], StepvizInputError)
        assert engine.stats.rows_per_call > 2  # the NaN session's rows shared batches with the others
        for i in (0, 2, 3):
            assert sessions[i].stopped is None and sessions[i].done
            assert bool(torch.isfinite(sessions[i].latents).all())
            assert float((sessions[i].latents - solo_final(toy_pipe, i)).abs().max()) <= TOLERANCE["toy"]


def test_a_call_that_fails_in_a_batch_is_retried_alone_and_fails_only_its_session():
    class PicksyUNet(torch.nn.Module):
        def forward(self, sample, t, encoder_hidden_states, **kwargs):
            if bool((sample < 0).any()):
                raise ValueError("negative input")
            return (sample * 2,)

    unet = PicksyUNet()
    engine = SharedEngine(pipe=None, max_batch_size=8, max_wait_ms=200)
    hidden = torch.zeros(2, 3, 4)

    def request(sample):
        alone = lambda: (unet(sample, torch.tensor(1), hidden)[0], None)  # noqa: E731
        return UNetRequest(alone, unet, sample, torch.tensor(1), hidden)

    good, bad = torch.ones(2, 4, 2, 2), -torch.ones(2, 4, 2, 2)
    results = in_threads(lambda: engine.submit(request(good)), lambda: engine.submit(request(bad)))
    engine.close()
    assert torch.equal(results[0][0], good * 2)
    assert isinstance(results[1], ValueError)
    assert engine.stats.requests == 2


def test_two_threads_on_one_session_take_turns(toy_pipe):
    with SharedEngine(toy_pipe, max_wait_ms=1) as engine:
        session = engine.stepper(**{**settings(0), "num_inference_steps": 10})
        in_threads(*([lambda: [session.step() for _ in range(5)]] * 2))
        assert [r.index for r in session.records] == list(range(10)) and session.done
        assert float((session.latents - Stepper(toy_pipe, **{**settings(0), "num_inference_steps": 10})
                      .run()[-1].latents).abs().max()) <= TOLERANCE["toy"]


def test_attention_capture_runs_alone_and_keeps_its_maps(tiny_pipe):
    # two workers: a batch may run while the capture waits, never while its hooks are on the UNet
    with SharedEngine(tiny_pipe, max_batch_size=32, max_wait_ms=50, workers=2) as engine:
        capturing = engine.stepper(**settings(0), capture_attention=True)
        others = [engine.stepper(**settings(i)) for i in (1, 2)]
        in_threads(capturing.run, *(s.run for s in others))
        plain = Stepper(tiny_pipe, **settings(0), capture_attention=True)
        plain.run()
        assert all(r.cross_attention is not None for r in capturing.records)
        assert torch.equal(capturing.records[-1].cross_attention, plain.records[-1].cross_attention)
        assert torch.equal(capturing.latents, plain.latents)  # alone: the same bits
        assert all(r.cross_attention is None for r in others[0].records)


def test_closed_engine_and_bad_settings_are_refused(tiny_pipe):
    engine = stepviz.SharedEngine(tiny_pipe)
    session = engine.stepper(**settings(0))
    session.step()
    engine.close()
    with pytest.raises(EngineClosedError):
        session.step()
    with pytest.raises(EngineClosedError):
        engine.stepper(**settings(0))
    for bad in (dict(max_batch_size=0), dict(max_batch_size=2.5), dict(max_wait_ms=-1), dict(workers=0),
                dict(workers=True)):
        with pytest.raises(StepvizInputError, match=next(iter(bad))):
            SharedEngine(tiny_pipe, **bad)
