"""A fixed training set of toy scenes, drawn once from a seed and cached as .npz."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stepviz.toy.world import RADIUS_RANGE, all_captions, random_scene

CAPTIONS = all_captions()  # caption index i < len(CAPTIONS); index len(CAPTIONS) is ""
EMPTY_CAPTION_INDEX = len(CAPTIONS)


FIELDS = ("images", "masks", "depth", "caption_index", "centres", "radii")


class PictureTensors:
    """What every scene set gives a trainer: its size, and pictures and masks as tensors (needs `images`, uint8
    N x H x W x 3, and `masks`, bool N x H x W)."""

    def __len__(self) -> int:
        return len(self.images)

    def image_tensor(self, index) -> torch.Tensor:
        """Images at `index` as float N x 3 x H x W in [-1, 1]."""
        pixels = torch.from_numpy(self.images[index]).permute(0, 3, 1, 2).float()
        return pixels / 127.5 - 1.0

    def mask_tensor(self, index) -> torch.Tensor:
        return torch.from_numpy(self.masks[index]).float()[:, None]


@dataclass
class SceneSet(PictureTensors):
    """Drawn scenes with everything the trainers use: the base model (pictures, captions, shape masks), the
    variants (depth, where the shape is) and the depth estimator."""

    images: np.ndarray  # uint8 N x H x W x 3
    masks: np.ndarray  # bool N x H x W, the shape
    depth: np.ndarray  # float32 N x H x W in [0, 1], larger = nearer
    caption_index: np.ndarray  # int64 N, into CAPTIONS
    centres: np.ndarray  # float32 N x 2, (x, y) of the shape
    radii: np.ndarray  # float32 N, circumradius in pixels



def draw_scene_set(count: int, size: int, seed: int, radius_range: tuple[float, float] = RADIUS_RANGE) -> SceneSet:
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    masks = np.empty((count, size, size), dtype=bool)
    depth = np.empty((count, size, size), dtype=np.float32)
    caption_index = np.empty(count, dtype=np.int64)
    centres = np.empty((count, 2), dtype=np.float32)
    radii = np.empty(count, dtype=np.float32)
    for i in range(count):
        scene = random_scene(rng, size, radius_range)
        images[i], masks[i], depth[i] = scene.image, scene.mask, scene.depth
        caption_index[i] = CAPTIONS.index(scene.caption)
        centres[i], radii[i] = scene.centre, scene.radius
    return SceneSet(images, masks, depth, caption_index, centres, radii)


def add_min_radius_option(parser) -> None:
    """--min-radius: the trainers' training scenes draw shapes from it up to the world's largest."""
    parser.add_argument("--min-radius", type=float, default=RADIUS_RANGE[0],
                        help="smallest shape drawn for training (circumradius / side)")


def scene_radius_range(min_radius: float) -> tuple[float, float]:
    """The circumradius range (fractions of the side) of training scenes that start at `min_radius`."""
    return (min_radius, RADIUS_RANGE[1])


def load_or_draw(path: Path, count: int, size: int, seed: int,
                 radius_range: tuple[float, float] = RADIUS_RANGE) -> SceneSet:
    """The scene set cached at `path`, drawn (and cached atomically) when missing, different or incomplete."""
    if path.exists():
        cached = np.load(path)
        same_radii = tuple(cached["radius_range"]) == tuple(radius_range) if "radius_range" in cached else (
            tuple(radius_range) == RADIUS_RANGE)
        if (all(name in cached for name in FIELDS) and cached["images"].shape[:2] == (count, size)
                and int(cached["seed"]) == seed and same_radii):
            return SceneSet(*(cached[name] for name in FIELDS))
    scenes = draw_scene_set(count, size, seed, radius_range)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, seed=seed, radius_range=np.asarray(radius_range), **{name: getattr(scenes, name) for name in FIELDS})
    tmp.replace(path)
    return scenes


__all__ = ["CAPTIONS", "EMPTY_CAPTION_INDEX", "SceneSet", "add_min_radius_option", "draw_scene_set",
           "load_or_draw", "scene_radius_range"]
