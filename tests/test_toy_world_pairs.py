"""Version 3's toy world: two shapes to a picture, their captions, the checker that judges them, the tokenizer
that knows their words."""

import json

import numpy as np
import pytest
from scipy import ndimage

from stepviz.models.folder_check import part_folders
from stepviz.models.loading import shipped_folder
from stepviz.toy import checker, world
from training.tokenizer import caption_words, write_tokenizer


def test_pair_captions_round_trip_and_bad_ones_are_named():
    text = world.pair_caption(("red", "circle"), ("blue", "square"), "white")
    assert text == "a red circle and a blue square on a white background"
    assert world.parse_scene_caption(text) == ([("red", "circle"), ("blue", "square")], None, "white")
    placed = world.pair_caption(("red", "circle"), ("blue", "square"), "black", "left of")
    assert placed == "a red circle left of a blue square on a black background"
    assert world.parse_scene_caption(placed) == ([("red", "circle"), ("blue", "square")], "left of", "black")
    assert world.parse_scene_caption("a green triangle above a orange circle on a white background")[1] == "above"
    assert world.parse_scene_caption("a red circle on a black background") == ([("red", "circle")], None, "black")
    with pytest.raises(ValueError, match="expected"):
        world.parse_scene_caption("a red circle beside a blue square on a black background")
    with pytest.raises(ValueError, match="unknown word"):
        world.parse_scene_caption("a red circle and a pink square on a black background")
    with pytest.raises(ValueError, match="different colours"):
        world.draw_pair(("red", "circle"), ("red", "square"), "black")


@pytest.mark.parametrize("placement", [None, *world.PLACEMENTS])
def test_drawn_pairs_are_apart_and_placed_as_captioned(placement):
    for seed in range(8):
        scene = world.draw_pair(("yellow", "triangle"), ("purple", "square"), "black", placement, seed=seed)
        again = world.draw_pair(("yellow", "triangle"), ("purple", "square"), "black", placement, seed=seed)
        assert np.array_equal(scene.image, again.image) and scene.image.shape == (128, 128, 3)
        first, second = scene.things
        assert not (ndimage.binary_dilation(first.mask, iterations=3) & second.mask).any()  # they never touch
        assert np.array_equal(scene.mask, first.mask | second.mask)
        assert scene.depth[scene.mask].min() > scene.depth[~ndimage.binary_dilation(scene.mask, iterations=2)].max()
        assert np.abs(scene.image[first.mask].astype(int) - world.COLOURS["yellow"]).mean() < 30
        if placement is not None:
            ax, ay = world.PLACEMENT_AXIS[placement]
            dx, dy = np.subtract(first.centre, second.centre)
            assert dx * ax + dy * ay >= world.PLACEMENT_DOMINANCE * abs(dx * ay - dy * ax)
        assert world.parse_scene_caption(scene.caption)[1] == placement


def test_checker_judges_the_worlds_two_shape_drawings_right():
    rng = np.random.default_rng(2026)
    scenes = [world.random_pair(rng) for _ in range(200)]
    results = [checker.check_scene(s.image, s.caption) for s in scenes]
    assert np.mean([r["pairs_ok"] for r in results]) >= 0.98
    assert np.mean([r["background_ok"] for r in results]) >= 0.98
    placed = [r["placement_ok"] for r in results if r["placement_ok"] is not None]
    assert len(placed) > 60 and np.mean(placed) >= 0.98
    assert all(r["placement_ok"] is None for r, s in zip(results, scenes) if s.placement is None)
    singles = [world.random_scene(rng, size=128) for _ in range(100)]
    assert np.mean([checker.check_scene(s.image, s.caption)["pairs_ok"] for s in singles]) >= 0.98


def _painted_pentagon(image: np.ndarray, thing: world.Thing, rgb) -> np.ndarray:
    """`image` with `thing` painted over by the background and a regular pentagon of its size drawn instead."""
    size = image.shape[0]
    fine = (np.arange(size * 4) + 0.5) / 4
    xs, ys = np.meshgrid(fine, fine)
    angles = np.arctan2(ys - thing.centre[1], xs - thing.centre[0]) - thing.rotation
    reach = np.hypot(xs - thing.centre[0], ys - thing.centre[1]) * np.cos((angles % (2 * np.pi / 5)) - np.pi / 5)
    cover = (reach <= thing.radius * np.cos(np.pi / 5)).reshape(size, 4, size, 4).mean(axis=(1, 3))[..., None]
    return np.round(cover * np.asarray(rgb) + (1 - cover) * image).astype(np.uint8)


def test_checker_refuses_wrong_two_shape_pictures():
    scene = world.draw_pair(("red", "circle"), ("blue", "square"), "white", "left of", seed=4)
    assert checker.check_scene(scene.image, scene.caption)["pairs_ok"]
    swapped = world.pair_caption(("blue", "circle"), ("red", "square"), "white", "left of")
    assert not checker.check_scene(scene.image, swapped)["pairs_ok"]
    wrong_side = checker.check_scene(scene.image, scene.caption.replace("left of", "right of"))
    assert wrong_side["pairs_ok"] and wrong_side["placement_ok"] is False
    assert checker.check_scene(scene.image, scene.caption.replace("left of", "above"))["placement_ok"] is False
    first, second = scene.things
    one_only = scene.image.copy()
    one_only[ndimage.binary_dilation(second.mask, iterations=2)] = scene.image[0, 0]
    missing = checker.check_scene(one_only, scene.caption)
    assert not missing["pairs_ok"] and missing["found"]["count"] == 1 and missing["placement_ok"] is False
    third = world.draw_scene("green", "triangle", "white", seed=1, size=128)
    crowded = np.where(third.mask[..., None] & ~ndimage.binary_dilation(scene.mask, iterations=4)[..., None],
                       third.image, scene.image)
    if (third.mask & ~ndimage.binary_dilation(scene.mask, iterations=4)).sum() > 150:
        assert not checker.check_scene(crowded, scene.caption)["pairs_ok"]
    pentagon = scene.image.copy()
    pentagon[ndimage.binary_dilation(second.mask, iterations=2)] = scene.image[0, 0]
    pentagon = _painted_pentagon(pentagon, second, world.COLOURS["blue"])
    assert checker.check_scene(pentagon, scene.caption)["found"]["things"][1] == ("blue", None)
    assert not checker.check_scene(pentagon, scene.caption)["pairs_ok"]


def test_the_version_3_tokenizer_knows_every_caption_word_and_the_shipped_one_is_unchanged(tmp_path):
    tokenizer = write_tokenizer(tmp_path / "v3", two_shapes=True)
    words = caption_words(two_shapes=True)
    assert {"and", "left", "right", "of", "above", "below"} <= set(words)
    for word in words:
        assert tokenizer.tokenize(word) == [word + "</w>"]
    caption = "a red circle left of a blue square on a white background"
    assert len(tokenizer(caption).input_ids) == len(caption.split()) + 2
    shipped = json.loads((part_folders(shipped_folder("toy"))["tokenizer"] / "vocab.json").read_text())
    old = write_tokenizer(tmp_path / "v2")
    assert json.loads((tmp_path / "v2" / "vocab.json").read_text()) == shipped
    for word in caption_words():  # the earlier words keep their ids in version 3's vocabulary
        assert tokenizer.convert_tokens_to_ids(word + "</w>") == old.convert_tokens_to_ids(word + "</w>")
