"""The toy world: one or two coloured shapes on a plain background, drawn from a seed.

Every scene is fully determined by (colour, shape, background, seed, size). The
seed picks the shape's centre, size and rotation and a small jitter of the
colours; the picture is drawn 4x larger and averaged down, so edges are
anti-aliased. Besides the RGB picture a scene carries the shape's mask and a
depth map, which the inpainting and Depth2Img variants use.

Version 3's world adds scenes of two shapes (`draw_pair`), captioned with "and" ("a red circle and a
blue square on a white background") or a placement word ("a red circle left of a blue square on a white
background"; also "right of", "above", "below"). The two shapes never touch and have different colours,
so a checker can tell which is which.

Depth follows the convention of the depth estimators Depth2Img uses (MiDaS/DPT):
larger values are *nearer*. The background is a slightly tilted far plane
(0.1..0.3), the shape a shaded body in front of it (0.6..1.0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "orange": (250, 140, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (8, 8, 8),
    "white": (247, 247, 247),
}

SUPERSAMPLE = 4  # drawn at 4x and averaged down: anti-aliased edges
COLOUR_JITTER = 12  # +- per RGB channel, drawn once per scene
RADIUS_RANGE = (0.16, 0.30)  # circumradius as a fraction of the picture's side
PAIR_RADIUS_RANGE = (0.12, 0.20)  # two shapes to a picture: each smaller, so both fit without touching
PAIR_GAP = 0.04  # the least distance between the two shapes' circumscribed circles, as a fraction of the side
PLACEMENTS: tuple[str, ...] = ("left of", "right of", "above", "below")
PLACEMENT_AXIS = {"left of": (-1, 0), "right of": (1, 0), "above": (0, -1), "below": (0, 1)}  # image y grows down
PLACEMENT_DOMINANCE = 1.5  # a drawn placement's offset along its axis is at least 1.5 x the offset across it
MARGIN, CELL = 8, 8  # cell_box_around: pixels around the shape; pixels per latent cell (SD's 8x VAE)


@dataclass
class Scene:
    """One drawn scene and everything known about it."""

    image: np.ndarray  # uint8 HxWx3
    mask: np.ndarray  # bool HxW, True on the shape
    depth: np.ndarray  # float32 HxW in [0, 1], larger = nearer
    colour: str
    shape: str
    background: str
    centre: tuple[float, float]  # (x, y) in pixels
    radius: float  # circumradius in pixels
    rotation: float  # radians

    @property
    def caption(self) -> str:
        return caption(self.colour, self.shape, self.background)

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


def caption(colour: str, shape: str, background: str) -> str:
    """The one caption form the toy model knows: 'a red circle on a black background'."""
    return f"a {colour} {shape} on a {background} background"


def parse_caption(text: str) -> tuple[str, str, str]:
    """Inverse of caption(); raises ValueError with the expected form otherwise."""
    words = text.strip().lower().split()
    form = "a <colour> <shape> on a <background> background"
    if len(words) != 7 or words[0] != "a" or words[3:5] != ["on", "a"] or words[6] != "background":
        raise ValueError(f"not a toy caption: {text!r}; expected {form!r}")
    colour, shape, background = words[1], words[2], words[5]
    if colour not in COLOURS or shape not in SHAPES or background not in BACKGROUNDS:
        raise ValueError(
            f"unknown word in {text!r}: colours {list(COLOURS)}, shapes {list(SHAPES)}, "
            f"backgrounds {list(BACKGROUNDS)}"
        )
    return colour, shape, background


def all_captions() -> list[str]:
    """Every colour x shape x background caption, in a fixed order."""
    return [caption(c, s, b) for c in COLOURS for s in SHAPES for b in BACKGROUNDS]


def _polygon_inside(xs: np.ndarray, ys: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """True where (xs, ys) lies inside the convex polygon with counter-clockwise corners."""
    inside = np.ones(xs.shape, dtype=bool)
    for i in range(len(corners)):
        x0, y0 = corners[i]
        x1, y1 = corners[(i + 1) % len(corners)]
        inside &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
    return inside


def shape_coverage(shape: str, centre, radius: float, rotation: float, size: int) -> np.ndarray:
    """Fraction of each pixel covered by the shape (float HxW), by supersampling the pixels of its bounding box
    (the shape lies within `radius` of its centre; every other pixel is uncovered)."""
    x0, y0 = (max(0, int(np.floor(c - radius)) - 1) for c in centre)
    x1, y1 = (min(size, int(np.ceil(c + radius)) + 1) for c in centre)
    coverage = np.zeros((size, size))
    if x1 <= x0 or y1 <= y0:
        return coverage
    xs, ys = np.meshgrid((np.arange(x0 * SUPERSAMPLE, x1 * SUPERSAMPLE) + 0.5) / SUPERSAMPLE,
                         (np.arange(y0 * SUPERSAMPLE, y1 * SUPERSAMPLE) + 0.5) / SUPERSAMPLE)
    dx, dy = xs - centre[0], ys - centre[1]
    if shape == "circle":
        inside = dx * dx + dy * dy <= radius * radius
    else:
        corners_n = 4 if shape == "square" else 3
        angles = rotation + 2 * np.pi * np.arange(corners_n) / corners_n
        corners = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
        inside = _polygon_inside(dx, dy, corners)
    coverage[y0:y1, x0:x1] = inside.reshape(y1 - y0, SUPERSAMPLE, x1 - x0, SUPERSAMPLE).mean(axis=(1, 3))
    return coverage


def jittered(rgb, rng: np.random.Generator) -> np.ndarray:
    offset = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
    return np.clip(np.asarray(rgb, dtype=np.float32) + offset, 0, 255)


def draw_scene(colour: str, shape: str, background: str, seed: int = 0, size: int = 64,
               radius_range: tuple[float, float] = RADIUS_RANGE) -> Scene:
    """Draw one scene; the seed decides position, size (within `radius_range`), rotation and colour jitter."""
    if colour not in COLOURS or shape not in SHAPES or background not in BACKGROUNDS:
        raise ValueError(f"unknown scene ({colour!r}, {shape!r}, {background!r})")
    rng = np.random.default_rng(seed)
    radius = float(rng.uniform(*radius_range)) * size
    margin = radius + 1.0
    centre = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin)))
    rotation = float(rng.uniform(0, 2 * np.pi))
    fg = jittered(COLOURS[colour], rng)
    bg = jittered(BACKGROUNDS[background], rng)

    cover = shape_coverage(shape, centre, radius, rotation, size)
    image = cover[..., None] * fg + (1 - cover[..., None]) * bg
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    # depth: a tilted far plane behind a shaded body (a dome for every shape)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    tilt = rng.uniform(-1, 1, size=2)
    plane = 0.2 + 0.05 * (tilt[0] * (xs / size - 0.5) + tilt[1] * (ys / size - 0.5)) * 2
    r2 = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (radius * radius)
    body = 0.6 + 0.4 * np.sqrt(np.clip(1 - r2, 0, 1))
    depth = (cover * body + (1 - cover) * plane).astype(np.float32)

    return Scene(
        image=image, mask=cover >= 0.5, depth=depth, colour=colour, shape=shape,
        background=background, centre=centre, radius=radius, rotation=rotation,
    )


def cell_box_around(mask: np.ndarray, margin: int = MARGIN, cell: int = CELL) -> np.ndarray:
    """An inpainting hole: the shape's bounding box widened by `margin`, then outwards to whole latent cells.

    The DIY blend acts on latent cells (8 x 8 pixels): a hole that cuts through a cell keeps part
    of the old shape's latent, which pulls the new content back towards the old.
    """
    size = mask.shape[0]
    ys, xs = np.nonzero(mask)
    x0, y0 = max(0, xs.min() - margin) // cell * cell, max(0, ys.min() - margin) // cell * cell
    x1 = min(size, -(-(xs.max() + 1 + margin) // cell) * cell)
    y1 = min(size, -(-(ys.max() + 1 + margin) // cell) * cell)
    hole = np.zeros_like(mask)
    hole[y0:y1, x0:x1] = True
    return hole


def random_scene(rng: np.random.Generator, size: int = 64, radius_range: tuple[float, float] = RADIUS_RANGE) -> Scene:
    """A scene with colour, shape, background and seed all drawn from rng."""
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    return draw_scene(colour, shape, background, seed=int(rng.integers(2**31)), size=size, radius_range=radius_range)


# --- version 3: two shapes to a picture ---

@dataclass
class Thing:
    """One shape of a two-shape scene."""

    colour: str
    shape: str
    centre: tuple[float, float]  # (x, y) in pixels
    radius: float  # circumradius in pixels
    rotation: float  # radians
    mask: np.ndarray  # bool HxW


@dataclass
class PairScene:
    """A drawn scene of two shapes; `placement` None for an "and" caption, else where the first is."""

    image: np.ndarray  # uint8 HxWx3
    mask: np.ndarray  # bool HxW, True on either shape
    depth: np.ndarray  # float32 HxW in [0, 1], larger = nearer
    things: tuple[Thing, Thing]
    background: str
    placement: str | None

    @property
    def caption(self) -> str:
        first, second = self.things
        return pair_caption((first.colour, first.shape), (second.colour, second.shape), self.background,
                            self.placement)

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


def pair_caption(first: tuple[str, str], second: tuple[str, str], background: str,
                 placement: str | None = None) -> str:
    """'a red circle and a blue square on a white background', or with a placement ('left of', ...) for 'and'."""
    link = "and" if placement is None else placement
    return f"a {first[0]} {first[1]} {link} a {second[0]} {second[1]} on a {background} background"


def parse_scene_caption(text: str) -> tuple[list[tuple[str, str]], str | None, str]:
    """([(colour, shape), ...] one or two, placement or None, background) of any version 3 caption; raises
    ValueError naming the forms otherwise."""
    words = text.strip().lower().split()
    if len(words) == 7:
        colour, shape, background = parse_caption(text)
        return [(colour, shape)], None, background
    forms = (f"{'a <colour> <shape> on a <background> background'!r}, or "
             f"'a <colour> <shape> <and|{'|'.join(PLACEMENTS)}> a <colour> <shape> on a <background> background'")
    link_words = 2 if len(words) == 12 else 1
    link = " ".join(words[3:3 + link_words])
    rest = words[3 + link_words:]
    if (len(words) not in (11, 12) or words[0] != "a" or (link != "and" and link not in PLACEMENTS)
            or rest[0] != "a" or rest[3:5] != ["on", "a"] or rest[6] != "background"):
        raise ValueError(f"not a toy caption: {text!r}; expected {forms}")
    things = [(words[1], words[2]), (rest[1], rest[2])]
    background = rest[5]
    if any(c not in COLOURS or s not in SHAPES for c, s in things) or background not in BACKGROUNDS:
        raise ValueError(f"unknown word in {text!r}: colours {list(COLOURS)}, shapes {list(SHAPES)}, "
                         f"backgrounds {list(BACKGROUNDS)}")
    return things, (None if link == "and" else link), background


def _pair_centres(rng: np.random.Generator, radii: tuple[float, float], size: int,
                  placement: str | None) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centres of two shapes inside the picture, apart by PAIR_GAP, the first `placement` the second."""
    for _ in range(10_000):
        centres = [rng.uniform(r + 1.0, size - r - 1.0, size=2) for r in radii]
        offset = centres[0] - centres[1]
        if np.hypot(*offset) < radii[0] + radii[1] + PAIR_GAP * size:
            continue
        if placement is not None:
            ax, ay = PLACEMENT_AXIS[placement]
            along, across = offset[0] * ax + offset[1] * ay, abs(offset[0] * ay - offset[1] * ax)
            if along <= PLACEMENT_DOMINANCE * across:
                continue
        return tuple(map(float, centres[0])), tuple(map(float, centres[1]))
    raise RuntimeError(f"no room for two shapes of radii {radii} at {size} px")


def draw_pair(first: tuple[str, str], second: tuple[str, str], background: str, placement: str | None = None,
              seed: int = 0, size: int = 128, radius_range: tuple[float, float] = PAIR_RADIUS_RANGE) -> PairScene:
    """Draw two shapes ((colour, shape) each, different colours) on `background`, apart; the seed decides sizes,
    positions, rotations and colour jitter; `placement` ('left of', ...) puts the first there of the second."""
    for colour, shape in (first, second):
        if colour not in COLOURS or shape not in SHAPES:
            raise ValueError(f"unknown shape ({colour!r}, {shape!r}): colours {list(COLOURS)}, shapes {list(SHAPES)}")
    if background not in BACKGROUNDS or (placement is not None and placement not in PLACEMENTS):
        raise ValueError(f"unknown background {background!r} or placement {placement!r}: backgrounds "
                         f"{list(BACKGROUNDS)}, placements {list(PLACEMENTS)}")
    if first[0] == second[0]:
        raise ValueError(f"the two shapes of a scene have different colours, not both {first[0]!r}")
    rng = np.random.default_rng(seed)
    radii = tuple(float(rng.uniform(*radius_range)) * size for _ in range(2))
    centres = _pair_centres(rng, radii, size, placement)
    bg = jittered(BACKGROUNDS[background], rng)
    image = np.broadcast_to(bg, (size, size, 3)).astype(np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    tilt = rng.uniform(-1, 1, size=2)
    depth = 0.2 + 0.05 * (tilt[0] * (xs / size - 0.5) + tilt[1] * (ys / size - 0.5)) * 2
    things = []
    for (colour, shape), centre, radius in zip((first, second), centres, radii):
        rotation = float(rng.uniform(0, 2 * np.pi))
        cover = shape_coverage(shape, centre, radius, rotation, size)
        image = cover[..., None] * jittered(COLOURS[colour], rng) + (1 - cover[..., None]) * image
        r2 = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (radius * radius)
        depth = cover * (0.6 + 0.4 * np.sqrt(np.clip(1 - r2, 0, 1))) + (1 - cover) * depth
        things.append(Thing(colour, shape, centre, radius, rotation, cover >= 0.5))
    return PairScene(
        image=np.clip(np.round(image), 0, 255).astype(np.uint8), mask=things[0].mask | things[1].mask,
        depth=depth.astype(np.float32), things=(things[0], things[1]), background=background, placement=placement)


def random_pair(rng: np.random.Generator, size: int = 128, placement_share: float = 0.5,
                radius_range: tuple[float, float] = PAIR_RADIUS_RANGE) -> PairScene:
    """A two-shape scene with everything drawn from rng: different colours, "and" or a placement word."""
    colours = rng.choice(len(COLOURS), size=2, replace=False)
    first, second = ((list(COLOURS)[c], SHAPES[rng.integers(len(SHAPES))]) for c in colours)
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    placement = PLACEMENTS[rng.integers(len(PLACEMENTS))] if rng.random() < placement_share else None
    return draw_pair(first, second, background, placement, seed=int(rng.integers(2**31)), size=size,
                     radius_range=radius_range)
