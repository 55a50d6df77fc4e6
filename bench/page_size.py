"""The explorable page's size for a Stable Diffusion-sized lesson, from pictures like SD's (no SD model needed).

    python bench/page_size.py [--steps 25] [--runs 4] [--size 512]

A page holds, per step, x_t and x0-hat of every run and the 4 latent channels of the main run's x_t and x0-hat.
Stand-ins, each encoded exactly as the export encodes it (stepviz.export.page_data.picture_uri): a photograph
(matplotlib's sample grace_hopper.jpg, for a late x0-hat), coloured noise at the latent scale smoothed as a
decoder smooths it (an early x_t), and the channel grid of random latents. Half the pictures are taken as photos,
half as noise. Prints the MiB and the share of the issue's 12 MiB budget; the toy lessons' own pages are measured
by bench/page_in_browser.py.
"""

from __future__ import annotations

import argparse
import os

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageFilter

from stepviz.export.page_data import channel_scale, picture_uri
from stepviz.render.preview import channels_image

BUDGET = 12 * 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--runs", type=int, default=4, help="the main run and its compared runs")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    side, latent = args.size, args.size // 8
    sample = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    photo = Image.open(sample).convert("RGB").resize((side, side))
    rng = np.random.default_rng(0)
    blobs = Image.fromarray((rng.random((latent, latent, 3)) * 255).astype(np.uint8)).resize(
        (side, side), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    grid = channels_image(torch.randn(1, 4, latent, latent), channel_scale(latent))
    picture = (len(picture_uri(photo)) + len(picture_uri(blobs))) / 2
    channels = len(picture_uri(grid))
    total = args.steps * (2 * args.runs * picture + 2 * channels) + 60_000  # + script, style, manifest, numbers
    print(f"{args.steps} steps, {args.runs} runs at {side} px: a picture {picture / 1024:.0f} KiB (data: URI), "
          f"a channel grid ({grid.width} px) {channels / 1024:.0f} KiB; page ~{total / 2**20:.1f} MiB "
          f"= {total / BUDGET:.0%} of 12 MiB")


if __name__ == "__main__":
    main()
