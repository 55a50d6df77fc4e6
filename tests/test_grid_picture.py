"""grid.png reads on a slide: 16 seeds x 4 scales fit 1920x1080 without shrinking, labels at least 18 px tall."""

from PIL import Image

from stepviz.export.seed_grid import Cell, counts, grid_image
from stepviz.render.strip import LABEL, label_font


def test_sixteen_seeds_fit_a_slide_with_labels_a_room_reads():
    seeds, scales = list(range(16)), (1.0, 3.0, 7.5, 15.0)
    right = {"colour_ok": True, "shape_ok": True, "background_ok": False}
    cells = [Cell(seed, scale, Image.new("RGB", (64, 64), (200, 30, 30)), {}, right) for seed in seeds
             for scale in scales]
    picture = grid_image(cells, seeds, scales, "'a red circle on a black background', 25 steps", counts(cells, scales))
    width, height = picture.size
    assert width <= 1920 and height <= 1080, picture.size
    font = label_font(LABEL)
    for label in ("seed 15", "s = 7.5", "16/16"):
        left, top, right_edge, bottom = font.getbbox(label)
        assert bottom - top >= 18, (label, bottom - top)
