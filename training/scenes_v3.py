"""Version 3's training scenes: 128 px, one shape or two, with every caption form the world writes.

Half the scenes show one shape ("a red circle on a black background"), a quarter two shapes joined by
"and", a quarter two shapes with a placement word ("a red circle left of a blue square on a white
background"). Drawn once from a seed and cached as .npz, like dataset.py's version 1/2 set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stepviz.toy.world import PAIR_RADIUS_RANGE, RADIUS_RANGE, random_pair, random_scene

from .dataset import PictureTensors

V3_SIZE = 128  # 16 x 16 latents
PAIR_SHARE = 0.5  # scenes with two shapes; half of them name a placement
FIELDS = ("images", "masks", "captions")


@dataclass
class CaptionedScenes(PictureTensors):
    images: np.ndarray  # uint8 N x H x W x 3
    masks: np.ndarray  # bool N x H x W, every shape
    captions: np.ndarray  # str N


def draw_v3_scenes(count: int, size: int = V3_SIZE, seed: int = 0, pair_share: float = PAIR_SHARE,
                   radii: tuple[tuple[float, float], tuple[float, float]] = (RADIUS_RANGE, PAIR_RADIUS_RANGE)
                   ) -> CaptionedScenes:
    """`radii`: the circumradius ranges (fractions of the side) of one-shape scenes and of each shape of a pair."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    masks = np.empty((count, size, size), dtype=bool)
    captions = []
    for i in range(count):
        pair = rng.random() < pair_share
        scene = random_pair(rng, size, radius_range=radii[1]) if pair else random_scene(rng, size, radii[0])
        images[i], masks[i] = scene.image, scene.mask
        captions.append(scene.caption)
    return CaptionedScenes(images, masks, np.asarray(captions))


def stored_radii(cached) -> tuple[tuple[float, float], tuple[float, float]]:
    """The radius ranges a cached scene set was drawn with (sets from before they were stored: the world's)."""
    if "radii" not in cached:
        return (RADIUS_RANGE, PAIR_RADIUS_RANGE)
    single, pair = np.asarray(cached["radii"]).tolist()
    return (tuple(single), tuple(pair))


def load_or_draw_v3(path: Path, count: int, size: int = V3_SIZE, seed: int = 0, pair_share: float = PAIR_SHARE,
                    radii: tuple[tuple[float, float], tuple[float, float]] = (RADIUS_RANGE, PAIR_RADIUS_RANGE)
                    ) -> CaptionedScenes:
    """The scene set cached at `path`, drawn (and cached atomically) when missing or different."""
    radii = (tuple(radii[0]), tuple(radii[1]))
    if path.exists():
        cached = np.load(path)
        if (all(name in cached for name in FIELDS) and cached["images"].shape[:2] == (count, size)
                and int(cached["seed"]) == seed and float(cached["pair_share"]) == pair_share
                and stored_radii(cached) == radii):
            return CaptionedScenes(*(cached[name] for name in FIELDS))
    scenes = draw_v3_scenes(count, size, seed, pair_share, radii)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, seed=seed, pair_share=pair_share, radii=np.asarray(radii),
             **{name: getattr(scenes, name) for name in FIELDS})
    tmp.replace(path)
    return scenes
