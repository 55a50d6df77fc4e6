"""attention.png and attention.npz of an export: what each word of the prompt attends to, step by step.

    attention.png   one 16:9 slide: one row per chosen step, one column per prompt token: the token's
                    cross-attention map over x0-hat at that step, with the share of its mass on the shape
    attention.npz   every step's maps (float16 [steps, tokens, h, w]) with the tokens, steps and timesteps

The slide is 1920x1080 with labels of 21 px and more; tiles shrink (to at most 176 px) to fit it.
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
LABEL_SIZE, SMALL_SIZE = 24, 21  # DejaVu at 21 px: 20 px from the top of "H" to the bottom of "g"
SLIDE_WIDTH, SLIDE_HEIGHT = 1920, 1080
DEFAULT_COLUMNS = 6
MAX_TOKEN_ROWS = 10  # a slide's worth of columns: a longer prompt shows its first tokens (attention.npz keeps them all)
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
    """One 16:9 slide (SLIDE_WIDTH x SLIDE_HEIGHT): a row per chosen step, x0-hat in the first column, then one
    column per token (the first MAX_TOKEN_ROWS); each tile the token's map over x0-hat and its share on the shape.
    Tiles shrink to fit the slide (at most TILE); the labels keep their size."""
    font, small = label_font(LABEL_SIZE), label_font(SMALL_SIZE)
    labels = token_labels(tokens)[:MAX_TOKEN_ROWS]
    if len(tokens) > MAX_TOKEN_ROWS:
        title = f"{title[:MAX_TITLE - 40]}... (first {MAX_TOKEN_ROWS} of {len(tokens)} tokens; attention.npz has all)"
    elif len(title) > MAX_TITLE:
        title = title[:MAX_TITLE - 3] + "..."
    legend = (f"colour: the map over x0-hat, against an even spread: dark red = even, white = "
              f"{CONTRAST_TOP:g}x the mean or more, black = none; under x0-hat: the shape's share of the picture")
    left = GAP + max(int(font.getlength(f"step {i + 1}")) for i in steps) + 3 * GAP
    top = 2 * GAP + LABEL_SIZE + SMALL_SIZE + LABEL_SIZE + 6 * GAP  # title, legend, the column headers
    column = (SLIDE_WIDTH - left - GAP) // (len(labels) + 1)
    row = (SLIDE_HEIGHT - top - GAP) // max(len(steps), 1)
    tile = max(min(TILE, column - GAP, row - SMALL_SIZE - 3 * GAP), 16)
    image = Image.new("RGB", (SLIDE_WIDTH, SLIDE_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((GAP, GAP), title, fill=INK, font=font)
    draw.text((GAP, 2 * GAP + LABEL_SIZE), legend, fill=INK, font=small)
    for c, label in enumerate(["x0-hat", *labels]):
        draw.text((left + c * column, top - LABEL_SIZE - 2 * GAP), _fitted(label, font, column - GAP), fill=INK,
                  font=font)
    for r, (index, (picture, cells, shares)) in enumerate(zip(steps, columns)):
        y = top + r * row
        draw.text((GAP, y + tile // 2 - LABEL_SIZE), f"step {index + 1}", fill=INK, font=font)
        draw.text((GAP, y + tile // 2 + GAP), f"t={records[index].timestep:.0f}", fill=INK, font=small)
        image.paste(fit_cell(picture, tile), (left, y))
        draw.text((left, y + tile + GAP), _fitted(f"shape {cells.mean():.0%}", small, column - GAP), fill=INK,
                  font=small)
        for c, share in enumerate(shares[:MAX_TOKEN_ROWS], start=1):
            x = left + c * column
            image.paste(overlay(picture.resize((tile, tile), Image.NEAREST), records[index].cross_attention[c - 1]),
                        (x, y))
            draw.text((x, y + tile + GAP), _fitted(f"on shape {share:.0%}", small, column - GAP), fill=INK,
                      font=small)
    return image


def _fitted(text: str, font, width: int) -> str:
    """The text, shortened from its end (then its words) until it fits `width` pixels."""
    for candidate in (text, text.replace("on shape ", "")):
        if font.getlength(candidate) <= width:
            return candidate
    while len(text) > 1 and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


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
