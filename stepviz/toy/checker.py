"""A pixel checker for toy pictures: which colour, shape and background does it show?

Deterministic and rule-based, so it can judge the toy model's outputs:
1. background: the median colour of the border pixels, dark -> black, light -> white;
2. the shape: the largest connected blob of pixels far from that background colour;
3. colour: the circular median hue of the blob's saturated pixels, nearest reference hue;
4. shape: rotation-invariant fill ratio = blob area / (pi * r_max^2), with r_max the
   largest distance from the blob's centroid to its pixels. A circle fills ~1.0 of
   that disc, a square 2/pi ~ 0.64, an equilateral triangle 3*sqrt(3)/(4*pi) ~ 0.41.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image
from scipy import ndimage

from .world import COLOURS, parse_caption

# Hue (degrees) of each reference colour, computed from world.COLOURS.
REFERENCE_HUES = {
    name: 360.0 * colorsys.rgb_to_hsv(*(np.asarray(rgb) / 255.0))[0] for name, rgb in COLOURS.items()
}
FOREGROUND_DISTANCE = 80.0  # RGB distance from the background that counts as shape
CIRCLE_MIN_FILL = 0.80  # fill ratio above: circle
SQUARE_MIN_FILL = 0.54  # between: square; below: triangle


def _as_array(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.round(image * 255.0 if image.max() <= 1.0 else image), 0, 255)
    return image.astype(np.float32)


def _background(image: np.ndarray) -> tuple[str, np.ndarray]:
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    colour = np.median(border, axis=0)
    name = "black" if colour.mean() < 128 else "white"
    return name, colour


def _largest_blob(image: np.ndarray, bg_colour: np.ndarray) -> np.ndarray:
    far = np.linalg.norm(image - bg_colour, axis=-1) > FOREGROUND_DISTANCE
    labels, count = ndimage.label(far)
    if count == 0:
        return far
    sizes = ndimage.sum(far, labels, index=np.arange(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


def _hue_name(pixels: np.ndarray) -> str | None:
    rgb = pixels / 255.0
    top, low = rgb.max(axis=1), rgb.min(axis=1)
    saturated = (top - low) > 0.25
    if not saturated.any():
        return None
    hues = np.array([colorsys.rgb_to_hsv(*p)[0] for p in rgb[saturated]]) * 2 * np.pi
    mean_angle = np.angle(np.exp(1j * hues).mean())
    hue = np.degrees(mean_angle) % 360.0

    def distance(name: str) -> float:
        d = abs(hue - REFERENCE_HUES[name]) % 360.0
        return min(d, 360.0 - d)

    return min(REFERENCE_HUES, key=distance)


def _shape_name(blob: np.ndarray) -> tuple[str | None, float]:
    area = float(blob.sum())
    if area < 12:
        return None, 0.0
    ys, xs = np.nonzero(blob)
    cy, cx = ys.mean(), xs.mean()
    r_max = float(np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2).max()) + 0.5  # to the pixel's edge
    fill = area / (np.pi * r_max * r_max)
    if fill >= CIRCLE_MIN_FILL:
        return "circle", fill
    if fill >= SQUARE_MIN_FILL:
        return "square", fill
    return "triangle", fill


def inspect(image) -> dict:
    """Everything the checker sees: names plus the measurements behind them."""
    pixels = _as_array(image)
    background, bg_colour = _background(pixels)
    blob = _largest_blob(pixels, bg_colour)
    # judge colour on the blob's interior, away from anti-aliased edges
    interior = ndimage.binary_erosion(blob)
    colour = _hue_name(pixels[interior if interior.sum() >= 4 else blob]) if blob.any() else None
    shape, fill = _shape_name(blob)
    return {
        "colour": colour, "shape": shape, "background": background,
        "fill_ratio": fill, "blob_area": int(blob.sum()), "mask": blob,
    }


def classify(image) -> tuple[str | None, str | None, str]:
    """(colour, shape, background) the picture shows; None where no shape is found."""
    found = inspect(image)
    return found["colour"], found["shape"], found["background"]


def check(image, expected_caption: str) -> dict:
    """Compare a picture with the caption it was meant to show."""
    colour, shape, background = parse_caption(expected_caption)
    found = classify(image)
    return {
        "colour_ok": found[0] == colour,
        "shape_ok": found[1] == shape,
        "background_ok": found[2] == background,
        "found": dict(zip(("colour", "shape", "background"), found)),
    }


__all__ = ["check", "classify", "inspect"]
