"""The Ray Serve engine (stepviz[cluster]): sessions whose batched UNet calls run on a local Ray instance land
within the stated tolerance of solo runs; without ray, stepviz imports and `--engine ray` is refused in one line."""

import subprocess
import sys
import threading
import time

import pytest
import torch

import stepviz
from stepviz import StepvizInputError
from stepviz.run.shared_requests import TOLERANCE

RUNS = [dict(prompt="a red circle on a black background", seed=1, scheduler="ddim", guidance_scale=7.5),
        dict(prompt="a blue square on a white background", seed=2, scheduler="euler", guidance_scale=1.0),
        dict(prompt="a green triangle on a black background", seed=3, scheduler="dpmpp_2m", guidance_scale=3.0)]


def test_sessions_through_a_local_ray_serve_deployment_match_their_solo_runs():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.serve")
    from stepviz.run.settings import RunSettings
    from stepviz.tui.shared_host import make_engine

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # small: one replica on one CPU
    try:
        engine = make_engine(RunSettings(model="toy", steps=4), solo=False, engine="ray")
        try:
            sessions = [engine.stepper(**run, num_inference_steps=4) for run in RUNS]
            sessions.append(engine.stepper(**RUNS[0], num_inference_steps=4, capture_attention=True))
            threads = [threading.Thread(target=session.run) for session in sessions]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=300)
            stats = engine.stats
        finally:
            engine.close()
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
    pipe = engine.pipe
    for run, session in zip(RUNS, sessions):
        solo = stepviz.Stepper(pipe, **run, num_inference_steps=4)
        solo.run()
        assert session.done and len(session.records) == 4
        assert float((session.latents - solo.latents).abs().max()) <= TOLERANCE["toy"], run["scheduler"]
    # attention capture stays in this process, alone: its maps and its bits are a plain Stepper's
    capturing, plain = sessions[-1], stepviz.Stepper(pipe, **RUNS[0], num_inference_steps=4, capture_attention=True)
    plain.run()
    assert torch.equal(capturing.latents, plain.latents)
    assert torch.equal(capturing.records[-1].cross_attention, plain.records[-1].cross_attention)
    # one request of two rows per step (at guidance <= 1 too: the two one-row calls travel together), the
    # capturing session's four here
    assert stats.requests == 4 + 4 + 4 + 4
    assert stats.rows == 8 + 8 + 8 + 8
    assert stats.largest_batch > 2  # the deployment batched calls of several sessions
    print(f"Ray Serve test: {time.perf_counter() - started:.0f} s, rows per UNet call {stats.rows_per_call:.1f}")


def test_without_ray_stepviz_imports_and_engine_ray_is_refused_in_one_line():
    blocked = ("import sys; sys.modules['ray'] = None\n"
               "import stepviz, stepviz.cli, stepviz.tui.serve, stepviz.tui.shared_host, stepviz.run.cluster\n"
               "from stepviz.tui.serve import check_engine\n"
               "try:\n    check_engine('ray', shared=True)\nexcept stepviz.StepvizInputError as exc:\n"
               "    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "--engine ray needs Ray Serve: pip install 'stepviz[cluster]'"


def test_engine_option_needs_shared_and_a_known_place():
    from stepviz.tui.serve import check_engine

    check_engine("local", shared=False)
    with pytest.raises(StepvizInputError, match="--engine ray is allowed only with --shared"):
        check_engine("ray", shared=False)
    with pytest.raises(StepvizInputError, match="'gpu-farm' is not allowed: use local, ray"):
        check_engine("gpu-farm", shared=True)
