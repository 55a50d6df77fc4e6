"""What the explorable page (index.html) shows, gathered from the finished runs as plain JSON-ready data.

Pictures become data: URIs, so the page is one file that opens from file:// and from any static host:

    pictures of at most PNG_SIDE px (the toy's 64 px):  PNG, lossless, pixel-exact (enlarged by the browser)
    larger pictures (Stable Diffusion's 512 px):         WebP at WEBP_QUALITY, shrunk to at most MAX_SIDE px
                                                         (the page shows a picture at most 360 px wide)

Numbers are the StepRecord's floats (NaN and Inf become null: JSON has no NaN). Attention maps are each token's
map relative to its mean on the ramp the TUI and attention.png use (white at CONTRAST_TOP x the mean), quantised
to bytes: the page colours them itself.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image

from ..engine.families import model_family
from ..engine.noise_scale import to_vp_scale
from ..engine.prediction import prediction_for
from ..run.lockstep import COLUMN_LETTERS
from ..render.attention_pictures import CONTRAST_TOP, HEAT_STOPS, foreground_shares, scaled, token_labels
from ..render.channel_pictures import denoiser_of, extra_channel_pictures, mask_picture, model_input_formula
from ..render.preview import channels_image, preview
from ..render.readouts import angle_degrees, rms

PNG_SIDE = 128
MAX_SIDE = 384  # with WEBP_QUALITY, a 25-step lesson of 4 runs at 512 px stays under 12 MiB (bench/page_size.py)
WEBP_QUALITY = 75
LETTERS = COLUMN_LETTERS  # a lesson's run and its up to 7 [[compare]] runs, named as the TUI's compare view names them
EXTRA_LABELS = {"mask": "mask m", "masked_image_latents": "E(image · (1 − m))", "depth": "depth (near = light)"}


def picture_uri(image: Image.Image) -> str:
    """A picture as a data: URI, in the format chosen above."""
    image = image.convert("RGB")
    buffer = io.BytesIO()
    if max(image.size) <= PNG_SIDE:
        image.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        if max(image.size) > MAX_SIDE:
            image = image.copy()
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        image.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=4)
        mime = "image/webp"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def step_numbers(record) -> dict:
    """The numbers one step shows: the record's floats, the per-element RMS of the norms, the branch angle."""
    numbers = {name: finite(value) for name, value in record.floats().items()}
    for name in ("norm_uncond", "norm_text", "norm_guidance", "norm_noise_pred"):
        numbers[f"rms_{name.removeprefix('norm_')}"] = finite(rms(record, name))
    numbers["angle"] = finite(angle_degrees(record.cos_uncond_text)) if math.isfinite(record.cos_uncond_text) \
        else None
    numbers["scheduler"] = record.scheduler
    numbers["nonfinite"] = record.nonfinite or None
    return numbers


def run_data(letter: str, label: str, run, pictures, kind: str) -> dict:
    """One run: its label as the compare view writes it, and per step the numbers, x_t and x0-hat."""
    records = run.stepper.records
    return {
        "letter": letter, "label": label, "total_steps": run.stepper.total_steps, "stopped": run.stopped,
        "steps": [dict(step_numbers(record), x_t=picture_uri(x_t), x0=picture_uri(x0))
                  for record, (x_t, x0) in zip(records, pictures)],
    }


def channel_scale(latent_width: int) -> int:
    """channels_image's scale for a grid of about 260 px at most (the toy's 8 x 8 latents: 68 px, enlarged by the
    browser; SD's 64 x 64: 258 px)."""
    return max(2, min(8, 520 // (2 * latent_width + 1)))


def main_extras(stepper, kind: str, inputs: dict) -> dict:
    """What only the main run shows: the pictures it starts from (`inputs`: RunSettings.input_pictures), the latent
    channels per step, the inpaint blend, the extra input channels."""
    pipe, records = stepper.pipe, stepper.records
    scale = channel_scale(records[0].latents.shape[-1]) if records else 8
    extras = {"channels": [
        {"x_t": picture_uri(channels_image(to_vp_scale(r.latents, r.family, r.sigma_next), scale)),
         "x0": picture_uri(channels_image(r.pred_original_sample, scale))} for r in records]}
    captions = {"input": "the input picture, as given", "mask": "the mask: white is repainted"}
    extras["inputs"] = [{"label": captions[role], "src": picture_uri(picture)} for role, picture in inputs.items()]
    if records and records[0].background is not None and records[0].mask is not None:
        extras["blend"] = [{"background": picture_uri(preview(pipe, r.background, kind, r.family, r.sigma_next)),
                            "mask": picture_uri(mask_picture(r.mask))} for r in records]
    if stepper.extra_channels:
        pictures = extra_channel_pictures(pipe, stepper.extra_channels, kind)
        extras["extra_channels"] = {
            "formula": model_input_formula(stepper.extra_channels,
                                           denoiser_of(model_family(type(pipe).__name__))),
            "pictures": [{"label": EXTRA_LABELS[name], "src": picture_uri(picture)}
                         for name, picture in pictures.items()]}
    return extras


def attention_data(stepper, pictures) -> dict | None:
    """Every step's maps (bytes on the heat ramp, base64) with the tokens, and each token's share on the shape."""
    records = stepper.records
    if not records or any(r.cross_attention is None for r in records):
        return None
    maps = np.stack([r.cross_attention.float().cpu().numpy() for r in records])  # [steps, tokens, h, w]
    ramp = np.nan_to_num(np.stack([[scaled(token_map) for token_map in step] for step in maps]))  # NaN: a stopped run
    shares, shape_share = [], []
    for record, (_, x0) in zip(records, pictures):
        cells, inside = foreground_shares(x0, record.cross_attention)
        shares.append([finite(share) for share in inside])
        shape_share.append(finite(cells.mean()))
    return {"tokens": token_labels(stepper.prompt_anatomy.tokens), "height": maps.shape[-2], "width": maps.shape[-1],
            "maps": base64.b64encode((ramp * 255).round().astype(np.uint8).tobytes()).decode("ascii"),
            "shares": shares, "shape_share": shape_share, "contrast_top": CONTRAST_TOP,
            "heat_stops": [[stop, list(colour)] for stop, colour in HEAT_STOPS]}


def notes_data(events: list[dict], claims: dict[tuple, list[dict]]) -> list[dict]:
    """The lesson's notes and edits at their steps (as the manifest lists them), each with its checked claims
    (keyed by (at_step, note))."""
    notes = []
    for event in events:
        change = ", ".join(filter(None, [
            f"guidance scale → {event['set_guidance_scale']:g}" if event["set_guidance_scale"] is not None else "",
            f"scheduler → {event['set_scheduler']}" if event["set_scheduler"] else ""]))
        if event["note"] or change:
            notes.append({"at_step": event["at_step"], "note": event["note"] or "", "change": change,
                          "applied": event["applied"],
                          "claims": claims.get((event["at_step"], event["note"] or ""), [])})
    return notes


def page_data(manifest: dict, runs: list[dict], extras: dict, attention: dict | None, notes: list[dict],
              prediction_type: str) -> dict:
    p = prediction_for(prediction_type).pretty
    return {"title": manifest["title"] or "stepviz run", "preview": manifest["preview"], "runs": runs,
            "extras": extras, "attention": attention, "notes": notes,
            "labels": {"uncond": f"‖{p}_uncond‖", "text": f"‖{p}_text‖", "guidance": f"‖{p}_text − {p}_uncond‖",
                       "noise_pred": f"‖{p}̂‖ (after CFG)", "p": p}}
