"""Toy scenes drawn for a lesson: `image = { toy_scene = "a red circle on a black background", seed = 1 }`.

The picture itself, its shape's mask, a box around the shape in whole latent cells, or its depth map,
drawn by the toy world (stepviz/toy/world.py), so a lesson needs no picture file.
"""

from __future__ import annotations

TOY_SCENE_KEYS = ("toy_scene", "seed", "size", "layer")
TOY_SCENE_LAYERS = ("image", "mask", "box", "depth")  # box: toy.world.cell_box_around(mask)


def draw_toy_picture(caption: str, seed: int = 0, size: int = 64, layer: str = "image"):
    """A drawn toy scene as a PIL image: the picture, its shape's mask (white = shape), a hole around the
    shape in whole latent cells ("box") or its depth."""
    import numpy as np
    from PIL import Image

    from ..toy.world import cell_box_around, draw_scene, parse_caption

    colour, shape, background = parse_caption(caption)
    scene = draw_scene(colour, shape, background, seed=seed, size=size)
    if layer == "image":
        picture = scene.pil()
    elif layer in ("mask", "box"):
        white = scene.mask if layer == "mask" else cell_box_around(scene.mask)
        picture = Image.fromarray(white.astype(np.uint8) * 255, mode="L")
    else:
        picture = Image.fromarray((scene.depth * 255).round().astype(np.uint8), mode="L")
    picture.info["stepviz_source"] = f"toy scene {caption!r}, seed {seed}, size {size}, {layer}"
    return picture
