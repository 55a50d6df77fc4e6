"""A fixed training set of toy scenes, drawn once from a seed and cached as .npz."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stepviz.toy.world import COLOURS, RADIUS_RANGE, all_captions, caption, random_scene

CAPTIONS = all_captions()  # caption index i < len(CAPTIONS); index len(CAPTIONS) is ""
EMPTY_CAPTION_INDEX = len(CAPTIONS)


@dataclass
class SceneSet:
    images: np.ndarray  # uint8 N x H x W x 3
    masks: np.ndarray  # bool N x H x W
    caption_index: np.ndarray  # int64 N, into CAPTIONS
    colour_index: np.ndarray  # int64 N, into list(COLOURS)

    def __len__(self) -> int:
        return len(self.images)

    def image_tensor(self, index) -> torch.Tensor:
        """Images at `index` as float N x 3 x H x W in [-1, 1]."""
        pixels = torch.from_numpy(self.images[index]).permute(0, 3, 1, 2).float()
        return pixels / 127.5 - 1.0

    def mask_tensor(self, index) -> torch.Tensor:
        return torch.from_numpy(self.masks[index]).float()[:, None]


def draw_scene_set(count: int, size: int, seed: int, radius_range: tuple[float, float] = RADIUS_RANGE) -> SceneSet:
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    masks = np.empty((count, size, size), dtype=bool)
    caption_index = np.empty(count, dtype=np.int64)
    colour_index = np.empty(count, dtype=np.int64)
    for i in range(count):
        scene = random_scene(rng, size, radius_range)
        images[i], masks[i] = scene.image, scene.mask
        caption_index[i] = CAPTIONS.index(caption(scene.colour, scene.shape, scene.background))
        colour_index[i] = list(COLOURS).index(scene.colour)
    return SceneSet(images, masks, caption_index, colour_index)


def load_or_draw(path: Path, count: int, size: int, seed: int,
                 radius_range: tuple[float, float] = RADIUS_RANGE) -> SceneSet:
    """The scene set cached at `path`, drawn (and cached) when missing or different."""
    if path.exists():
        cached = np.load(path)
        same_radii = tuple(cached["radius_range"]) == tuple(radius_range) if "radius_range" in cached else (
            tuple(radius_range) == RADIUS_RANGE)
        if cached["images"].shape[:2] == (count, size) and int(cached["seed"]) == seed and same_radii:
            return SceneSet(cached["images"], cached["masks"], cached["caption_index"], cached["colour_index"])
    scenes = draw_scene_set(count, size, seed, radius_range)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=scenes.images, masks=scenes.masks, caption_index=scenes.caption_index,
             colour_index=scenes.colour_index, seed=seed, radius_range=np.asarray(radius_range))
    tmp.replace(path)
    return scenes


__all__ = ["CAPTIONS", "EMPTY_CAPTION_INDEX", "SceneSet", "draw_scene_set", "load_or_draw"]
