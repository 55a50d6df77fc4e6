"""Does the DIY inpaint loop work on the base toy model? Replace a shape, ask the checker.

    python -m training.evaluate_diy_inpaint [--model DIR] [--grid out.png]

The seed lesson's DIY inpainting: an ordinary (4-channel) model, and after every scheduler
step the latents outside the mask are replaced by the original's, re-noised to the next
noise level. The hole is a box around the scene's shape, widened by MARGIN pixels and then
to whole latent cells (8 x 8 pixels): the blend acts on latent cells, so a hole that cuts
through a cell keeps part of the old shape's latent. The prompt asks for something else there:

  new shape     the same colour, another shape
  new colour    another colour and another shape
  empty         the same holes on the picture with its shape painted out: nothing old to leak

Measured as for the inpainting model (evaluate_variants.py): the checker on the hole's crop,
mean absolute pixel difference outside the hole next to the VAE round trip's own.
StableDiffusionInpaintPipeline with the 4-channel UNet runs exactly this loop (and equals
stepviz's Stepper(mode="inpaint"), tests/test_engine_parity.py); it is used here for batching.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from stepviz.toy.world import BACKGROUNDS, CELL, COLOURS, MARGIN, SHAPES, caption, cell_box_around, draw_scene

from .sources import SHIPPED_MODEL
from .evaluate_variants import InpaintCase, evaluate_inpaint, inpaint_rows_table, save_grid, shifted_name

SETS = ("new shape", "new colour", "empty")


def diy_cases(size: int = 64) -> list[InpaintCase]:
    """18 asked colour x shape pairs per set; the old scene has another shape (and colour)."""
    colours, cases = list(COLOURS), []
    for which in SETS:
        for k, (colour, shape) in enumerate((c, s) for c in colours for s in SHAPES):
            background = list(BACKGROUNDS)[k % 2]
            old_colour = colour if which == "new shape" else shifted_name(colours, colour, 1 + k % 5)
            old_shape = shifted_name(list(SHAPES), shape, 1 + k % 2)
            scene = draw_scene(old_colour, old_shape, background, seed=800 + k, size=size)
            hole = cell_box_around(scene.mask)
            if which == "empty":
                scene.image[:] = scene.image[~hole][0]  # the scene's background colour everywhere
            asked = colour if which != "new shape" else old_colour
            cases.append(InpaintCase(scene, hole, which, caption(asked, shape, background), asked, shape))
    return cases


def main(argv: list[str] | None = None) -> None:
    from diffusers import StableDiffusionInpaintPipeline

    from stepviz import load_pipeline

    parser = argparse.ArgumentParser(prog="python -m training.evaluate_diy_inpaint",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=SHIPPED_MODEL, help="base toy model (name or folder)")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--grid", help="save input (hole shaded) and output pictures as one PNG")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on busy cores)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = load_pipeline(args.model)
    parts = {k: v for k, v in base.components.items() if k != "image_encoder"}
    pipe = StableDiffusionInpaintPipeline(**parts, requires_safety_checker=False)
    cases = diy_cases(pipe.unet.config.sample_size * pipe.vae_scale_factor)
    rows = evaluate_inpaint(pipe, args.steps, args.guidance, cases)
    print(f"## DIY inpaint (blend loop): {args.model}, {args.steps} DDIM steps, guidance {args.guidance}, "
          f"holes = shape box + {MARGIN} px, widened to {CELL}x{CELL} latent cells\n")
    print("\n".join(inpaint_rows_table(rows)))
    if args.grid:
        pictures = []
        for case, row in zip(cases, rows):
            shaded = case.scene.image.copy()
            shaded[case.hole] = (shaded[case.hole] * 0.6 + 50).astype(np.uint8)
            pictures += [shaded, row["output"]]
        save_grid(pictures, args.grid, columns=12)
        print(f"\nwrote {args.grid} (pairs: input with the hole shaded, output)")


if __name__ == "__main__":
    main()
