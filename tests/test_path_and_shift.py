"""A run's path against the straight line (engine/path_geometry.py, the lessons' path_distance and path.png) and a
lesson's `shift` for flow models (the-shift, eps-v-flow)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from test_flow_parity import SIZE, TOKENS, pipe_for

from stepviz.engine.checks import StepvizInputError
from stepviz.engine.flow_schedule import shifted
from stepviz.engine.path_geometry import distance_from_line, path_distances
from stepviz.lessons.shipped import ScenarioError
from stepviz.run.lesson_file import load_lesson
from stepviz.run.settings import RunSettings


def test_distance_from_the_line():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert distance_from_line((a + b) / 2, a, b) == pytest.approx(0.0)
    assert distance_from_line(a + 0.3 * (b - a), a, b) == pytest.approx(0.0, abs=1e-12)
    # half-way along the quarter circle from a to b: cos 45 a + sin 45 b, 0.2071 of the chord's length off it
    assert distance_from_line((a + b) / math.sqrt(2), a, b) == pytest.approx((math.sqrt(2) - 1) / 2)
    assert distance_from_line(a + 2 * (b - a), a, b) == pytest.approx(1.0)  # beyond the end: from the end point


def run_of(family: str, xs) -> SimpleNamespace:
    records = [SimpleNamespace(family=family, latents=x, sigma_next=0.0) for x in xs[1:]]
    return SimpleNamespace(records=records, run_inputs=SimpleNamespace(latents=xs[0]))


def test_a_flow_path_with_a_steady_x0_is_straight_and_a_vp_path_is_an_arc():
    generator = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 4, 8, 8, generator=generator)
    sigmas = torch.linspace(1, 0, 11)
    flow = path_distances(run_of("flow", [(1 - s) * x0 + s * eps for s in sigmas]))
    assert max(flow) < 1e-6
    vp = path_distances(run_of("vp", [torch.cos(s * math.pi / 2) * x0 + torch.sin(s * math.pi / 2) * eps
                                      for s in sigmas]))
    assert vp[-1] == 0.0 and 0.15 < vp[4] < 0.25  # half-way along an arc between two near-orthogonal noises


@pytest.fixture(scope="module")
def sd3():
    return pipe_for("StableDiffusion3Pipeline")


@pytest.mark.parametrize("shift", [1.0, 6.0])
def test_a_shift_moves_the_flow_schedule(sd3, shift):
    from stepviz import Stepper
    from stepviz.engine.flow_schedule import scheduler_with_shift

    kwargs = dict(prompt="a red circle", seed=3, num_inference_steps=4, height=SIZE, width=SIZE,
                  max_sequence_length=TOKENS)
    stepper = Stepper(sd3, scheduler=scheduler_with_shift(sd3, None, shift), **kwargs)
    own = Stepper(sd3, **kwargs)  # the config's shift 3
    assert stepper.step().shift == shift and own.step().shift == 3.0
    sigmas, sd3_sigmas = ([float(x) for x in st.scheduler.sigmas[:-1]] for st in (stepper, own))
    if shift == 1.0:  # no shift: the even schedule, every step the same size
        steps = [a - b for a, b in zip(sigmas, sigmas[1:])]
        assert max(steps) - min(steps) < 1e-6
    else:  # a larger shift stays at high noise longer: every sigma after the first above shift 3's
        assert all(a > b for a, b in zip(sigmas[1:], sd3_sigmas[1:]))
        assert sigmas[1] == pytest.approx(shifted(sd3_sigmas[1] / (3.0 - 2.0 * sd3_sigmas[1]), shift), abs=1e-2)
    swapped = scheduler_with_shift(sd3, "flow_dpmpp_2m", shift)  # a named flow scheduler takes it as flow_shift
    assert swapped.config.flow_shift == shift


def test_a_lesson_run_with_a_shift():
    import stepviz

    stepper = RunSettings(model="toy-flow", seed=1, steps=4, shift=6.0).make_stepper(stepviz.load_pipeline("toy-flow"))
    record = stepper.step()
    assert record.shift == 6.0  # 4 steps: the even schedule is at u = 2/3 after the first
    assert record.sigma_next == pytest.approx(shifted(2 / 3, 6.0), abs=0.005)


def test_shift_is_refused_for_a_vp_model_and_out_of_range(tiny_pipe, tmp_path):
    with pytest.raises(StepvizInputError, match="not a flow model"):
        RunSettings(shift=3.0, steps=2).make_stepper(tiny_pipe)
    with pytest.raises(StepvizInputError, match="shift=0"):
        RunSettings(shift=0, steps=2).validate()
    lesson = tmp_path / "bad.toml"
    lesson.write_text('model = "toy-flow"\nsteps = 4\n\n[[compare]]\nlabel = "no shift"\nshift = -1\n',
                      encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"shift \(line 6\)"):
        load_lesson(lesson)
    lesson.write_text('model = "toy-flow"\nsteps = 4\n\n[[compare]]\nlabel = "shift 6"\nshift = 6\n',
                      encoding="utf-8")
    assert load_lesson(lesson).compare[0].overrides == {"shift": 6.0}
