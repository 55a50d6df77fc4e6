"""Where the last step lands: DDIM and PNDM stop at abar(0) = final_alpha_cumprod, sigma schedulers at 0."""

import pytest

from stepviz import Stepper


@pytest.mark.parametrize("name", ["ddim", "pndm"])
def test_ddim_like_last_step_records_its_real_noise_level(tiny_pipe, name):
    stepper = Stepper(tiny_pipe, prompt="a red circle on a black background", num_inference_steps=3, scheduler=name)
    stepper.run()
    abar0 = float(stepper.scheduler.alphas_cumprod[0])  # set_alpha_to_one = false, as Stable Diffusion
    assert abar0 < 1.0
    assert stepper.records[-1].sigma_next == pytest.approx(((1 - abar0) / abar0) ** 0.5)
    assert stepper.records[-1].sigma_next > 0.0
    assert stepper.records[0].sigma_next == pytest.approx(stepper.records[1].sigma)


@pytest.mark.parametrize("name", ["euler", "dpmpp_2m", "ddpm"])
def test_other_schedulers_end_at_sigma_zero(tiny_pipe, name):
    stepper = Stepper(tiny_pipe, prompt="a red circle on a black background", num_inference_steps=3, scheduler=name)
    stepper.run()
    assert stepper.records[-1].sigma_next == 0.0
