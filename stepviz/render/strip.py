"""Labelled strips drawn: a row of x_t and a row of x0-hat, one column per kept step, wrapped at 8 columns.

Shared by `stepviz export` (strip.png, compare strips) and the TUI's `x` key (stepviz.export.strip).
Made to be projected: tiles at least 128 px (64 px pictures enlarged with nearest neighbour, so pixels
stay sharp), labels at least 18 px tall at native size, at most 8 tiles in a row (a strip is ~1,200 px
wide, a slide's width). Steps are numbered as in the TUI: step k is the k-th scheduler step (1-based).
"""

from __future__ import annotations

import functools
import sys

import torch
from PIL import Image, ImageDraw, ImageFont

from .channel_pictures import denoiser_of, extra_channel_pictures, mask_picture, model_input_formula
from ..engine.families import model_family
from ..engine.noise_scale import to_vp_scale
from .preview import decode_images, preview

CELL = 128  # side of one picture in a strip, in pixels: the smallest a back row reads
GAP = 6
PER_ROW = 8  # tiles in one row of a strip at least (more when that lets it fill a slide)
SLIDE = (1920, 1080)
LABEL = 24  # label font size: DejaVu's digits and capitals are 18 px tall, "step 12" 23 px with its descender
TITLE = 28
LINE = 28  # one label line
BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)
CHANGE_INK = (190, 40, 40)
FRAME = (150, 150, 150)
DECODE_BATCH = 8


@functools.cache
def label_font(size: int = 13, monospace: bool = False) -> ImageFont.ImageFont:
    """DejaVu Sans (or Sans Mono, for columns of numbers; shipped with matplotlib, has Greek letters), else
    Pillow's default."""
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans Mono" if monospace else "DejaVu Sans"), size)
    except Exception:  # no matplotlib font: the built-in one still writes ASCII
        return ImageFont.load_default(size)


def kept_indices(count: int, every: int) -> list[int]:
    """Every `every`-th step from the first, and always the last one."""
    every = max(1, int(every))
    kept = list(range(0, count, every))
    if count and kept[-1] != count - 1:
        kept.append(count - 1)
    return kept


@torch.no_grad()
def strip_pictures(pipe, records, kind: str, progress: bool = False) -> list[tuple[Image.Image, Image.Image]]:
    """(x_t after the step, x0-hat) pictures of each record; full VAE decodes run in batches."""
    if kind != "full":
        return [(preview(pipe, r.latents, kind, r.family, r.sigma_next), preview(pipe, r.pred_original_sample, kind))
                for r in records]
    latents = []
    for r in records:
        latents += [to_vp_scale(r.latents, r.family, r.sigma_next), r.pred_original_sample]
    pictures: list[Image.Image] = []
    from tqdm import tqdm

    starts = range(0, len(latents), DECODE_BATCH)
    for start in tqdm(starts, desc="VAE decode", unit="batch", leave=False, disable=not progress, file=sys.stderr):
        pictures += decode_images(pipe, torch.cat(latents[start:start + DECODE_BATCH]))
    return list(zip(pictures[0::2], pictures[1::2]))


def fit_cell(picture: Image.Image, side: int = CELL) -> Image.Image:
    """Scale a picture to fit a side x side cell: sharp pixels when enlarging, smooth when shrinking; framed
    in grey, so that a pale picture does not melt into the paper."""
    scale = side / max(picture.width, picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    tile = picture.convert("RGB").resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)
    ImageDraw.Draw(tile).rectangle((0, 0, tile.width - 1, tile.height - 1), outline=FRAME)
    return tile


def step_label(record) -> list[str]:
    return [f"step {record.index + 1}", f"t={record.timestep:.0f}", f"σ={record.sigma:.3g}"]


def change_label(records, index: int) -> str:
    """What changed before this step (guidance scale, scheduler), from the records themselves."""
    if index == 0:
        return ""
    before, now = records[index - 1], records[index]
    changes = []
    if now.guidance_scale != before.guidance_scale:
        changes.append(f"s→{now.guidance_scale:g}")
    if now.scheduler != before.scheduler:
        changes.append(f"→{now.scheduler}")
    return " ".join(changes)


def text_width(text: str, font) -> int:
    return int(font.getlength(text))


def slide_columns(count: int, left: int, column: int, block_h: int, top: int) -> int:
    """Steps to a row (at least PER_ROW) that let the strip be shown largest on a 16:9 slide (1920x1080)."""
    def scale(per_row: int) -> float:
        rows = -(-count // per_row)
        return min(SLIDE[0] / (left + per_row * column), SLIDE[1] / (top + rows * block_h))

    return max(range(min(PER_ROW, count), max(count, PER_ROW) + 1), key=scale)


def strip_image(records, pictures, every: int = 1, title: str = "", row_names=("x_t", "x0-hat")) -> Image.Image:
    """The strip: blocks of kept steps (as many to a row as show it largest on a slide), each a header (step, t,
    sigma, changes) over one row per picture kind, the blocks one under the other."""
    font, title_font = label_font(LABEL), label_font(TITLE)
    kept = kept_indices(len(records), every)
    cells = [[fit_cell(pictures[i][row]) for i in kept] for row in range(len(row_names))]
    cell_w = max((c.width for row in cells for c in row), default=CELL)
    cell_h = max((c.height for row in cells for c in row), default=CELL)
    left = max(text_width(name, font) for name in row_names) + 3 * GAP
    top_title = TITLE + 2 * GAP if title else 0
    header = 4 * LINE + GAP
    block_h = header + len(row_names) * (cell_h + GAP) + 2 * GAP
    per_row = slide_columns(len(kept), left, cell_w + GAP, block_h, top_title)
    blocks = [kept[start:start + per_row] for start in range(0, len(kept), per_row)]
    width = left + min(len(kept), per_row) * (cell_w + GAP) + GAP
    strip = Image.new("RGB", (max(width, text_width(title, title_font) + 2 * GAP), top_title + len(blocks) * block_h),
                      BACKGROUND)
    draw = ImageDraw.Draw(strip)
    if title:
        draw.text((GAP, GAP), title, fill=INK, font=title_font)
    for number, block in enumerate(blocks):
        y0 = top_title + number * block_h
        for column, index in enumerate(block):
            x = left + column * (cell_w + GAP)
            for line, text in enumerate(step_label(records[index])):
                draw.text((x, y0 + LINE * line), text, fill=INK, font=font)
            change = change_label(records, index)
            if change:
                draw.text((x, y0 + 3 * LINE), change, fill=CHANGE_INK, font=font)
            for row in range(len(row_names)):
                strip.paste(cells[row][kept.index(index)], (x, y0 + header + row * (cell_h + GAP)))
        for row, name in enumerate(row_names):
            draw.text((GAP, y0 + header + row * (cell_h + GAP) + cell_h // 2 - LABEL // 2), name, fill=INK,
                      font=font)
    return strip


def blend_image(pipe, records, kind: str, pictures, every: int = 1) -> Image.Image | None:
    """The DIY inpaint blend per kept step: background (re-noised original), mask, blended x_t, x0-hat."""
    if not records or records[0].background is None:
        return None
    rows = []
    for record, (x_t, x0) in zip(records, pictures):
        background = preview(pipe, record.background, kind, record.family, record.sigma_next)
        rows.append((background, mask_picture(record.mask, scale=1), x_t, x0))
    return strip_image(records, rows, every, title="x_t = m · x_t + (1 − m) · background   (m: white = repaint)",
                       row_names=("backgr.", "mask m", "x_t", "x0-hat"))


def extra_channels_image(pipe, extra_channels: dict, kind: str) -> Image.Image | None:
    """The inpainting model's or Depth2Img's extra inputs (fixed for the run), one labelled cell each."""
    if not extra_channels:
        return None
    labels = {"mask": "mask m", "masked_image_latents": "E(image · (1 − m))", "depth": "depth (near = light)"}
    cells = [(labels[name], picture)
             for name, picture in extra_channel_pictures(pipe, extra_channels, kind, scale=1).items()]
    font = label_font(LABEL)
    column = max(CELL, *(text_width(label, font) for label, _ in cells)) + 4 * GAP
    formula = model_input_formula(extra_channels, denoiser_of(model_family(type(pipe).__name__)))
    width = max(GAP + len(cells) * column, text_width(formula, font) + 2 * GAP)
    image = Image.new("RGB", (width, 2 * LINE + 2 * GAP + CELL + GAP), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((GAP, GAP), formula, fill=INK, font=font)
    for c, (label, picture) in enumerate(cells):
        x = GAP + c * column
        draw.text((x, GAP + LINE), label, fill=INK, font=font)
        image.paste(fit_cell(picture), (x, 2 * LINE + 2 * GAP))
    return image


def evenly_chosen(count: int, most: int) -> list[int]:
    """At most `most` indices spread evenly over `count`, the first and the last included."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def compare_image(branches: list[tuple[str, list, list]], every: int = 1) -> Image.Image:
    """x0-hat of each run (label, records, pictures): one row per run, at most PER_ROW steps chosen evenly
    (every `every`-th step when that is fewer), labelled with the step number."""
    font, title_font = label_font(LABEL), label_font(TITLE)
    rows = []
    for label, records, pictures in branches:
        kept = kept_indices(len(records), every)
        kept = [kept[i] for i in evenly_chosen(len(kept), PER_ROW)]
        rows.append((label, [records[i] for i in kept], [fit_cell(pictures[i][1]) for i in kept]))
    cell = max((c.width for _, _, cells in rows for c in cells), default=CELL)
    left = max(text_width(label[:24], font) for label, _, _ in rows) + 3 * GAP
    width = left + max(len(cells) for _, _, cells in rows) * (cell + GAP) + GAP
    row_height = 2 * LINE + cell + 2 * GAP
    top = TITLE + 2 * GAP
    image = Image.new("RGB", (width, top + len(rows) * row_height + GAP), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((GAP, GAP), "x0-hat of each run, same seed", fill=INK, font=title_font)
    for r, (label, records, cells) in enumerate(rows):
        y = top + r * row_height
        draw.text((GAP, y + 2 * LINE + cell // 2 - LABEL // 2), label[:24], fill=INK, font=font)
        for c, (record, picture) in enumerate(zip(records, cells)):
            x = left + c * (cell + GAP)
            draw.text((x, y), f"step {record.index + 1}", fill=INK, font=font)
            draw.text((x, y + LINE), f"σ={record.sigma:.3g}", fill=INK, font=font)
            image.paste(picture, (x, y + 2 * LINE))
    return image


def animation_frames(records, pictures) -> list[Image.Image]:
    """One frame per step: x_t and x0-hat side by side under a label line."""
    font = label_font(LABEL)
    frames = []
    for record, (x_t, x0) in zip(records, pictures):
        left, right = fit_cell(x_t, 256), fit_cell(x0, 256)
        frame = Image.new("RGB", (left.width + right.width + 3 * GAP, left.height + 2 * LINE + 3 * GAP), BACKGROUND)
        draw = ImageDraw.Draw(frame)
        draw.text((GAP, GAP), f"step {record.index + 1}/{len(records)}  t={record.timestep:.0f}  "
                  f"σ={record.sigma:.3g}  s={record.guidance_scale:g}  {record.scheduler}", fill=INK, font=font)
        draw.text((GAP, GAP + LINE), "x_t", fill=INK, font=font)
        draw.text((left.width + 2 * GAP, GAP + LINE), "x0-hat", fill=INK, font=font)
        frame.paste(left, (GAP, 2 * LINE + 2 * GAP))
        frame.paste(right, (left.width + 2 * GAP, 2 * LINE + 2 * GAP))
        frames.append(frame)
    return frames
