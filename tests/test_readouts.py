"""Readouts that count steps say what the screen can show: visited noise levels never outnumber the grid."""

import pytest

from stepviz import Stepper
from stepviz.render.readouts import grid_points_visited, visited_timesteps

SIZE = dict(height=32, width=32)


@pytest.mark.parametrize("scheduler, steps", [("pndm", 6), ("heun", 4), ("ddim", 5)])
def test_each_noise_level_counts_once_however_often_a_scheduler_visits_it(tiny_pipe, scheduler, steps):
    st = Stepper(tiny_pipe, prompt="a red circle", seed=0, num_inference_steps=steps, scheduler=scheduler, **SIZE)
    counts = []
    while not st.done:
        st.step()
        counts.append(grid_points_visited(st.grid, visited_timesteps(st.records)))
    assert len(st.grid) == steps  # the first-order grid: one noise level per inference step
    assert counts[-1] == steps  # all visited at the end, whatever the number of model calls
    assert all(b - a in (0, 1) for a, b in zip([0] + counts, counts))  # never more than one new level a call
    if scheduler == "ddim":
        assert counts == list(range(1, steps + 1))
    else:  # PNDM's warm-up and Heun's second evaluation repeat a timestep: more calls than levels
        assert len(counts) > steps


def test_a_timestep_between_grid_points_is_not_a_grid_point():
    from types import SimpleNamespace as Record

    records = [Record(timestep=t) for t in (999.0, 950.5, 900.0)]
    assert grid_points_visited([999.0, 900.0, 800.0], visited_timesteps(records)) == 2
