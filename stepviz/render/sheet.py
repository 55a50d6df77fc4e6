"""sheet.png: one run on one 16:9 page for a slide: the input and mask it took, a few chosen steps, the result.

The chosen steps are spread evenly over the run, plus the steps where a lesson changed the guidance scale
or the scheduler. Tiles are at least 128 px (nearest neighbour for 64 px pictures), labels 20-34 px.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from .strip import BACKGROUND, CHANGE_INK, INK, LABEL, LINE, change_label, evenly_chosen, fit_cell, label_font

WIDTH, HEIGHT = 1920, 1080
MARGIN = 40
STEP_TILE = 192
FINAL_TILE = 384
STEPS_SHOWN = 6


def sheet_steps(records, most: int = STEPS_SHOWN) -> list[int]:
    """Record indices: evenly spread, the last included, and every step a lesson edit changed."""
    chosen = set(evenly_chosen(len(records), most))
    chosen |= {i for i in range(len(records)) if change_label(records, i)}
    return sorted(chosen)[: most + 2]


def sheet_image(title: str, subtitle: str, records, pictures, inputs: dict) -> Image.Image:
    """`pictures[i]` = (x_t, x0-hat) of records[i]; `inputs` = {"input": picture, "mask": picture} as given."""
    title_font, text_font, font = label_font(34), label_font(24), label_font(LABEL)
    sheet = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, MARGIN - 10), title[:90], fill=INK, font=title_font)
    draw.text((MARGIN, MARGIN + 34), subtitle[:140], fill=INK, font=text_font)
    top = MARGIN + 34 + 2 * LINE + 10

    # left: what the run took (img2img, inpaint, depth2img), then the result, large
    x = MARGIN
    for role, caption in (("input", "input picture"), ("mask", "mask (white = repaint)")):
        picture = inputs.get(role)
        if picture is not None:
            draw.text((x, top), caption, fill=INK, font=text_font)
            sheet.paste(fit_cell(picture, STEP_TILE), (x, top + LINE + 8))
            x += max(STEP_TILE, int(text_font.getlength(caption))) + MARGIN  # the next caption starts after this one
    final = pictures[-1][1] if pictures else None
    if final is not None:
        draw.text((x, top), f"result (step {records[-1].index + 1})", fill=INK, font=text_font)
        sheet.paste(fit_cell(final, FINAL_TILE), (x, top + LINE + 8))

    # bottom: the chosen steps, x_t over x0-hat
    steps = sheet_steps(records)
    row_top = top + LINE + 8 + FINAL_TILE + MARGIN
    tile = min(STEP_TILE, (HEIGHT - row_top - 3 * LINE - MARGIN) // 2,
               (WIDTH - 2 * MARGIN - 110) // max(len(steps), 1) - 12)
    left = MARGIN + 110
    for row, name in enumerate(("x_t", "x0-hat")):
        draw.text((MARGIN, row_top + 2 * LINE + row * (tile + 8) + tile // 2 - LABEL // 2), name, fill=INK,
                  font=font)
    for column, index in enumerate(steps):
        record = records[index]
        cx = left + column * (tile + 12)
        draw.text((cx, row_top), f"step {record.index + 1}  t={record.timestep:.0f}", fill=INK, font=font)
        change = change_label(records, index)
        draw.text((cx, row_top + LINE), change or f"σ={record.sigma:.3g}", fill=CHANGE_INK if change else INK,
                  font=font)
        for row in range(2):
            sheet.paste(fit_cell(pictures[index][row], tile), (cx, row_top + 2 * LINE + row * (tile + 8)))
    return sheet
