"""attention.png and attention.npz of an export: what each word of the prompt attends to, step by step.

    attention.png   one row per prompt token, one column per chosen step: the token's cross-attention map over
                    x0-hat at that step, with the share of its mass on the foreground (the drawn shape)
    attention.npz   every step's maps (float16 [steps, tokens, h, w]) with the tokens, steps and timesteps

The pictures are sized for a projector: tiles of 176 px, labels of 20 px and more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..engine.checks import StepvizInputError
from ..render.attention_pictures import CONTRAST_TOP, foreground_shares, overlay, token_labels
from ..render.preview import decode_images
from ..render.strip import BACKGROUND, GAP, INK, fit_cell, label_font
from .strip import save_atomically

TILE = 176
LABEL_SIZE, SMALL_SIZE = 22, 18
DEFAULT_COLUMNS = 6
MAX_TOKEN_ROWS = 10  # a slide's worth: a longer prompt shows its first tokens (attention.npz keeps them all)
MAX_TITLE = 90  # characters


def attention_steps(count: int, wanted: list[int] | None = None, columns: int = DEFAULT_COLUMNS) -> list[int]:
    """Record indices to show: `wanted` steps (numbered from 1, as the screen and strip.png number them: step k is
    the state after k steps), checked against the run; else `columns` spread from first to last."""
    if wanted:
        bad = [k for k in wanted if not 1 <= k <= count]
        if bad:
            raise StepvizInputError(f"--attention-steps {','.join(map(str, bad))} not in the run: use steps "
                                    f"1..{count} (as strip.png and the screen number them)")
        return sorted({k - 1 for k in wanted})
    if count <= columns:
        return list(range(count))
    return sorted({round(k * (count - 1) / (columns - 1)) for k in range(columns)})


def parse_steps(text: str | None, most: int | None = None) -> list[int] | None:
    """'1,7,13' -> [1, 7, 13]; None (not given) -> None (the default spread). `most`: the run's step count,
    so a step beyond it is refused before the run, not after."""
    if text is None:
        return None
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        steps = []
    if not steps:
        raise StepvizInputError(f"--attention-steps {text!r} is not a list of steps: write e.g. 1,7,13,25")
    bad = [k for k in steps if k < 1 or (most is not None and k > most)]
    if bad:
        allowed = f"1..{most}" if most is not None else "1 and up"
        raise StepvizInputError(f"--attention-steps {','.join(map(str, bad))} not in the run: use steps {allowed} "
                                "(as strip.png and the screen number them)")
    return steps


@torch.no_grad()
def attention_columns(pipe, records, steps: list[int]):
    """(x0-hat picture, foreground cells, inside shares per token) at each chosen step."""
    pictures = decode_images(pipe, torch.cat([records[i].pred_original_sample for i in steps]))
    columns = []
    for index, picture in zip(steps, pictures):
        columns.append((picture, *foreground_shares(picture, records[index].cross_attention)))
    return columns


def attention_image(records, tokens, steps: list[int], columns, title: str = "") -> Image.Image:
    """The grid: x0-hat on top, then one row per token (the first MAX_TOKEN_ROWS); each tile the map over x0-hat
    and its share inside."""
    font, small = label_font(LABEL_SIZE), label_font(SMALL_SIZE)
    labels = token_labels(tokens)[:MAX_TOKEN_ROWS]
    if len(tokens) > MAX_TOKEN_ROWS:
        title = f"{title[:MAX_TITLE - 40]}... (first {MAX_TOKEN_ROWS} of {len(tokens)} tokens; attention.npz has all)"
    elif len(title) > MAX_TITLE:
        title = title[:MAX_TITLE - 3] + "..."
    left = GAP + max(int(font.getlength(label)) for label in labels + ["x0-hat"]) + 3 * GAP
    top = LABEL_SIZE + 2 * (SMALL_SIZE + 6) + 3 * GAP
    row = TILE + SMALL_SIZE + 3 * GAP
    width = left + len(steps) * (TILE + GAP)
    legend = (f"colour: the map over x0-hat, against an even spread: dark red = even, white = "
              f"{CONTRAST_TOP:g}x the mean or more, black = none")
    text_width = max(int(font.getlength(title)), int(small.getlength(legend))) + 2 * GAP
    image = Image.new("RGB", (max(width, text_width), top + (len(labels) + 1) * row), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((GAP, 2), title, fill=INK, font=font)
    draw.text((GAP, LABEL_SIZE + 6), legend, fill=INK, font=small)
    for c, (index, (picture, cells, shares)) in enumerate(zip(steps, columns)):
        x = left + c * (TILE + GAP)
        header = f"step {index + 1}  t={records[index].timestep:.0f}"
        draw.text((x, LABEL_SIZE + SMALL_SIZE + 14), header, fill=INK, font=small)
        image.paste(fit_cell(picture, TILE), (x, top))
        draw.text((x, top + TILE + GAP), f"shape: {cells.mean():.0%} of area", fill=INK, font=small)
        for r, share in enumerate(shares[:MAX_TOKEN_ROWS], start=1):
            y = top + r * row
            image.paste(overlay(picture.resize((TILE, TILE), Image.NEAREST), records[index].cross_attention[r - 1]),
                        (x, y))
            draw.text((x, y + TILE + GAP), f"on shape {share:.0%}", fill=INK, font=small)
    for r, label in enumerate(["x0-hat", *labels]):
        draw.text((GAP, top + r * row + TILE // 2 - LABEL_SIZE // 2), label, fill=INK, font=font)
    return image


def write_attention(folder: Path, stepper, wanted_steps: list[int] | None = None) -> list[str]:
    """Write attention.png and attention.npz for a run taken with capture_attention; the names written."""
    records = [r for r in stepper.records if r.cross_attention is not None]
    if not records or len(records) != len(stepper.records):
        return []
    steps = attention_steps(len(records), wanted_steps)
    tokens = list(stepper.prompt_anatomy.tokens)
    columns = attention_columns(stepper.pipe, records, steps)
    title = f"What each word attends to: {stepper.prompt!r}, seed {stepper.seed}"
    save_atomically(attention_image(records, tokens, steps, columns, title), folder / "attention.png")
    np.savez_compressed(
        folder / "attention.npz",
        maps=torch.stack([r.cross_attention for r in records]).cpu().numpy().astype(np.float16),
        tokens=np.array(tokens), step=np.array([r.index + 1 for r in records]),
        timestep=np.array([r.timestep for r in records]), chosen_steps=np.array(steps) + 1,
        inside_share=np.array([shares for _, _, shares in columns], dtype=np.float32),
        foreground=np.stack([cells for _, cells, _ in columns]),
    )
    return ["attention.png", "attention.npz"]
