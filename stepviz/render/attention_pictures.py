"""Cross-attention maps as pictures and numbers, for the TUI's attention panel, the export and the lessons.

A map is one token's [h, w] slice of StepRecord.cross_attention (see stepviz/engine/attention.py). Pictures
show each map relative to its own mean, the value an even spread over the picture would have: dark red is
even, white is CONTRAST_TOP times the mean or more, black is none. So a flat map looks flat, and tiles of
different tokens and steps compare. The numbers: the share of the map's mass on the picture's foreground.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# the "hot" ramp: black -> red -> yellow -> white, at these stops (value, RGB)
HEAT_STOPS = ((0.0, (0, 0, 0)), (0.4, (200, 30, 0)), (0.75, (255, 200, 0)), (1.0, (255, 255, 255)))
CONTRAST_TOP = 2.5  # map / mean(map) shown white; an even spread (1.0) sits at 1 / CONTRAST_TOP on the ramp
SPECIAL_TOKENS = {"<|startoftext|>": "<start>", "<|endoftext|>": "<end>"}


def token_label(token: str) -> str:
    """A token as a reader knows it: 'red</w>' -> 'red', the start and end tokens as <start> and <end>."""
    return SPECIAL_TOKENS.get(token, token.removesuffix("</w>"))


def token_labels(tokens) -> list[str]:
    """Labels for a prompt's tokens, numbered where a word appears twice ('a', 'a#2')."""
    labels, seen = [], {}
    for token in tokens:
        label = token_label(token)
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return labels


def foreground(picture: Image.Image, latent_size: tuple[int, int]) -> np.ndarray:
    """[h, w]: the share of each latent cell covered by the picture's foreground, in [0, 1].

    The foreground is what the toy checker calls the shape: the largest connected blob of pixels far from the
    picture's border colour (stepviz/toy/checker.py). On a toy picture that is the drawn shape.
    """
    from ..toy.checker import inspect

    mask = inspect(picture)["mask"].astype(np.float32)
    h, w = latent_size
    rows = np.array_split(np.arange(mask.shape[0]), h)
    columns = np.array_split(np.arange(mask.shape[1]), w)
    return np.array([[mask[np.ix_(r, c)].mean() for c in columns] for r in rows], dtype=np.float32)


def mass_inside(attention_map, cells: np.ndarray) -> float:
    """The share of a map's attention mass on the foreground: sum(map * foreground) / sum(map)."""
    values = np.asarray(attention_map, dtype=np.float64)
    total = values.sum()
    return float((values * cells).sum() / total) if total > 0 else 0.0


def heat(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB on the hot ramp; NaN (a run the watchdog stopped) draws as the ramp's bottom."""
    values = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
    stops = np.array([s for s, _ in HEAT_STOPS])
    colours = np.array([c for _, c in HEAT_STOPS], dtype=np.float64)
    rgb = np.stack([np.interp(values, stops, colours[:, k]) for k in range(3)], axis=-1)
    return rgb.round().astype(np.uint8)


def scaled(attention_map) -> np.ndarray:
    """A map relative to its mean, on the ramp's [0, 1]: 1 / CONTRAST_TOP where the spread is even."""
    values = np.asarray(attention_map, dtype=np.float64)
    mean = values.mean()
    return np.clip(values / (mean * CONTRAST_TOP), 0, 1) if mean > 0 else values


def blow_up(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[h, w] values to `size` (width, height), each latent cell a sharp block."""
    rows = np.arange(size[1]) * values.shape[0] // size[1]
    columns = np.arange(size[0]) * values.shape[1] // size[0]
    return values[rows][:, columns]


def map_picture(attention_map, size: tuple[int, int]) -> Image.Image:
    """One map on the hot ramp, relative to its mean, blown up to `size` (width, height)."""
    return Image.fromarray(heat(blow_up(scaled(attention_map), size)), mode="RGB")


def overlay(picture: Image.Image, attention_map, strength: float = 0.6) -> Image.Image:
    """The map over a picture: `strength` of the heat, the rest the picture in grey (its shape stays readable,
    and no colour of the map can be taken for the picture's own: a red circle under a red-to-white ramp could)."""
    base = np.asarray(picture.convert("L").convert("RGB"), dtype=np.float64)
    hot = heat(blow_up(scaled(attention_map), picture.size))
    mixed = (1 - strength) * base + strength * hot
    return Image.fromarray(mixed.clip(0, 255).round().astype(np.uint8), mode="RGB")


def inside_shares(maps, cells: np.ndarray) -> list[float]:
    """mass_inside for every token's map of a [tokens, h, w] tensor or array."""
    array = maps.detach().cpu().numpy() if hasattr(maps, "detach") else np.asarray(maps)
    return [mass_inside(m, cells) for m in array]


def foreground_shares(picture: Image.Image, maps) -> tuple[np.ndarray, list[float]]:
    """(foreground cells of `picture` at the maps' size, every token's share of mass on them)."""
    cells = foreground(picture, tuple(maps.shape[-2:]))
    return cells, inside_shares(maps, cells)
