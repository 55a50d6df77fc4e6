"""The toy world's generator, pixel checker and tokenizer."""

import numpy as np
import pytest
from scipy import ndimage

from stepviz.toy import checker, world
from training.tokenizer import caption_words, write_tokenizer


def test_caption_round_trip():
    text = world.caption("red", "circle", "black")
    assert text == "a red circle on a black background"
    assert world.parse_caption(text) == ("red", "circle", "black")
    assert len(world.all_captions()) == len(world.COLOURS) * len(world.SHAPES) * len(world.BACKGROUNDS)
    with pytest.raises(ValueError, match="expected"):
        world.parse_caption("a red circle")
    with pytest.raises(ValueError, match="unknown word"):
        world.parse_caption("a pink circle on a black background")


def test_scene_is_deterministic_and_consistent():
    a = world.draw_scene("blue", "triangle", "white", seed=7)
    b = world.draw_scene("blue", "triangle", "white", seed=7)
    c = world.draw_scene("blue", "triangle", "white", seed=8)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8
    assert a.mask.shape == (64, 64) and a.mask.dtype == bool and a.mask.any()
    assert a.depth.shape == (64, 64) and a.depth.dtype == np.float32
    # the shape is nearer (larger depth value) than the background everywhere
    far = ~ndimage.binary_dilation(a.mask, iterations=2)
    assert a.depth[a.mask].min() > a.depth[far].max()
    # pixels under the mask have the shape's colour, outside it the background's
    assert np.abs(a.image[a.mask].astype(int) - world.COLOURS["blue"]).mean() < 30
    assert np.abs(a.image[~a.mask].astype(int) - world.BACKGROUNDS["white"]).mean() < 30
    assert world.random_scene(np.random.default_rng(3), size=32).image.shape == (32, 32, 3)


def test_checker_accuracy_on_generated_scenes():
    rng = np.random.default_rng(2024)
    scenes = [world.random_scene(rng) for _ in range(300)]
    found = [checker.classify(s.image) for s in scenes]
    for k, name in enumerate(("colour", "shape", "background")):
        accuracy = np.mean([f[k] == getattr(s, name) for f, s in zip(found, scenes)])
        assert accuracy >= 0.98, (name, accuracy)


def _painted(corners_xy: list[np.ndarray], fg=(30, 180, 40), bg=(8, 8, 8), size=64) -> np.ndarray:
    """A picture of the union of polygons (each an array of (x, y) corners), 4x supersampled."""
    from matplotlib.path import Path

    fine = (np.arange(size * 4) + 0.5) / 4
    points = np.stack(np.meshgrid(fine, fine), axis=-1).reshape(-1, 2)
    inside = np.zeros(len(points), dtype=bool)
    for corners in corners_xy:
        inside |= Path(corners).contains_points(points)
    cover = inside.reshape(size, 4, size, 4).mean(axis=(1, 3))[..., None]
    return np.round(cover * np.array(fg) + (1 - cover) * np.array(bg)).astype(np.uint8)


def _star(centre, radius, inner, rotation, points=4):
    """Corners of a star with `points` tips at `radius` and notches at `inner` * radius (inner=1: a regular
    2*points-gon)."""
    angles = rotation + np.pi * np.arange(2 * points) / points
    radii = np.where(np.arange(2 * points) % 2 == 0, radius, inner * radius)
    return np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)


def _regular(centre, radius, corners, rotation):
    angles = rotation + 2 * np.pi * np.arange(corners) / corners
    return np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], axis=1)


WRONG_DRAWINGS = {
    "pentagon": lambda c, r, a: [_regular(c, r, 5, a)],
    "hexagon": lambda c, r, a: [_regular(c, r, 6, a)],
    "four-pointed star": lambda c, r, a: [_star(c, r, 0.5, a)],
    "square with a notch": lambda c, r, a: [np.concatenate([_regular(c, r, 4, a)[:3], [c], _regular(c, r, 4, a)[3:]])],
    "blob of three discs": lambda c, r, a: [_regular((c[0] + dx * r, c[1] + dy * r), r * 0.55, 24, 0)
                                            for dx, dy in ((-0.45, 0.2), (0.35, 0.3), (0.1, -0.5 + 0.1 * a))],
}


@pytest.mark.parametrize("name", list(WRONG_DRAWINGS))
def test_checker_names_no_shape_for_wrong_drawings(name):
    rng = np.random.default_rng(7)
    for _ in range(12):
        radius = rng.uniform(10.5, 19.0)
        centre = rng.uniform(radius + 2, 62 - radius, size=2)
        image = _painted(WRONG_DRAWINGS[name](centre, radius, rng.uniform(0, 2 * np.pi)))
        found = checker.inspect(image)
        assert found["colour"] == "green" and found["blob_area"] > 150
        assert found["shape"] is None, (name, found["template_iou"], found["solidity"])
        assert not checker.check(image, "a green square on a black background")["shape_ok"]


def test_checker_measures_the_template_fit():
    scene = world.draw_scene("red", "triangle", "white", seed=3)
    found = checker.inspect(scene.image)
    assert set(found["template_iou"]) == {"circle", "square", "triangle", "pentagon", "hexagon"}
    assert found["template_iou"]["triangle"] >= 0.95 > 0.8 > found["template_iou"]["circle"]
    assert found["solidity"] > 0.97 and found["shape"] == "triangle"
    # a square drawn the world's way, but squashed to a 2:1 rectangle, fits no template well enough
    rectangle = _painted([np.array([[14, 24], [50, 24], [50, 42], [14, 42]])])
    assert checker.classify(rectangle)[1] is None


@pytest.mark.parametrize("seed", range(6))
def test_cell_box_covers_the_shape_with_a_margin_in_whole_cells(seed):
    scene = world.draw_scene("green", "triangle", "black", seed=seed)
    hole = world.cell_box_around(scene.mask, margin=4, cell=8)
    ys, xs = np.nonzero(hole)
    assert hole.sum() == (ys.max() + 1 - ys.min()) * (xs.max() + 1 - xs.min())  # one box
    assert {ys.min() % 8, xs.min() % 8, (ys.max() + 1) % 8, (xs.max() + 1) % 8} == {0}
    grown = ndimage.binary_dilation(scene.mask, iterations=4)  # 4 px in every direction (a diamond)
    assert hole[grown].all()


def test_check_reports_each_part():
    scene = world.draw_scene("yellow", "square", "black", seed=1)
    result = checker.check(scene.image, "a yellow circle on a white background")
    assert result["colour_ok"] and not result["shape_ok"] and not result["background_ok"]
    assert result["found"] == {"colour": "yellow", "shape": "square", "background": "black"}
    blank = np.zeros((64, 64, 3), dtype=np.uint8)
    assert checker.classify(blank) == (None, None, "black")


def test_tokenizer_has_one_token_per_caption_word(tmp_path):
    tokenizer = write_tokenizer(tmp_path)
    assert {"vocab.json", "merges.txt"} <= {p.name for p in tmp_path.iterdir()}
    assert tokenizer.model_max_length == 77
    for word in caption_words():
        assert tokenizer.tokenize(word) == [word + "</w>"]
    ids = tokenizer("a red circle on a black background", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == tokenizer.bos_token_id and ids[8] == tokenizer.eos_token_id
    unknown = tokenizer("a zebra, 42 élan!").input_ids  # unknown words split into bytes, no error
    assert unknown[0] == tokenizer.bos_token_id and len(unknown) > 4


def test_diy_inpaint_cases_ask_for_something_new_in_a_hole_around_the_old_shape():
    from training.evaluate_diy_inpaint import SETS, diy_cases

    cases = diy_cases()
    assert [c.placement for c in cases] == [s for s in SETS for _ in range(18)]
    for case in cases:
        assert case.hole[case.scene.mask].all() and case.shape != case.scene.shape
        assert (case.colour == case.scene.colour) == (case.placement == "new shape")
        assert case.prompt == world.caption(case.colour, case.shape, case.scene.background)
        if case.placement == "empty":
            assert len(np.unique(case.scene.image.reshape(-1, 3), axis=0)) == 1
