"""A pixel checker for toy pictures: which colour, shape and background does it show?

Deterministic and rule-based, so it can judge the toy model's outputs:
1. background: the median colour of the border pixels, dark -> black, light -> white;
2. the shape: the largest connected blob of pixels far from that background colour;
3. colour: the circular median hue of the blob's saturated pixels, nearest reference hue;
4. shape: template fit. Circle, square and equilateral-triangle templates, centred on the
   blob's centroid and scaled to its area, are laid over the blob at every rotation (2 degree
   steps); each template's score is its best IoU with the blob. The shape is the best-fitting
   template, and only when
   - its IoU is at least MIN_TEMPLATE_IOU (0.85),
   - no rival template (a regular pentagon or hexagon) fits better: a pentagon is no circle,
   - the blob is convex: area / area of its convex hull >= MIN_SOLIDITY (a four-pointed
     star or a notched blob is no square);
   otherwise the shape is None.

Two-shape pictures (version 3's world, `check_scene`): the two largest blobs far from the background are
judged each as above; the pairs are right when the (colour, shape) pairs found are the caption's (in
either order) and no third sizeable blob is there; a placement ("left of", "above", ...) is right when
the blob of the first-named colour lies that way of the other, more along that axis than across it.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from .world import COLOURS, PLACEMENT_AXIS, parse_caption, parse_scene_caption

# Hue (degrees) of each reference colour, computed from world.COLOURS.
REFERENCE_HUES = {
    name: 360.0 * colorsys.rgb_to_hsv(*(np.asarray(rgb) / 255.0))[0] for name, rgb in COLOURS.items()
}
FOREGROUND_DISTANCE = 80.0  # RGB distance from the background that counts as shape
MIN_TEMPLATE_IOU = 0.85  # the best template must cover the blob at least this well
MIN_SOLIDITY = 0.90  # blob area / convex-hull area: drawn shapes 1.0, VAE round trips >= 0.93, a 4-pointed star <= 0.87
CORNERS = {"circle": 0, "square": 4, "triangle": 3}  # the shapes the world draws
RIVAL_CORNERS = {"pentagon": 5, "hexagon": 6}  # shapes it never draws, which a lumpy blob may resemble
ROTATION_STEP = np.radians(2.0)
MIN_BLOB_AREA = 12
SIZEABLE_BLOB_SHARE = 0.004  # two-shape pictures: a blob counts as a thing from 0.4% of the picture (65 px at 128)


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


def _blobs(image: np.ndarray, bg_colour: np.ndarray):
    """The connected blobs of pixels far from the background colour (bool masks), largest first."""
    far = np.linalg.norm(image - bg_colour, axis=-1) > FOREGROUND_DISTANCE
    labels, count = ndimage.label(far)
    sizes = ndimage.sum(far, labels, index=np.arange(1, count + 1)) if count else []
    for i in np.argsort(-np.asarray(sizes), kind="stable"):
        yield labels == (1 + int(i))


def _largest_blob(image: np.ndarray, bg_colour: np.ndarray) -> np.ndarray:
    return next(_blobs(image, bg_colour), np.zeros(image.shape[:2], dtype=bool))


def _hues(rgb: np.ndarray) -> np.ndarray:
    """HSV hue in [0, 1) of N x 3 colours in [0, 1] (as colorsys.rgb_to_hsv, vectorised)."""
    top, low = rgb.max(axis=1), rgb.min(axis=1)
    span = np.where(top > low, top - low, 1.0)
    r, g, b = rgb.T
    hue = np.where(top == r, (g - b) / span, np.where(top == g, 2.0 + (b - r) / span, 4.0 + (r - g) / span))
    return (hue / 6.0) % 1.0


def _hue_name(pixels: np.ndarray) -> str | None:
    rgb = pixels / 255.0
    saturated = (rgb.max(axis=1) - rgb.min(axis=1)) > 0.25
    if not saturated.any():
        return None
    hues = _hues(rgb[saturated]) * 2 * np.pi
    mean_angle = np.angle(np.exp(1j * hues).mean())
    hue = np.degrees(mean_angle) % 360.0

    def distance(name: str) -> float:
        d = abs(hue - REFERENCE_HUES[name]) % 360.0
        return min(d, 360.0 - d)

    return min(REFERENCE_HUES, key=distance)


def _template_iou(corners: int, area: float, py: np.ndarray, px: np.ndarray, blob: np.ndarray) -> float:
    """Best IoU over rotations of a regular polygon (0 corners: a disc) of the blob's area,
    centred at the origin of the pixel offsets (py, px)."""
    if corners == 0:
        inside = (py * py + px * px <= area / np.pi)[None]
    else:
        # regular n-gon of area A: circumradius R with A = n/2 R^2 sin(2 pi / n); inside = every
        # edge normal's projection at most the inradius R cos(pi / n)
        circumradius = np.sqrt(2.0 * area / (corners * np.sin(2 * np.pi / corners)))
        inradius = circumradius * np.cos(np.pi / corners)
        rotations = np.arange(0.0, 2 * np.pi / corners, ROTATION_STEP)
        normals = rotations[:, None] + 2 * np.pi * np.arange(corners)[None] / corners
        reach = np.cos(normals)[..., None] * px + np.sin(normals)[..., None] * py
        inside = reach.max(axis=1) <= inradius
    inside = inside.astype(np.float32)
    overlap = inside @ blob
    return float((overlap / (area + inside.sum(axis=1) - overlap)).max())


def _offsets_around(centre_y: float, centre_x: float, reach: float, shape: tuple[int, int]):
    """Offsets (dy, dx) from the centre of every pixel within `reach` rows/columns of it, and that window."""
    y0, x0 = max(0, int(centre_y - reach)), max(0, int(centre_x - reach))
    y1, x1 = min(shape[0], int(centre_y + reach) + 2), min(shape[1], int(centre_x + reach) + 2)
    grid_y, grid_x = np.mgrid[y0:y1, x0:x1]
    return (grid_y - centre_y).ravel(), (grid_x - centre_x).ravel(), (slice(y0, y1), slice(x0, x1))


def template_ious(blob: np.ndarray) -> dict[str, float]:
    """IoU of each template (the world's shapes, then the rivals) with the blob, best rotation."""
    ys, xs = np.nonzero(blob)
    area = float(len(ys))
    reach = np.sqrt(4.0 * area / (3.0 * np.sqrt(3.0))) + 1.0  # the triangle's circumradius: the widest template
    py, px, window = _offsets_around(ys.mean(), xs.mean(), reach, blob.shape)
    flat = blob[window].ravel().astype(np.float32)
    return {name: _template_iou(n, area, py, px, flat) for name, n in {**CORNERS, **RIVAL_CORNERS}.items()}


def solidity(blob: np.ndarray) -> float:
    """Blob area / the area of its convex hull (pixel centres); 1.0 for any convex shape."""
    ys, xs = np.nonzero(blob)
    try:
        hull = ConvexHull(np.stack([xs, ys], axis=1).astype(float))
    except QhullError:  # all pixels on one line
        return 1.0
    grid_y, grid_x = np.mgrid[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    in_hull = (points @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-9).all(axis=1)
    return float(len(ys) / in_hull.sum())


def template_fit(ious: dict[str, float]) -> str | None:
    """The template rule alone: the world's best-fitting shape if its IoU >= MIN_TEMPLATE_IOU, else None."""
    best = max(CORNERS, key=ious.get)
    return best if ious[best] >= MIN_TEMPLATE_IOU else None


def _shape_name(blob: np.ndarray) -> tuple[str | None, dict]:
    """(shape or None, the measurements behind it)."""
    if blob.sum() < MIN_BLOB_AREA:
        return None, {"template_iou": {}, "solidity": 0.0}
    ious = template_ious(blob)
    convexity = solidity(blob)
    best = template_fit(ious)
    fits = (best is not None and convexity >= MIN_SOLIDITY
            and all(ious[rival] <= ious[best] for rival in RIVAL_CORNERS))
    return (best if fits else None), {"template_iou": ious, "solidity": convexity}


def _fill_ratio(blob: np.ndarray) -> float:
    """Blob area / (pi r_max^2), r_max the farthest pixel edge from the centroid (1.0 for a disc)."""
    if blob.sum() < MIN_BLOB_AREA:
        return 0.0
    ys, xs = np.nonzero(blob)
    r_max = float(np.hypot(ys - ys.mean(), xs - xs.mean()).max()) + 0.5
    return float(blob.sum() / (np.pi * r_max * r_max))


def _judge_blob(pixels: np.ndarray, blob: np.ndarray) -> dict:
    # judge colour on the blob's interior, away from anti-aliased edges
    interior = ndimage.binary_erosion(blob)
    colour = _hue_name(pixels[interior if interior.sum() >= 4 else blob]) if blob.any() else None
    shape, measures = _shape_name(blob)
    return {"colour": colour, "shape": shape, "fill_ratio": _fill_ratio(blob), "blob_area": int(blob.sum()),
            "mask": blob, **measures}


def inspect(image) -> dict:
    """Everything the checker sees: names plus the measurements behind them (template_iou per
    template, solidity, fill_ratio, blob_area, mask)."""
    pixels = _as_array(image)
    background, bg_colour = _background(pixels)
    return {"background": background, **_judge_blob(pixels, _largest_blob(pixels, bg_colour))}


def inspect_things(image) -> dict:
    """The background and every sizeable blob (SIZEABLE_BLOB_SHARE of the picture), largest first, each judged as
    `inspect` judges the largest, with its centroid (x, y)."""
    pixels = _as_array(image)
    background, bg_colour = _background(pixels)
    least = max(MIN_BLOB_AREA, SIZEABLE_BLOB_SHARE * pixels.shape[0] * pixels.shape[1])
    things = []
    for blob in _blobs(pixels, bg_colour):
        if blob.sum() < least:
            break
        ys, xs = np.nonzero(blob)
        things.append({**_judge_blob(pixels, blob), "centre": (float(xs.mean()), float(ys.mean()))})
    return {"background": background, "things": things}


def _placed(first: dict, second: dict, placement: str) -> bool:
    """Does `first` lie `placement` ('left of', ...) of `second`, more along that axis than across it?"""
    ax, ay = PLACEMENT_AXIS[placement]
    dx, dy = first["centre"][0] - second["centre"][0], first["centre"][1] - second["centre"][1]
    return dx * ax + dy * ay > abs(dx * ay - dy * ax)


def check_scene(image, expected_caption: str) -> dict:
    """Compare a picture with any version 3 caption (one shape or two).

    One shape: `check`'s result plus pairs_ok (colour and shape right) and placement_ok None. Two shapes:
    colour_ok / shape_ok (every named colour / shape found among the two largest blobs), pairs_ok (exactly
    two sizeable blobs, and their (colour, shape) pairs are the caption's), placement_ok (None for "and";
    else the blob of the first-named colour lies that way of the other), background_ok, found.
    """
    things, placement, background = parse_scene_caption(expected_caption)
    if len(things) == 1:
        result = check(image, expected_caption)
        return {**result, "pairs_ok": result["colour_ok"] and result["shape_ok"], "placement_ok": None}
    seen = inspect_things(image)
    found = seen["things"]
    pairs = [(t["colour"], t["shape"]) for t in found[:2]]
    placement_ok = None
    if placement is not None:
        by_colour = {t["colour"]: t for t in found[:2]}
        first, second = (by_colour.get(colour) for colour, _ in things)
        placement_ok = bool(first is not None and second is not None and first is not second
                            and _placed(first, second, placement))
    return {
        "colour_ok": sorted(c for c, _ in things) == sorted(str(c) for c, _ in pairs),
        "shape_ok": sorted(s for _, s in things) == sorted(str(s) for _, s in pairs),
        "pairs_ok": len(found) == 2 and sorted(things, key=str) == sorted(pairs, key=str),
        "placement_ok": placement_ok,
        "background_ok": seen["background"] == background,
        "found": {"things": pairs, "background": seen["background"], "count": len(found)},
    }


def classify(image) -> tuple[str | None, str | None, str]:
    """(colour, shape, background) the picture shows; None where no shape is found."""
    found = inspect(image)
    return found["colour"], found["shape"], found["background"]


def check(image, expected_caption: str) -> dict:
    """Compare a picture with the caption it was meant to show.

    template_ok is the template rule alone: the caption's shape is the best-fitting of the world's
    templates with IoU >= MIN_TEMPLATE_IOU (shape_ok also asks for convexity and no better rival).
    """
    colour, shape, background = parse_caption(expected_caption)
    found = inspect(image)
    ious = found["template_iou"]
    return {
        "colour_ok": found["colour"] == colour,
        "shape_ok": found["shape"] == shape,
        "background_ok": found["background"] == background,
        "template_ok": bool(ious) and template_fit(ious) == shape,
        "found": {name: found[name] for name in ("colour", "shape", "background")},
    }


__all__ = ["check", "check_scene", "classify", "inspect", "inspect_things", "solidity", "template_ious"]
