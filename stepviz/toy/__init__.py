"""The toy world: drawn scenes with captions, a pixel checker, and the small SD-format model.

- `world`: draw_scene / random_scene, COLOURS, SHAPES, BACKGROUNDS, caption, parse_caption
- `checker`: check(image, caption), classify(image), inspect(image): template fit of circle/square/triangle
- `train` (python -m stepviz.toy.train --out DIR) and `evaluate` (python -m stepviz.toy.evaluate)
- `train_preview`: the quick preview's tiny decoder and linear factors; `evaluate_vae`: the VAE's round trip
- `model/`: the shipped StableDiffusionPipeline folder (MODEL_DIR), with preview_decoder/
"""

from pathlib import Path

from .checker import check, classify
from .world import BACKGROUNDS, COLOURS, SHAPES, Scene, caption, draw_scene, parse_caption, random_scene

MODEL_DIR = Path(__file__).parent / "model"

__all__ = [
    "BACKGROUNDS", "COLOURS", "MODEL_DIR", "SHAPES", "Scene", "caption", "check", "classify",
    "draw_scene", "parse_caption", "random_scene",
]
