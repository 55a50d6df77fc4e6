"""The toy world the shipped toy models were trained on: drawn scenes with captions, and a pixel checker.

- `world`: draw_scene / random_scene, COLOURS, SHAPES, BACKGROUNDS, caption, parse_caption
- `checker`: check(image, caption), classify(image), inspect(image): template fit of circle/square/triangle
  (`stepviz lessons check`, seed grids and attention pictures judge toy pictures with it)
- `weights/`: the shipped models' parts, each file once, and one folder per model (toy/, toy-v/,
  toy-inpaint/, toy-depth/, toy-flow/) whose model_index.json maps its parts; loaded by stepviz.models

The lab that trained and evaluated them lives outside the package, in the repository's training/.
"""

from .checker import check, classify
from .world import BACKGROUNDS, COLOURS, SHAPES, Scene, caption, draw_scene, parse_caption, random_scene

__all__ = [
    "BACKGROUNDS", "COLOURS", "SHAPES", "Scene", "caption", "check", "classify",
    "draw_scene", "parse_caption", "random_scene",
]
