"""schedule.png and norms.png of an export read from the back of a room: 1920x1080 (a 16:9 slide) and every
text, measured as rendered, at least 18 px tall."""

from __future__ import annotations

import matplotlib
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image

from stepviz import Stepper
from stepviz.render import plots


@pytest.fixture(scope="module")
def records(tiny_pipe):
    st = Stepper(tiny_pipe, prompt="a red circle", num_inference_steps=6, height=32, width=32, scheduler="ddim")
    for _ in range(3):
        st.step()
    st.set_guidance_scale(3.0)
    return st.run()


def text_heights(figure) -> list[tuple[str, float]]:
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    found = []
    for text in figure.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        upright = abs(text.get_rotation() % 180) < 45
        found.append((text.get_text(), box.height if upright else box.width))
    return found


def build_path_figure(records, size):
    from stepviz.render.path_plot import build_path_figure

    return build_path_figure([("this run", records, [0.1] * len(records)), ("other", records, [0.2] * len(records))],
                             size)


@pytest.mark.parametrize("build", [plots.build_schedule_figure, plots.build_norms_figure, build_path_figure])
def test_every_text_of_an_exported_plot_is_at_least_18_px(records, build):
    with matplotlib.rc_context(plots.SLIDE.style()):
        figure = build(records, size=plots.SLIDE)
        heights = text_heights(figure)
    assert heights and min(h for _, h in heights) >= 18, sorted(heights, key=lambda item: item[1])[:3]


def test_exported_plots_are_a_16_9_slide(records, tmp_path):
    plots.norms_figure(records, tmp_path / "norms.png", size=plots.SLIDE)
    plots.schedule_figure(records, tmp_path / "schedule.png", size=plots.SLIDE)
    for name in ("norms.png", "schedule.png"):
        with Image.open(tmp_path / name) as picture:
            assert picture.size == (1920, 1080)
