"""index.html: the export as one explorable page that works offline, on any device, with nothing installed.

A step slider (arrow keys, play/pause) moves every view to step k together: x_t and x0-hat, the latent channels,
the inpaint blend or the UNet's extra channels, the compared runs side by side (labelled as the TUI's compare view
labels them), a word's attention map over x0-hat, and a cursor on the norms and schedule plots, which the page
draws itself (SVG; hovering a point gives its values). The lesson's notes appear at their steps with their claims
measured on these runs. The settings, the manifest and the command line that makes the export again close it.

Everything is in the one file: the pictures and numbers as JSON (page_data.py), the page's own small script and
stylesheet (page_assets/, inlined here). It loads nothing from anywhere: it opens from file://, a USB stick, or any
static web host. The printable handout is the second page, handout.html (handout.py).
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path

from .handout import run_rows
from .page_command import measured_claims, reproducing_command
from .page_data import LETTERS, attention_data, main_extras, notes_data, page_data, run_data

HANDOUT = "handout.html"


def asset(name: str) -> str:
    """A file of page_assets/ (shipped as package data)."""
    return files("stepviz.export").joinpath("page_assets").joinpath(name).read_text(encoding="utf-8")


def script_json(data) -> str:
    """JSON safe inside <script>: no '</' (which could end the element), no NaN."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def _rows(pairs) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in pairs if v not in (None, "")) + "</table>"


def settings_rows(manifest: dict) -> str:
    return _rows([*run_rows(manifest, f"{manifest['preview']} preview"),
                  *((f"{name} version", version) for name, version in manifest["versions"].items())])


def body(manifest: dict, command: str, caveat: str | None, data: dict) -> str:
    """The page's HTML around the views the script fills in."""
    title = html.escape(data["title"])
    paragraphs = [p.strip() for p in (manifest["description"] or "").split("\n\n") if p.strip()]
    description = f"<p>{html.escape(paragraphs[0])}</p>" if paragraphs else ""
    more = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs[1:])
    settings = manifest["settings"]
    first = data["runs"][0]["steps"][0]
    compare = len(data["runs"]) > 1
    parts = [
        f"<header><h1>{title}</h1>{description}"
        f"<p><b>prompt</b> {html.escape(repr(settings['prompt']))} · seed {manifest['seed']} · "
        f"{manifest['steps_run']} steps · {html.escape(str(first['scheduler']))} · pictures: "
        f"{html.escape(manifest['preview'])} preview. "
        f"<a href='{HANDOUT}'>Printable handout</a> (strips and tables, one page to print).</p>"
        "<noscript><p>This page moves through the steps with a small script, which is off: the printable handout "
        f"<a href='{HANDOUT}'>{HANDOUT}</a> shows the same run without one.</p></noscript></header>",
        "<div class='controls' role='group' aria-label='step'>"
        "<button id='play' type='button' aria-label='play'>▶ play</button>"
        "<button id='prev' type='button' aria-label='previous step'>‹ back</button>"
        "<button id='next' type='button' aria-label='next step'>next ›</button>"
        f"<input id='step' type='range' min='1' max='{max(len(run['steps']) for run in data['runs'])}' value='1' "
        "step='1' "
        "aria-label='step shown'>"
        "<div id='readout' class='readout' aria-live='polite'></div></div>",
        "<main><div class='grid'>",
        "<section class='panel span2' id='pictures-panel'><h2>This step</h2><div class='pics' id='pictures'></div>"
        "<p class='muted'>x_t: the latents after step k, decoded as the sampler carries them. x0-hat: the model's "
        "guess of the finished picture at step k. Channels: the 4 latent channels as grey tiles (−3 black, +3 "
        "white).</p></section>",
        "<section class='panel'><h2>The note at this step</h2><div id='note-now' class='note-now'></div></section>",
    ]
    if data["extras"]["inputs"]:
        parts.append("<section class='panel'><h2>What the run starts from</h2><div class='pics' id='given'></div>"
                     "<p class='muted'>The pipeline resizes the input to the run's size and encodes it with the VAE; "
                     "at latent size the mask is 8 times coarser.</p></section>")
    if data["extras"].get("blend") or data["extras"].get("extra_channels"):
        parts.append("<section class='panel span2' id='inputs-panel'><h2 id='inputs-title'></h2>"
                     "<div class='pics' id='inputs'></div><p class='muted' id='inputs-caption'></p></section>")
    if compare:
        parts.append("<section class='panel wide'><h2>The runs side by side, same seed, same step in each</h2>"
                     "<div class='runs' id='runs'></div></section>")
    if data["attention"]:
        parts.append("<section class='panel' id='attention-panel'><h2>What each word attends to</h2>"
                     "<p class='muted'>Pick a word: its cross-attention map at step k over x0-hat. Dark red = an "
                     "even spread, white = 2.5x the mean or more, black = none.</p>"
                     "<div class='tokens' id='tokens' role='group' aria-label='word'></div>"
                     "<figure><canvas id='attention' width='256' height='256'></canvas>"
                     "<figcaption id='attention-caption'></figcaption></figure></section>")
    parts += [
        "<section class='panel'><h2>Guidance in numbers</h2><div class='plot' id='norms'></div>"
        "<div class='plot' id='angle'></div></section>",
        "<section class='panel'><h2>The noise schedule</h2><div class='plot' id='sigma'></div>"
        "<div class='plot' id='abar'></div></section>",
        f"<section class='panel wide'><h2>The lesson: its notes and what they claim</h2>{more}"
        "<p class='muted'>Each claim is checked by <code>stepviz lessons check</code>, measured here on the runs of "
        "this export. Click a step to go there.</p><ol class='notes-list' id='notes'></ol></section>",
        "<section class='panel wide'><h2>Make it again</h2>"
        f"<code class='command'>{html.escape(command)}</code>"
        + (f"<p class='muted'>{html.escape(caveat)}.</p>" if caveat else "")
        + settings_rows(manifest)
        + "<details><summary>manifest.json</summary><pre>"
        + html.escape(json.dumps(manifest, indent=2, ensure_ascii=False, default=str)) + "</pre></details></section>",
        "</div></main>",
    ]
    return "".join(parts)


def gather(manifest: dict, settings, main, others, pictures: list, kind: str) -> dict:
    """The page's data from the runs the export played (`pictures`: each run's (x_t, x0-hat) per step)."""
    edited = " (with its edits)" if settings.events else ""
    labels = [f"{settings.title or 'the run'}{edited}"] + [run.label for run in others]
    runs = [run_data(LETTERS[n % len(LETTERS)], label, run, run_pictures, kind)
            for n, (label, run, run_pictures) in enumerate(zip(labels, [main, *others], pictures))]
    played = {"main": main.stepper, **{run.label: run.stepper for run in others}}
    notes = notes_data(manifest["events"], measured_claims(settings, played))
    extras = main_extras(main.stepper, kind, settings.input_pictures())
    return page_data(manifest, runs, extras, attention_data(main.stepper, pictures[0]),
                     notes, main.stepper.prediction_type)


def write_page(folder: Path, manifest: dict, settings, main, others, pictures: list, kind: str,
               every: int = 1) -> Path:
    """Write folder/index.html; `main` and `others` are the export's finished runs."""
    data = gather(manifest, settings, main, others, pictures, kind)
    command, caveat = reproducing_command(settings, kind, every)
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(data['title'])} · stepviz</title><style>{asset('page.css')}</style></head><body>"
            + body(manifest, command, caveat, data)
            + f"<script type='application/json' id='stepviz-data'>{script_json(data)}</script>"
            + f"<script>{asset('page.js')}</script></body></html>")
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
