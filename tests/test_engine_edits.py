"""Edits mid-run: rewind, fork, guidance changes, scheduler swaps, the watchdog, prompt anatomy."""

import subprocess
import sys

import pytest
import torch

from stepviz import NonFiniteError, Stepper
from stepviz.engine.schedulers import SCHEDULERS

PROMPT = "a red circle on a black background"


def make(pipe, **kwargs):
    base = dict(prompt=PROMPT, seed=3, num_inference_steps=6, guidance_scale=7.5, height=32, width=32)
    base.update(kwargs)
    return Stepper(pipe, **base)


@pytest.mark.parametrize("scheduler", ["euler_a", "ddpm", "dpmpp_2m", "heun"])
def test_rewind_reproduces_the_same_bits(tiny_pipe, scheduler):
    st = make(tiny_pipe, scheduler=scheduler)
    first = [r.latents for r in st.run()]
    st.rewind(2)
    assert len(st.records) == 2 and not st.done
    again = [r.latents for r in st.run()]
    assert len(again) == len(first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    st.rewind(0)
    assert torch.equal(st.run()[-1].latents, first[-1])
    assert [e.action for e in st.log] == ["rewind", "rewind"]


def test_ancestral_rewind_differs_from_a_fresh_draw(tiny_pipe):
    """The generator state is restored: without that, euler_a would draw other noise."""
    st = make(tiny_pipe, scheduler="euler_a")
    final = st.run()[-1].latents
    st.rewind(3)
    st.generator.manual_seed(999)  # disturb it; rewind must restore it again
    st.rewind(3)
    assert torch.equal(st.run()[-1].latents, final)


def test_swap_to_the_same_scheduler_is_a_no_op(tiny_pipe):
    a, b = make(tiny_pipe, scheduler="dpmpp_2m"), make(tiny_pipe, scheduler="dpmpp_2m")
    for _ in range(3):
        a.step(), b.step()
    assert b.set_scheduler("dpmpp_2m") is None
    assert torch.equal(a.run()[-1].latents, b.run()[-1].latents)
    assert b.log[-1].action == "set_scheduler"


def test_ddim_to_euler_swap_continues_the_same_trajectory(tiny_pipe):
    plain = make(tiny_pipe, scheduler="ddim", num_inference_steps=10)
    plain.run()
    swapped = make(tiny_pipe, scheduler="ddim", num_inference_steps=10)
    for _ in range(5):
        swapped.step()
    swapped.set_scheduler("euler")
    swapped.run()
    assert [r.scheduler for r in swapped.records] == ["ddim"] * 5 + ["euler"] * 5
    assert swapped.records[5].family == "sigma"
    a, b = plain.records[-1].pred_original_sample, swapped.records[-1].pred_original_sample
    assert ((a - b).norm() / a.norm()).item() < 1e-4
    entry = swapped.log[-1]
    assert entry.at_step == 5 and entry.detail["new"] == "euler" and entry.detail["family"] == "vp->sigma"


@pytest.mark.parametrize("target", ["lms", "dpmpp_2m", "pndm"])
def test_swap_into_a_multistep_solver_says_its_history_restarts(tiny_pipe, target):
    st = make(tiny_pipe, scheduler="euler", num_inference_steps=8)
    for _ in range(3):
        st.step()
    notice = st.set_scheduler(target)
    assert notice and "history" in notice
    records = st.run()
    assert len(records) >= 8 and all(torch.isfinite(r.latents).all() for r in records)


def test_swap_there_and_back_keeps_the_trajectory(tiny_pipe):
    """DDIM -> Euler -> DDIM on DDIM's grid: the latents are converted VP -> sigma -> VP on the way."""
    plain = make(tiny_pipe, scheduler="ddim", num_inference_steps=10)
    plain.run()
    st = make(tiny_pipe, scheduler="ddim", num_inference_steps=10)
    st.step(), st.step()
    st.set_scheduler("euler")
    st.step(), st.step()
    assert st.records[-1].family == "sigma" and st.latents.std() > 1.5 * plain.records[3].latents.std()
    st.set_scheduler("ddim")
    st.run()
    a, b = plain.records[-1].pred_original_sample, st.records[-1].pred_original_sample
    assert ((a - b).norm() / a.norm()).item() < 1e-4


def test_guidance_raised_from_one_mid_run_changes_the_result(tiny_pipe):
    flat = make(tiny_pipe, guidance_scale=1.0)
    flat.run()
    raised = make(tiny_pipe, guidance_scale=1.0)
    raised.step(), raised.step()
    raised.set_guidance_scale(9.0)
    raised.run()
    assert raised.records[1].guidance_scale == 1.0 and raised.records[2].guidance_scale == 9.0
    assert torch.equal(flat.records[1].latents, raised.records[1].latents)
    assert not torch.allclose(flat.latents, raised.latents)
    # the uncond branch was computed all along, so at scale 1 the combine equals the text branch
    assert torch.allclose(flat.records[0].noise_pred, flat.records[0].noise_pred_text)


def test_guidance_lowered_below_one_and_rewind_restores_it(tiny_pipe):
    st = make(tiny_pipe, guidance_scale=7.5)
    st.step()
    st.set_guidance_scale(0.5)
    st.step()
    assert st.records[-1].guidance_scale == 0.5
    st.rewind(1)
    assert st.guidance_scale == 0.5  # the edit made at step 1 belongs to the state after step 1
    st.rewind(0)
    assert st.guidance_scale == 7.5


def test_fork_gives_independent_branches(tiny_pipe):
    st = make(tiny_pipe, scheduler="euler_a")
    st.step(), st.step()
    twin = st.fork()
    twin.set_guidance_scale(1.0)
    a, b = st.run(), twin.run()
    assert torch.equal(a[1].latents, b[1].latents)
    assert not torch.equal(a[-1].latents, b[-1].latents)
    again = make(tiny_pipe, scheduler="euler_a")
    assert torch.equal(again.run()[-1].latents, a[-1].latents)  # the fork did not disturb the original


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_record_has_a_finite_x0_hat_and_metrics(tiny_pipe, scheduler):
    st = make(tiny_pipe, scheduler=scheduler, num_inference_steps=4)
    records = st.run()
    assert [rec.index for rec in records] == list(range(len(records))) and len(records) == st.total_steps
    for rec in records:
        assert rec.pred_original_sample.shape == rec.latents.shape
        assert torch.isfinite(rec.pred_original_sample).all()
        assert all(v == v for v in rec.floats().values())
        assert rec.norm_guidance > 0 and -1.0 <= rec.cos_uncond_text <= 1.0
        assert rec.num_steps == st.total_steps


def test_x0_hat_of_a_vp_scheduler_follows_the_formula(tiny_pipe):
    st = make(tiny_pipe, scheduler="dpmpp_2m")
    x_t = st.latents
    rec = st.step()
    abar = torch.tensor(rec.alpha_cumprod)
    expected = (x_t - (1 - abar).sqrt() * rec.noise_pred) / abar.sqrt()
    assert torch.allclose(rec.pred_original_sample, expected, atol=1e-5)


def test_watchdog_names_the_unet(tiny_pipe):
    st = make(tiny_pipe)
    st.step()
    hook = tiny_pipe.unet.register_forward_hook(lambda module, args, out: (out[0] * float("nan"),))
    try:
        with pytest.raises(NonFiniteError, match="UNet|unet") as caught:
            st.step()
    finally:
        hook.remove()
    assert caught.value.record.nonfinite == "unet" and caught.value.record.index == 1
    assert st.records[-1].nonfinite == "unet"
    with pytest.raises(NonFiniteError):
        st.step()  # stays stopped
    st.rewind(1)
    assert st.step().nonfinite is None


def test_prompt_anatomy_and_truncation_notice(tiny_pipe):
    st = make(tiny_pipe)
    anatomy = st.prompt_anatomy
    assert anatomy.tokens[0] == "<|startoftext|>" and "red</w>" in anatomy.tokens
    assert anatomy.embedding_shape == (1, 77, 16) and anatomy.notice is None
    long_prompt = " ".join(["red circle"] * 40) + " on a white background"
    st = make(tiny_pipe, prompt=long_prompt)
    assert st.prompt_anatomy.notice and "white background" in st.prompt_anatomy.truncated_text
    assert any("77" in n for n in st.notices)


def test_engine_does_not_import_textual():
    code = "import sys, stepviz, stepviz.engine, stepviz.render.preview; assert 'textual' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_argument_checks_need_no_torch():
    """The CLI validates its arguments before the heavy imports, so bad input answers at once."""
    code = ("import sys; from stepviz.run.settings import RunSettings; RunSettings().validate(); "
            "from stepviz.engine import StepvizInputError, SCHEDULERS; "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
