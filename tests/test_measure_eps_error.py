"""The measurements behind "Why v2 fails under LMS and PNDM", on the tiny pipeline."""

import torch

from stepviz.engine.schedulers import make_scheduler
from training.measure_eps_error import eps_error_per_t, prompt_states, trajectory


def test_eps_error_rows_compare_with_the_data_blind_guess_and_guidance_one_is_the_caption(tiny_pipe):
    rows = eps_error_per_t(tiny_pipe, count=4, guidance=1.0)
    assert [r["t"] for r in rows][0] == 0 and rows[-1]["t"] == 999
    assert 0.6 < rows[0]["blind"] < 1.4  # at t = 0 the blind guess is ~0 against unit-Gaussian eps
    assert rows[-1]["blind"] < 0.1  # at t = 999 x_t is nearly all eps
    for row in rows:
        assert abs(row["guided"] - row["caption"]) < 1e-6
        x0_error = row["caption"] * row["sigma"] ** 2
        assert abs(row["x0_error_caption"] - x0_error) < 1e-4 * max(1.0, x0_error)


def test_trajectory_x0_hat_is_ddims_own_prediction(tiny_pipe):
    prompt, seed, guidance = "a red circle on a black background", 3, 7.5
    run = trajectory(tiny_pipe, "ddim", prompt, seed, guidance, steps=6)
    scheduler = make_scheduler("ddim", tiny_pipe.scheduler.config)
    scheduler.set_timesteps(6)
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(seed))
    states = torch.cat([prompt_states(tiny_pipe, [""]), prompt_states(tiny_pipe, [prompt])])
    expected = []
    with torch.no_grad():
        for t in scheduler.timesteps:
            uncond, text = tiny_pipe.unet(torch.cat([x, x]), t, states).sample.chunk(2)
            out = scheduler.step(uncond + guidance * (text - uncond), t, x)
            expected.append(out.pred_original_sample)
            x = out.prev_sample
    assert torch.allclose(run["x0_hats"], torch.cat(expected), atol=1e-4)
    assert len(run["changes"]) == 5 and len(run["colours"]) == 6
