"""What the toy's cross-attention maps show: each word's share of attention on the drawn shape, by step.

    python bench/attention_on_shape.py --prompts 16 --steps 25

Runs N captions of the toy world (seed i for caption i, drawn without replacement from all colour x shape x
background combinations, DDIM, guidance 7.5) with capture_attention=True, finds the shape in each step's x0-hat
with the toy checker, and prints, per word role and step, the mean of (share of the word's attention mass on
the shape) / (share of the picture the shape covers): 1.0 is an even spread. Also how many runs are above 1.
The figures quoted in README ("What each word attends to") and in the `attention` lesson come from here.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

ROLES = ("<start>", "a", "colour", "shape", "on", "a#2", "bg colour", "background", "<end>")
SHOWN_STEPS = (1, 3, 5, 8, 11, 16, 20, 25)  # steps taken


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=7.5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    import stepviz
    from stepviz.render.attention_pictures import foreground_shares
    from stepviz.render.preview import decode_images
    from stepviz.toy.world import BACKGROUNDS, COLOURS, SHAPES, caption

    pipe = stepviz.load_pipeline("toy")
    combos = list(itertools.product(COLOURS, SHAPES, BACKGROUNDS))
    picks = np.random.default_rng(0).choice(len(combos), args.prompts, replace=False)
    ratios = np.zeros((args.prompts, args.steps, len(ROLES)))
    for seed, pick in enumerate(picks):
        prompt = caption(*combos[pick])
        st = stepviz.Stepper(pipe, prompt=prompt, seed=seed, num_inference_steps=args.steps, scheduler="ddim",
                             guidance_scale=args.guidance, capture_attention=True)
        records = st.run()
        pictures = decode_images(pipe, torch.cat([r.pred_original_sample for r in records]))
        for step, (record, picture) in enumerate(zip(records, pictures)):
            cells, shares = foreground_shares(picture, record.cross_attention)
            ratios[seed, step] = np.array(shares) / max(float(cells.mean()), 1e-6)
        print(f"  {prompt!r} seed {seed}: done", flush=True)
    print(f"share on the shape / the shape's share of the area (1 = even), mean over {args.prompts} runs "
          f"[runs above 1]")
    print("steps taken " + "".join(f"{role:>14}" for role in ROLES))
    for taken in (s for s in SHOWN_STEPS if s <= args.steps):
        row = ratios[:, taken - 1]
        cells = "".join(f"{m:8.2f} [{a:2d}] " for m, a in zip(row.mean(0), (row > 1).sum(0)))
        print(f"{taken:11d} {cells}")


if __name__ == "__main__":
    main()
