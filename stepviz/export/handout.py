"""handout.html: the export as one self-contained printable handout (pictures embedded as base64).

The page is plain HTML and CSS, no scripts, nothing loaded from elsewhere: it prints, and opens from a USB
stick, an email or an offline classroom. Pictures are shown at their own size (wrapped strips are ~1,200 px
wide); a click enlarges one to the whole window (a CSS checkbox, no script), another click puts it back.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

CAPTIONS = {
    "input.png": "The input picture, as given (the pipeline resizes it to the run's size and encodes it with the VAE).",
    "mask.png": "The mask: white is repainted, black is kept. At latent size it is 8 times coarser.",
    "strip.png": "Each column is one step of the loop (step k: the k-th scheduler step, as the TUI counts; t: "
                 "timestep, σ: noise level), eight to a row. Upper row: the latents x_t after the step, as the "
                 "sampler carries them. Lower row: x0-hat, the model's guess of the finished picture at that step. "
                 "Red labels mark a change of guidance scale or scheduler.",
    "sheet.png": "The run on one slide: what it took, a few steps (x_t over x0-hat) and the result.",
    "animation": "The same run, one frame per step: x_t on the left, x0-hat on the right.",
    "blend.png": "The DIY inpaint blend: after every scheduler step, the parts outside the mask are replaced by the "
                 "original picture re-noised to the next timestep (the background), so only the white part of the "
                 "mask is generated.",
    "extra_channels.png": "What this model (UNet, or SD3's inpainting transformer) gets besides x_t at every step, "
                          "the same at each: the inpainting model "
                          "sees the mask and the latents of the picture with the hole blanked out, Depth2Img the "
                          "depth map (at latent size, near = light). No blend is needed: the model itself keeps "
                          "what it is shown.",
    "attention.png": "What each word of the prompt attends to. Each row is one token, each column one step; a tile "
                     "is that token's cross-attention map (the UNet's attention from each latent pixel to the token, "
                     "averaged over heads and layers, text branch) over x0-hat, on its own scale: white where the "
                     "token pulls most. Under each tile: the share of the map's mass on the shape, to compare with "
                     "the share of the picture the shape covers (top row). All steps' maps are in attention.npz.",
    "compare.png": "The runs side by side, same seed: x0-hat of each run at the same steps. Only the setting named "
                   "on the left differs.",
    "schedule.png": "The noise schedule: how much noise (σ_t) is left at each step, and how much of the signal "
                    "(ᾱ_t) the latents keep. Dashed lines mark edits.",
    "norms.png": "Guidance in numbers: the size of the UNet's two predictions (of the noise ε, or of v or x₀ as the "
                 "model's prediction_type says), of their difference (the direction "
                 "guidance pushes along) and of the combined prediction; below, how alike the two predictions are "
                 "(cosine) and the spread of x_t and x0-hat.",
    "path.png": "How straight each run's path is: x_t's distance from the straight line between its start noise "
                "and its final latents (0 on the line), and how much of the noise's weight in x_t each step "
                "removes (a flow run: σ − σ_next).",
}
TABLE_COLUMNS = ("step", "timestep", "sigma", "alpha_cumprod", "guidance_scale", "scheduler", "norm_guidance",
                 "norm_noise_pred", "cos_uncond_text", "latents_std")
MIME = {".png": "image/png", ".webp": "image/webp", ".gif": "image/gif", ".csv": "text/csv",
        ".json": "application/json", ".npz": "application/octet-stream"}
STYLE = """
body { font: 17px/1.45 system-ui, sans-serif; max-width: 1280px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
figure { margin: 1em 0; } figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figure img[alt="input.png"], figure img[alt="mask.png"] { width: 256px; }
.zoom input { display: none; } .zoom img { cursor: zoom-in; }
.zoom input:checked + img { position: fixed; inset: 0; margin: auto; width: 98vw; height: 98vh; max-width: none;
  object-fit: contain; background: #fff; z-index: 10; cursor: zoom-out; box-shadow: 0 0 0 100vmax rgba(0,0,0,.75); }
.row { display: flex; gap: 2em; } .row figure { max-width: 22em; }
figcaption { color: #555; font-size: 0.92em; max-width: 60em; }
table { border-collapse: collapse; font-size: 0.88em; } td, th { border: 1px solid #ddd; padding: 2px 8px; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff8dc; } .muted { color: #777; } pre { background: #f6f6f6; padding: 1em; overflow: auto; }
"""


def data_uri(path: Path) -> str:
    return f"data:{MIME[path.suffix]};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def figure(folder: Path, name: str, caption: str) -> str:
    """A picture at its own size (at most the page's width), enlarged to the window by a click."""
    return (f'<figure><label class="zoom" title="click to enlarge"><input type="checkbox">'
            f'<img src="{data_uri(folder / name)}" alt="{html.escape(name)}"></label>'
            f"<figcaption><b>{html.escape(name)}</b> — {html.escape(caption)}</figcaption></figure>")


def rows_table(pairs) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in pairs if v not in (None, "")) + "</table>"


def events_table(events: list[dict]) -> str:
    if not events:
        return '<p class="muted">No scripted events: the run went straight through.</p>'
    lines = ["<table><tr><th>when</th><th>change</th><th>note</th><th>applied</th></tr>"]
    for event in sorted(events, key=lambda e: e["at_step"]):
        change = ", ".join(filter(None, [
            f"guidance scale → {event['set_guidance_scale']:g}" if event["set_guidance_scale"] is not None else "",
            f"scheduler → {event['set_scheduler']}" if event["set_scheduler"] else "",
            "pause (in the TUI)" if event["pause"] else ""]))
        applied = "yes" if event["applied"] else f"no ({event.get('why', '')})"
        when = "before step 1" if event["at_step"] == 0 else f"after step {event['at_step']}"
        lines.append(f'<tr class="note"><td class="num">{when}</td><td>{html.escape(change)}</td>'
                     f"<td>{html.escape(event['note'] or '')}</td><td>{html.escape(applied)}</td></tr>")
    return "".join(lines) + "</table>"


def column_titles(prediction_type: str) -> dict[str, str]:
    """The norms' columns named in what the model predicts (|v_t-v_u| for a v model), as the TUI names them."""
    from ..render.readouts import guidance_rows

    return {field: label for field, label, _ in guidance_rows(prediction_type)}


def metrics_table(records) -> str:
    titles = column_titles(records[0].prediction_type if records else "epsilon")
    lines = ["<table><tr>" + "".join(f"<th>{html.escape(titles.get(c, c))}</th>" for c in TABLE_COLUMNS) + "</tr>"]
    for record in records:
        row = {**record.floats(), "scheduler": record.scheduler}
        cells = []
        for column in TABLE_COLUMNS:
            value = row[column]
            text = value if isinstance(value, str) else (f"{value:.0f}" if column in ("step", "timestep")
                                                          else f"{value:.4g}")
            cells.append(f'<td class="num">{html.escape(text)}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(lines) + "</table>"


def run_rows(manifest: dict, pictures: str) -> list[tuple[str, object]]:
    """The run's settings as (label, value) rows, from its manifest: one list for the handout and the page."""
    settings, model = manifest["settings"], manifest["model"]
    return [
        ("prompt", settings["prompt"]), ("negative prompt", settings["negative_prompt"]),
        ("mode", settings["mode"]), ("input picture", settings["image"]), ("mask", settings["mask_image"]),
        ("depth map", settings["depth_map"]),
        ("strength", settings["strength"]), ("seed", manifest["seed"]),
        ("scheduler", settings["scheduler"] or f"{manifest['scheduler_configs'][0]['scheduler']} (the model's own)"),
        ("guidance scale", settings["guidance_scale"]),
        ("steps", f"{manifest['steps_run']} run of {manifest['steps_planned']} planned"),
        ("size", f"{manifest['size']['width']} x {manifest['size']['height']}"),
        ("model", f"{model['id']} (weights sha256 {str(model['weights_sha256'])[:16]}…), "
                  f"predicts {model.get('predicts', 'eps')}, {model['device']} {model['dtype']}"),
        ("stopped early", manifest["stopped"]), ("notices", "; ".join(manifest["notices"])),
        ("pictures", pictures),
    ]


def write_handout(folder: Path, manifest: dict, records) -> Path:
    """Write folder/handout.html from the files already in `folder` and the manifest."""
    model, versions = manifest["model"], manifest["versions"]
    title = manifest["title"] or "stepviz export"
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             "<p class='muted'>The printable handout. <a href='index.html'>index.html</a> is the same run to explore "
             "step by step.</p>"]
    for paragraph in (manifest["description"] or "").strip().split("\n\n"):
        if paragraph.strip():
            parts.append(f"<p>{html.escape(paragraph.strip())}</p>")
    parts.append("<h2>The run</h2>")
    parts.append(rows_table(run_rows(manifest, f"{manifest['preview']} preview, every {manifest['every']} step(s) "
                                               "in the strips")))
    inputs = [name for name in ("input.png", "mask.png") if (folder / name).is_file()]
    if inputs:
        parts.append("<h2>The inputs</h2><div class='row'>"
                     + "".join(figure(folder, name, CAPTIONS[name]) for name in inputs) + "</div>")
    parts.append("<h2>Notes and events</h2>" + events_table(manifest["events"]))
    if (folder / "sheet.png").is_file():
        parts.append("<h2>The run on one slide</h2>" + figure(folder, "sheet.png", CAPTIONS["sheet.png"]))
    parts.append("<h2>Step by step</h2>" + figure(folder, "strip.png", CAPTIONS["strip.png"]))
    parts.append(figure(folder, manifest["animation"], CAPTIONS["animation"]))
    if (folder / "blend.png").is_file():
        parts.append("<h2>The inpaint blend</h2>" + figure(folder, "blend.png", CAPTIONS["blend.png"]))
    if (folder / "extra_channels.png").is_file():
        parts.append("<h2>The extra input channels</h2>"
                     + figure(folder, "extra_channels.png", CAPTIONS["extra_channels.png"]))
    if (folder / "attention.png").is_file():
        parts.append("<h2>What each word attends to</h2>" + figure(folder, "attention.png", CAPTIONS["attention.png"])
                     + f"<p>The maps of every step: <a download='attention.npz' "
                       f"href='{data_uri(folder / 'attention.npz')}'>attention.npz</a> (numpy).</p>")
    if manifest["compare"]:
        parts.append("<h2>Compared runs</h2>" + figure(folder, "compare.png", CAPTIONS["compare.png"]))
        for branch in manifest["compare"]:
            changed = ", ".join(f"{k} = {v}" for k, v in branch["overrides"].items())
            parts.append(figure(folder, branch["file"], f"{branch['label']}: the main run with {changed}, "
                                                        "without its scripted events."))
            if branch.get("sheet") and (folder / branch["sheet"]).is_file():
                parts.append(figure(folder, branch["sheet"], f"{branch['label']} on one slide."))
    parts.append("<h2>Schedule and guidance</h2>" + figure(folder, "schedule.png", CAPTIONS["schedule.png"]))
    parts.append(figure(folder, "norms.png", CAPTIONS["norms.png"]))
    if (folder / "path.png").is_file():  # exports written before path.png existed have none
        parts.append(figure(folder, "path.png", CAPTIONS["path.png"]))
    parts.append(f"<h2>Metrics</h2><p>Every number of every step is in "
                 f"<a download='metrics.csv' href='{data_uri(folder / 'metrics.csv')}'>metrics.csv</a> and "
                 f"<a download='metrics.json' href='{data_uri(folder / 'metrics.json')}'>metrics.json</a>; "
                 f"a selection:</p>" + metrics_table(records))
    parts.append("<h2>How to make these pictures again</h2>" + rows_table(
        [(name, version) for name, version in versions.items()]
        + [("weights hash method", model["weights_hash_method"]), ("scenario", manifest["scenario"])]))
    parts.append("<details><summary>manifest.json</summary><pre>"
                 + html.escape(json.dumps(manifest, indent=2, ensure_ascii=False, default=str)) + "</pre></details>")
    parts.append("</body></html>")
    path = folder / "handout.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
