"""Training pictures for the toy variants: scenes with their depth, and inpainting holes.

The base model's scene set (dataset.py) keeps pictures, masks and captions; the
variants also need each scene's depth map (Depth2Img and its estimator) and, for
the inpainting model, a hole to repaint. Holes are drawn the way SD's inpainting
model was trained (random rectangles and ellipses, the whole picture), plus holes
that contain the scene's shape (its mask dilated, a box or an ellipse around it),
sometimes with a second shape pasted outside the hole, and "placed" holes: a box
or ellipse on empty background with a new shape drawn into it, the scene's own
shape left outside. The caption always names the shape *inside* the hole ("put a
blue square here" is what a user asks); a random hole that misses the shape gets
the empty caption, so no caption ever names a shape the hole does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from stepviz.toy.world import BACKGROUNDS, COLOURS, SHAPES, caption, draw_scene, jittered, shape_coverage

from .dataset import CAPTIONS, EMPTY_CAPTION_INDEX, SceneSet

HOLE_KINDS = ("shape_dilated", "box_around", "ellipse_around", "random_box", "random_ellipse", "whole",
              "placed_box", "placed_ellipse")
HOLE_WEIGHTS = (0.10, 0.16, 0.08, 0.05, 0.05, 0.10, 0.32, 0.14)
DISTRACTOR_CHANCE = 0.5  # holes around the shape: chance of a second shape outside the hole
PLACED_SIDE = (0.32, 0.56)  # placed holes: side (box) or diameter (ellipse) as a fraction of the picture
PLACED_FILL = (0.6, 0.95)  # placed holes: the new shape's circumradius as a fraction of the room the hole leaves


# --- holes for the inpainting model (True = repaint) ---

def box_hole(size: int, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    return (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)


def ellipse_hole(size: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0


def disk(radius: int) -> np.ndarray:
    ys, xs = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return xs * xs + ys * ys <= radius * radius


def draw_hole(kind: str, rng: np.random.Generator, shape_mask: np.ndarray, centre, radius: float,
              placed_side: tuple[float, float] = PLACED_SIDE) -> np.ndarray:
    """One hole of `kind`; the '*_around' and 'shape_dilated' kinds contain the whole shape."""
    size = shape_mask.shape[0]
    cx, cy = float(centre[0]), float(centre[1])
    if kind == "shape_dilated":
        return ndimage.binary_dilation(shape_mask, structure=disk(int(rng.integers(1, 7))))
    if kind == "box_around":
        ys, xs = np.nonzero(shape_mask)
        margin = rng.uniform(1, 7, size=4)
        return box_hole(size, xs.min() - margin[0], ys.min() - margin[1], xs.max() + 1 + margin[2],
                        ys.max() + 1 + margin[3])
    if kind == "ellipse_around":
        offset = rng.uniform(-2, 2, size=2)
        extra = rng.uniform(1, 7, size=2)
        reach = radius + np.abs(offset).max()
        return ellipse_hole(size, cx + offset[0], cy + offset[1], reach + extra[0], reach + extra[1])
    if kind == "random_box":
        w, h = rng.uniform(0.2, 0.6, size=2) * size
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        return box_hole(size, x0, y0, x0 + w, y0 + h)
    if kind == "random_ellipse":
        rx, ry = rng.uniform(0.1, 0.3, size=2) * size
        return ellipse_hole(size, rng.uniform(rx, size - rx), rng.uniform(ry, size - ry), rx, ry)
    if kind == "whole":
        return np.ones_like(shape_mask)
    if kind.startswith("placed_"):
        return placed_hole(kind, rng, shape_mask, side=placed_side)
    raise ValueError(f"unknown hole kind {kind!r}: one of {HOLE_KINDS}")


def placed_hole(kind: str, rng: np.random.Generator, shape_mask: np.ndarray, tries: int = 24,
                side: tuple[float, float] = PLACED_SIDE) -> np.ndarray:
    """A box or ellipse clear of the scene's shape (by 2 px); a box around the shape if none fits."""
    size = shape_mask.shape[0]
    keep_clear = ndimage.binary_dilation(shape_mask, structure=disk(2))
    for _ in range(tries):
        w, h = rng.uniform(*side, size=2) * size
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        hole = (box_hole(size, x0, y0, x0 + w, y0 + h) if kind == "placed_box"
                else ellipse_hole(size, x0 + w / 2, y0 + h / 2, w / 2, h / 2))
        if not (hole & keep_clear).any():
            return hole
    return draw_hole("box_around", rng, shape_mask, (0.0, 0.0), 0.0)


def paint_into_hole(image: np.ndarray, hole: np.ndarray, rng: np.random.Generator,
                    fill: tuple[float, float] = PLACED_FILL) -> tuple[str, str]:
    """Draw a random shape inside the hole (in place), `fill` of the room it leaves; returns its (colour, shape)."""
    inside = ndimage.distance_transform_edt(np.pad(hole, 1))[1:-1, 1:-1]  # to the nearest pixel outside it
    y, x = np.unravel_index(np.argmax(inside), hole.shape)
    room = float(inside[y, x]) - 1.0
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    radius = room * rng.uniform(*fill)
    shift = rng.uniform(-1, 1, size=2) * (room - radius)
    cover = shape_coverage(shape, (x + 0.5 + shift[0], y + 0.5 + shift[1]), radius, rng.uniform(0, 2 * np.pi),
                           hole.shape[0]) * hole
    fg = jittered(COLOURS[colour], rng)
    image[:] = np.clip(np.round(cover[..., None] * fg + (1 - cover[..., None]) * image), 0, 255).astype(np.uint8)
    return colour, shape


def paste_distractor(image: np.ndarray, hole: np.ndarray, background: str, rng: np.random.Generator,
                     tries: int = 6) -> bool:
    """Paste a second shape (same background) outside the hole, in place; False if none fitted."""
    keep_clear = ndimage.binary_dilation(hole, structure=disk(2))
    for _ in range(tries):
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        shape = SHAPES[rng.integers(len(SHAPES))]
        other = draw_scene(colour, shape, background, seed=int(rng.integers(2**31)), size=image.shape[0])
        if not (other.mask & keep_clear).any():
            image[other.mask] = other.image[other.mask]
            return True
    return False


@dataclass
class InpaintExamples:
    images: np.ndarray  # uint8 M x H x W x 3, the full picture (training target)
    holes: np.ndarray  # bool M x H x W, True = repaint
    caption_index: np.ndarray  # int64 M, into CAPTIONS; EMPTY_CAPTION_INDEX for ""
    kinds: np.ndarray  # int64 M, into HOLE_KINDS
    unpainted: np.ndarray  # uint8 M x H x W x 3, the picture with no new shape drawn into a placed hole

    def __len__(self) -> int:
        return len(self.images)


def draw_inpaint_examples(scenes: SceneSet, count: int, seed: int, placed_fill: tuple[float, float] = PLACED_FILL,
                          placed_side: tuple[float, float] = PLACED_SIDE) -> InpaintExamples:
    """`count` (picture, hole, caption) triples from the scenes, deterministically from `seed`."""
    rng = np.random.default_rng(seed)
    size = scenes.images.shape[1]
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    unpainted = np.empty_like(images)
    holes = np.empty((count, size, size), dtype=bool)
    caption_index = np.empty(count, dtype=np.int64)
    kinds = rng.choice(len(HOLE_KINDS), size=count, p=np.asarray(HOLE_WEIGHTS) / sum(HOLE_WEIGHTS))
    backgrounds = list(BACKGROUNDS)
    for m in range(count):
        i = int(rng.integers(len(scenes)))
        kind = HOLE_KINDS[kinds[m]]
        image = scenes.images[i].copy()
        unpainted[m] = image
        hole = draw_hole(kind, rng, scenes.masks[i], scenes.centres[i], float(scenes.radii[i]), placed_side)
        background = next(b for b in backgrounds if CAPTIONS[scenes.caption_index[i]].endswith(f"{b} background"))
        index = int(scenes.caption_index[i])
        if kind.endswith("_around") or kind == "shape_dilated":
            if rng.random() < DISTRACTOR_CHANCE:
                paste_distractor(image, hole, background, rng)
                unpainted[m] = image
        elif kind.startswith("placed_") and not (hole & scenes.masks[i]).any():
            index = CAPTIONS.index(caption(*paint_into_hole(image, hole, rng, placed_fill), background))
        elif kind.startswith("random_") and not (hole & scenes.masks[i]).any():
            index = EMPTY_CAPTION_INDEX  # nothing named lies in the hole
        images[m], holes[m], caption_index[m] = image, hole, index
    return InpaintExamples(images, holes, caption_index, kinds.astype(np.int64), unpainted)


__all__ = ["HOLE_KINDS", "PLACED_FILL", "PLACED_SIDE", "InpaintExamples", "box_hole", "draw_hole",
           "draw_inpaint_examples", "ellipse_hole"]
