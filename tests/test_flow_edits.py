"""Edits on a flow run (SD3, FLUX.1) work as on SD: rewind, fork, guidance mid-run, swaps among flow schedulers;
a swap between the flow family and the VP/sigma ones is refused in one line saying why."""

from __future__ import annotations

import pytest
import torch
from test_flow_parity import SIZE, TOKENS, pipe_for
from tiny import tiny_pipeline

from stepviz import Stepper
from stepviz.engine.checks import StepvizInputError

STEPS = 6


def flow_run(cls_name="StableDiffusion3Pipeline", **kwargs) -> Stepper:
    kwargs = {"guidance_scale": 7.0, **kwargs}
    return Stepper(pipe_for(cls_name), prompt="a red circle", seed=5, num_inference_steps=STEPS, height=SIZE,
                   width=SIZE, max_sequence_length=TOKENS, **kwargs)


def test_rewind_replays_the_same_bits():
    st = flow_run()
    final = st.run()[-1].latents
    st.rewind(2)
    assert len(st.records) == 2
    assert torch.equal(st.run()[-1].latents, final)


def test_a_fork_with_other_guidance_leaves_the_run_alone():
    st = flow_run()
    for _ in range(2):
        st.step()
    twin = st.fork()
    twin.set_guidance_scale(1.0)  # SD3: no CFG from here on, the prompt's call alone
    twin.run()
    final = st.run()[-1].latents
    assert all(r.noise_pred_from == "text" for r in twin.records[2:])
    assert all(r.noise_pred_from == "cfg" for r in st.records)
    assert not torch.equal(twin.latents, final)
    assert torch.equal(final, flow_run().run()[-1].latents)  # the original is the unedited run


def test_flux_guidance_is_embedded_and_true_cfg_can_change_mid_run():
    st = flow_run("FluxPipeline", guidance_scale=3.5, negative_prompt="blurry")
    st.step()
    assert st.records[0].noise_pred_from == "text"  # embedded guidance: the prompt's call drives
    st.set_true_cfg_scale(4.0)
    record = st.step()
    assert record.noise_pred_from == "cfg" and record.true_cfg_scale == 4.0 and record.cfg_scale == 4.0
    torch.testing.assert_close(record.noise_pred, record.noise_pred_uncond + 4.0 * (
        record.noise_pred_text - record.noise_pred_uncond), rtol=0, atol=0)
    st.rewind(1)
    assert st.true_cfg_scale == 4.0  # the scale set before step 2 is part of the state after step 1
    st.rewind(0)
    assert st.true_cfg_scale == 1.0


def test_a_swap_to_dpm_solver_continues_the_euler_path():
    """DPM-Solver++ restarts at first order after a swap, and its first-order step on the flow path is Euler's:
    x' = (sigma'/sigma) x_t + (1 - sigma'/sigma) x0_hat = x_t + (sigma' - sigma) v_hat. (Its transformer reads
    t = int(1000 sigma), as diffusers' solver gives it, so v_hat itself differs a little from Euler's.)"""
    euler = flow_run()
    euler.run()
    st = flow_run()
    for _ in range(3):
        st.step()
    st.set_scheduler("flow_dpmpp_2m")
    record = st.step()
    assert record.scheduler == "flow_dpmpp_2m" and record.sigma == euler.records[3].sigma
    x_t = euler.records[2].latents
    euler_step = x_t + (record.sigma_next - record.sigma) * record.noise_pred
    torch.testing.assert_close(record.latents, euler_step, rtol=0, atol=1e-5)
    assert record.timestep == int(euler.records[3].timestep)
    st.run()
    assert len(st.records) == STEPS and st.records[-1].sigma_next == 0.0
    assert bool(torch.isfinite(st.latents).all())


def test_a_swap_to_unipc_and_back_runs_on_the_same_sigmas():
    st = flow_run("FluxPipeline", guidance_scale=3.5)
    sigmas = [float(s) for s in st.scheduler.sigmas]
    st.step()
    st.set_scheduler("flow_unipc")
    st.step()
    st.set_scheduler("flow_euler")
    st.run()
    assert [r.sigma for r in st.records] == pytest.approx(sigmas[:-1], abs=1e-6)
    assert [r.scheduler for r in st.records][:3] == ["flow_euler", "flow_unipc", "flow_euler"]


@pytest.mark.parametrize("name", ["ddim", "euler", "dpmpp_2m"])
def test_a_swap_from_flow_to_vp_or_sigma_is_refused_saying_why(name):
    st = flow_run()
    st.step()
    with pytest.raises(StepvizInputError, match="different target and path") as caught:
        st.set_scheduler(name)
    assert "\n" not in str(caught.value)
    assert st.scheduler_name == "flow_euler" and len(st.log) == 0  # nothing changed
    with pytest.raises(StepvizInputError, match="different target and path"):
        flow_run(scheduler=name)


def test_a_flow_scheduler_on_an_sd_model_is_refused_saying_why():
    pipe = tiny_pipeline()
    with pytest.raises(StepvizInputError, match="different target and path"):
        Stepper(pipe, prompt="a red circle", num_inference_steps=3, scheduler="flow_euler")
    st = Stepper(pipe, prompt="a red circle", num_inference_steps=3)
    st.step()
    with pytest.raises(StepvizInputError, match="different target and path"):
        st.set_scheduler("flow_euler")


@pytest.mark.parametrize("cls_name", ["StableDiffusion3Pipeline", "FluxPipeline"])
def test_a_scheduler_argument_that_is_no_scheduler_is_refused_naming_the_flow_ones(cls_name):
    with pytest.raises(StepvizInputError, match=r"scheduler=42 is not allowed: give a name \(flow_euler, "):
        flow_run(cls_name, scheduler=42)


def test_an_unknown_capture_value_is_refused_on_a_flow_model_too():
    with pytest.raises(StepvizInputError, match="capture_attention='yes'"):
        flow_run(capture_attention="yes")


def test_naming_the_flow_euler_scheduler_gives_the_pipelines_own_run():
    assert torch.equal(flow_run(scheduler="flow_euler").run()[-1].latents, flow_run().run()[-1].latents)


def test_norms_are_of_the_velocity_branches():
    record = flow_run().step()
    assert record.prediction_type == "flow_prediction"
    assert record.norm_guidance == pytest.approx(float((record.noise_pred_text - record.noise_pred_uncond).norm()))
    from stepviz.engine.prediction import prediction_for

    assert prediction_for(record.prediction_type).name == "v (flow)"


def _sd3_with_transformer_channels(in_channels: int):
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline
    from tiny_flow import tiny_sd3_components

    components = tiny_sd3_components()
    components["transformer"] = SD3Transformer2DModel(sample_size=8, patch_size=1, in_channels=in_channels,
                                                      out_channels=16, num_layers=1, attention_head_dim=8,
                                                      num_attention_heads=2, joint_attention_dim=32,
                                                      caption_projection_dim=16, pooled_projection_dim=32,
                                                      pos_embed_max_size=16).eval()
    return StableDiffusion3Pipeline(**components)


def test_an_sd3_inpainting_transformer_runs_inpaint_only():
    with pytest.raises(StepvizInputError, match="takes 33.*modes that fit it: inpaint") as caught:
        Stepper(_sd3_with_transformer_channels(33), prompt="a red circle", num_inference_steps=2)
    assert "\n" not in str(caught.value)


def test_an_sd3_transformer_with_other_input_channels_is_refused_in_one_line():
    with pytest.raises(StepvizInputError, match="20 input channels.*takes 16 \\(or 33 for inpaint\\)") as caught:
        Stepper(_sd3_with_transformer_channels(20), prompt="a red circle", num_inference_steps=2)
    assert "\n" not in str(caught.value)
