"""SharedEngine: sessions of one model whose UNet calls are batched; solo mode bit-exact; errors stay home."""

import threading

import pytest
import torch

import stepviz
from stepviz import NonFiniteError, Stepper, StepvizInputError
from stepviz.run.shared_engine import TOLERANCE, EngineClosedError, SharedEngine
from stepviz.run.shared_requests import UNetCall, batched_unet_call
from stepviz.run.unet_trace import UNetTraces, traced_kinds

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


def test_lms_sessions_share_their_coefficients_and_keep_their_bits(tiny_pipe):
    lms = [{**settings(i), "scheduler": "lms"} for i in range(3)]
    with SharedEngine(tiny_pipe, max_batch_size=1) as engine:
        sessions = [engine.stepper(**kw) for kw in lms]
        in_threads(*(s.run for s in sessions))
        # one schedule (6 steps, orders 1-4): 1 + 2 + 3 + 4 + 4 + 4 integrals, computed once for all three
        assert len(engine.lms_coefficients) == 18
        for session, kw in zip(sessions, lms):
            assert torch.equal(session.latents, Stepper(tiny_pipe, **kw).run()[-1].latents)
            assert "get_lms_coefficient" not in vars(session.scheduler)  # nothing of the engine's in a snapshot
        sessions[0].rewind(3)  # its snapshot's scheduler steps on as a plain one would
        sessions[0].run()
        assert torch.equal(sessions[0].latents, Stepper(tiny_pipe, **lms[0]).run()[-1].latents)


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


def test_a_call_that_fails_in_a_batch_is_retried_alone_and_fails_only_its_session(toy_pipe, monkeypatch):
    # The toy's UNet, made to refuse a sample it finds too large: the session whose latents are huge makes its
    # batch raise; each call of that batch is then retried alone, so only that session gets the error. Eager
    # batches (trace=False): a trace would bake in the `if` on the first batch's values.
    forward, failed_rows = toy_pipe.unet.forward, []

    def picky(sample, *args, **kwargs):
        if bool((sample.abs() > 1e4).any()):
            failed_rows.append(int(sample.shape[0]))
            raise ValueError("the sample is too large")
        return forward(sample, *args, **kwargs)

    monkeypatch.setattr(toy_pipe.unet, "forward", picky)
    with SharedEngine(toy_pipe, max_batch_size=32, max_wait_ms=50, workers=1, trace=False) as engine:
        sessions = [engine.stepper(**settings(i)) for i in range(3)]
        bad = sessions[1]
        bad.latents = torch.full_like(bad.latents, 1e6)
        results = in_threads(*(s.run for s in sessions))
        stats = engine.stats
    monkeypatch.undo()
    # the batch that failed held the three sessions' calls (2 rows each); the bad call failed again alone
    assert failed_rows == [6, 2]
    assert isinstance(results[1], ValueError) and "too large" in str(results[1])
    assert bad.records == [] and bad.stopped is None
    assert stats.requests == 3 + 2 * 5  # the first step's three calls, then the healthy sessions' other five
    assert stats.rows_per_call > 2  # after the retry the healthy sessions went on in batches
    for i in (0, 2):
        assert sessions[i].done and not isinstance(results[i], Exception)
        difference = float((sessions[i].latents - solo_final(toy_pipe, i)).abs().max())
        assert difference <= TOLERANCE["toy"], (SCHEDULERS[i], difference)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_a_traced_batch_gives_the_bits_of_the_eager_batch_at_any_batch_size(tiny_pipe, family):
    from tiny import tiny_sdxl_pipeline

    pipe = tiny_pipe if family == "sd" else tiny_sdxl_pipeline()
    unet, generator = pipe.unet, torch.Generator().manual_seed(0)

    def call(i: int) -> UNetCall:
        rows = 2 if i % 2 else 1
        added = None if family == "sd" else {"text_embeds": torch.randn(rows, 8, generator=generator),
                                             "time_ids": torch.randn(rows, 6, generator=generator)}
        return UNetCall(torch.randn(rows, 4, 4, 4, generator=generator), torch.tensor(100.0 * i + 1),
                        torch.randn(rows, 77, unet.config.cross_attention_dim, generator=generator), added)

    traces = UNetTraces()
    with torch.no_grad():
        for sessions in (3, 5, 2):  # traced on the first batch (5 rows), then run on 8 and 3 rows
            calls = [call(i) for i in range(sessions)]
            eager, traced = batched_unet_call(unet, calls), batched_unet_call(unet, calls, traces)
            assert [t.shape for t in traced] == [e.shape for e in eager]
            assert all(torch.equal(t, e) for t, e in zip(traced, eager)), sessions
    assert traced_kinds(unet) == 1
    with torch.no_grad():  # turned off: no trace, the eager call
        assert torch.equal(batched_unet_call(unet, calls, UNetTraces(enabled=False))[0], eager[0])


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
