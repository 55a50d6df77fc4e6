"""What the class sees of a flow run: pictures decoded with shift_factor, 16 channels as tiles, the family's
approx-RGB factors, the status line, the help's formulas, the shift's plot helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_flow_parity import SEED, SIZE, TOKENS, pipe_for

from stepviz import Stepper
from stepviz.engine import flow_schedule
from stepviz.engine.pipeline_facts import NOT_LOOKED_UP, facts_of
from stepviz.engine.noise_scale import to_vp_scale
from stepviz.render.preview import channels_image, decode_images, latent_rgb_factors


def finished(cls_name: str, steps: int = 3, **kwargs) -> Stepper:
    st = Stepper(pipe_for(cls_name), prompt="a red circle", seed=SEED, num_inference_steps=steps, height=SIZE,
                 width=SIZE, max_sequence_length=TOKENS, **kwargs)
    st.run()
    return st


@pytest.mark.parametrize("cls_name", ["StableDiffusion3Pipeline", "FluxPipeline"])
def test_the_picture_is_the_pipelines_picture(cls_name):
    """Decoded as the pipeline decodes: latents / scaling_factor + shift_factor (FLUX.1 unpacked first)."""
    st = finished(cls_name)
    pipe = st.pipe
    theirs = pipe(prompt="a red circle", num_inference_steps=3, generator=torch.Generator("cpu").manual_seed(SEED),
                  height=SIZE, width=SIZE, max_sequence_length=TOKENS, guidance_scale=st.guidance_scale).images[0]
    assert np.array_equal(np.asarray(st.image()), np.asarray(theirs))
    assert np.array_equal(np.asarray(decode_images(pipe, st.latents)[0]), np.asarray(theirs))  # the full preview


def test_sixteen_channels_are_tiled_four_by_four():
    latents = torch.zeros(1, 16, 8, 8)
    image = channels_image(latents, scale=2)
    assert image.size == ((4 * 8 + 3), (4 * 8 + 3))


@pytest.mark.parametrize(("cls_name", "bias"), [("StableDiffusion3Pipeline", (0.2394, 0.2135, 0.1925)),
                                                ("FluxPipeline", (-0.0329, -0.0718, -0.0851))])
def test_approx_rgb_uses_the_familys_published_factors(cls_name, bias):
    pipe = pipe_for(cls_name)
    facts_of(pipe).latent_rgb = NOT_LOOKED_UP  # looked up afresh
    factors, got = latent_rgb_factors(pipe)
    assert tuple(factors.shape) == (16, 3)
    assert got.tolist() == pytest.approx(bias)


def test_flow_latents_are_shown_at_unit_scale():
    x0, eps = torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)
    sigma = 0.5
    x_t = (1 - sigma) * x0 + sigma * eps  # = 0.5: half the picture
    # the same mixture as a VP latent: x_t / sqrt((1 - sigma)^2 + sigma^2)
    assert float(to_vp_scale(x_t, "flow", sigma)[0, 0, 0, 0]) == pytest.approx(0.5 / 0.5**0.5)
    assert torch.equal(to_vp_scale(x_t, "flow", 0.0), x_t) and torch.equal(to_vp_scale(x_t, "flow", 1.0), x_t)


def test_the_status_line_names_the_family_and_its_numbers():
    from stepviz.render.readouts import status_text
    from stepviz.run.session import run_view

    st = finished("StableDiffusion3Pipeline")
    view = run_view("main", st, "tiny-sd3")
    text = status_text(view, st.records[0])
    for part in ("tiny-sd3 (SD3)", "predicts v (flow)", "flow_euler (flow, order 1)", "1-sigma 0.0000", "shift 3"):
        assert part in text, part
    assert view.schedule_shift == 3.0 and view.model_family == "SD3"
    flux = finished("FluxPipeline", negative_prompt="", true_cfg_scale=2.0)
    flux_view = run_view("main", flux, "tiny-flux")
    text = status_text(flux_view, flux.records[0])
    assert "(FLUX.1)" in text and "mu " in text and "guidance 3.5 (embedded), true CFG 2" in text
    assert flux_view.schedule_shift == pytest.approx(np.exp(flux.records[0].mu))


def test_help_gives_the_flow_formulas_beside_vp_and_sigma():
    from stepviz.tui.screens.help import help_text

    for prediction_type in ("epsilon", "flow_prediction"):
        text = help_text(prediction_type)
        for formula in ("x_t = (1 - sigma) x0 + sigma eps", "v = eps - x0", "x0-hat = x_t - sigma v_hat",
                        "eps-hat = x_t +\n(1 - sigma) v_hat", "sigma = s u / (1 + (s - 1) u)",
                        "sqrt(sigma^2 + 1)", "x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps"):
            assert formula in text, (prediction_type, formula)
    assert "`flow_prediction`" in help_text("flow_prediction")


def test_the_shift_and_its_inverse():
    sigmas = [0.1, 0.5, 0.9]
    for s in (1.0, 3.0, 6.0):
        assert flow_schedule.unshifted_sigmas([flow_schedule.shifted(u, s) for u in sigmas], s, None) == \
            pytest.approx(sigmas)
    assert flow_schedule.shifted(0.5, 3.0) == pytest.approx(0.75)  # SD3 spends its steps at high noise


def test_the_scheduler_list_names_the_flow_family():
    from stepviz.engine.schedulers import ALL_SCHEDULERS, family_schedulers

    assert {n for n, i in ALL_SCHEDULERS.items() if i.family == "flow"} == set(family_schedulers("flow"))
    assert "flow_euler" not in family_schedulers("vp") and "ddim" not in family_schedulers("flow")


@pytest.mark.parametrize("cls_name", ["StableDiffusion3Pipeline", "FluxPipeline"])
def test_a_saved_flow_folder_loads_and_steps_bit_exact(tmp_path, cls_name):
    """stepviz loads a local SD3 / FLUX.1 folder (safetensors, offline) and steps it as its pipeline runs it.
    (Loaded weights can give another last bit than the same weights in memory, in diffusers' own pipeline too:
    FLUX.1's transformer, 4e-7; so the reference is the loaded pipeline.)"""
    from test_flow_parity import reference

    from stepviz import load_pipeline

    pipe_for(cls_name).save_pretrained(tmp_path / "model")
    loaded = load_pipeline(tmp_path / "model", device="cpu")
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded).__name__ == cls_name
    st = Stepper(loaded, prompt="a red circle", seed=SEED, num_inference_steps=4, height=SIZE, width=SIZE,
                 max_sequence_length=TOKENS)
    st.run()
    assert (st.latents - reference(loaded, dict(guidance_scale=st.guidance_scale))).abs().max().item() == 0.0


def test_the_exported_schedule_plot_draws_each_compared_runs_schedule(tiny_pipe):
    """schedule.png of a lesson with compare runs (the-shift: shift 1 / 3 / 6; eps-v-flow: VP runs beside): one
    labelled line per run, a VP run at the flow sigma of the same x0 : eps mix, every text >= 18 px on a slide."""
    import matplotlib
    from test_plots_for_a_room import text_heights

    from stepviz.engine.flow_schedule import scheduler_with_shift
    from stepviz.render import plots

    st = finished("StableDiffusion3Pipeline", steps=4)
    shift_1 = finished("StableDiffusion3Pipeline", steps=4, scheduler=scheduler_with_shift(st.pipe, None, 1.0))
    eps = Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=4, height=32, width=32, scheduler="ddim")
    eps.run()
    branches = {"shift 1": shift_1.records, "eps, DDIM": eps.records}
    with matplotlib.rc_context(plots.SLIDE.style()):
        figure = plots.build_schedule_figure(st.records, branches, size=plots.SLIDE)
        heights = text_heights(figure)
    top = figure.axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in top.get_lines()}
    assert lines["this run, σ, shift 3"] == [r.sigma for r in st.records]
    assert lines["shift 1"] == [r.sigma for r in shift_1.records]  # the label says the shift: not twice
    assert lines["shift 1"] != lines["this run, σ, shift 3"]
    vp = lines["eps, DDIM (vp: σ/(1+σ), the same x0 : ε mix)"]
    assert vp == pytest.approx([r.sigma / (1 + r.sigma) for r in eps.records])
    assert [text for text in top.get_legend().get_texts() if "DDIM" in text.get_text()]
    assert min(h for _, h in heights) >= 18, sorted(heights, key=lambda item: item[1])[:3]


def test_the_exported_schedule_plot_shows_sigma_with_and_without_the_shift():
    from stepviz.render.plots import build_schedule_figure

    st = finished("StableDiffusion3Pipeline", steps=4)
    figure = build_schedule_figure(st.records)
    top = figure.axes[0]
    assert "Flow schedule" in top.get_title()
    with_shift, without = (line.get_ydata() for line in top.get_lines()[:2])
    assert list(with_shift) == [r.sigma for r in st.records]
    assert all(u <= s + 1e-9 for u, s in zip(without, with_shift))  # the shift (3) raises every sigma
    assert without[1] == pytest.approx(with_shift[1] / (3 - 2 * with_shift[1]))
