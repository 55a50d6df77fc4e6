"""index.html, the explorable page: one self-contained file whose data moves with the step, driven in Chromium.

The browser tests use the system's Chromium (Debian's `chromium`) through playwright, never playwright's own
browser download; they are skipped only when no Chromium or no playwright is found (CI installs both).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from stepviz.export.page import script_json
from stepviz.export.page_command import reproducing_command
from stepviz.export.run_export import export_run
from stepviz.run.lesson_file import load_scenario

FAST = dict(steps=3, height=32, width=32)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_dir):
    """The guidance lesson (a main run with an edit, three compared runs) exported on the tiny model."""
    from stepviz.models import load_pipeline

    out = tmp_path_factory.mktemp("page") / "guidance"
    settings = load_scenario("guidance").with_overrides(model=str(tiny_model_dir), **FAST)
    export_run(settings, out, kind="approx", pipe=load_pipeline(str(tiny_model_dir)))
    return out


def page_data(folder) -> dict:
    page = (folder / "index.html").read_text(encoding="utf-8")
    found = re.search(r"<script type='application/json' id='stepviz-data'>(.*?)</script>", page, re.S)
    return json.loads(found.group(1))


def test_the_page_holds_every_run_step_and_note_and_loads_nothing(exported):
    page = (exported / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(http" not in page
    assert not re.search(r"<script[^>]*\bsrc=", page)  # the script is inlined, not loaded
    data = page_data(exported)
    manifest = json.loads((exported / "manifest.json").read_text())
    assert [run["label"] for run in data["runs"]] == ["What classifier-free guidance does (with its edits)",
                                                      "guidance 1", "guidance 7.5", "guidance 15"]
    assert [run["letter"] for run in data["runs"]] == list("ABCD")
    for run in data["runs"]:
        assert len(run["steps"]) == 3
        assert all(step["x_t"].startswith("data:image/png;base64,") for step in run["steps"])
    assert len({step["x0"] for step in data["runs"][0]["steps"]}) == 3  # a picture per step, not one repeated
    assert [step["guidance_scale"] for step in data["runs"][1]["steps"]] == [1.0] * 3
    assert len(data["extras"]["channels"]) == 3
    attention = data["attention"]
    tokens = len(attention["tokens"])
    assert len(attention["maps"]) * 3 // 4 >= 3 * tokens * attention["height"] * attention["width"]
    # notes at their steps, with the lesson's claims measured on these runs
    assert [note["at_step"] for note in data["notes"]] == [e["at_step"] for e in manifest["events"]
                                                          if e["note"] or e["set_guidance_scale"] is not None]
    claims = [claim for note in data["notes"] for claim in note["claims"]]
    assert claims and all(claim["measured"] and isinstance(claim["passed"], bool) for claim in claims)
    assert re.search(r"stepviz export guidance --model \S+ --steps 3 --height 32 --width 32 --preview approx --out DIR",
                     page)
    assert "handout.html" in manifest["files"] and (exported / "handout.html").is_file()


def test_script_json_cannot_end_its_script_element():
    text = script_json({"note": "a </script><b>"})
    assert "</" not in text and json.loads(text) == {"note": "a </script><b>"}
    with pytest.raises(ValueError):
        script_json({"x": float("nan")})


def test_the_command_line_names_what_differs_from_the_lesson():
    settings = load_scenario("guidance")
    assert reproducing_command(settings, "full", 1) == ("stepviz export guidance --preview full --out DIR", None)
    command, caveat = reproducing_command(settings.with_overrides(seed=3, guidance_scale=2.0), "approx", 2)
    assert command == "stepviz export guidance --seed 3 --guidance 2 --preview approx --every 2 --out DIR"
    assert caveat is None


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if chromium() is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser, folder, width=1280, height=800):
    page = browser.new_page(viewport={"width": width, "height": height})
    outside, problems = [], []
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else outside.append(r.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto((folder / "index.html").resolve().as_uri())
    page.wait_for_load_state("load")
    return page, outside, problems


def test_the_slider_moves_every_view_in_chromium(browser, exported):
    page, outside, problems = open_page(browser, exported)
    x0 = page.locator("#pictures img").nth(1)
    first = x0.get_attribute("src")
    assert "step 1 / 3" in page.locator("#readout").inner_text()
    cursor = page.locator("#sigma line[stroke='#000']")
    at_first = cursor.get_attribute("x1")
    page.keyboard.press("ArrowRight")  # the arrow keys step
    assert "step 2 / 3" in page.locator("#readout").inner_text()
    assert x0.get_attribute("src") != first and cursor.get_attribute("x1") != at_first
    page.locator("#step").evaluate("(s) => { s.value = 3; s.dispatchEvent(new Event('input')); }")  # the slider
    data = page_data(exported)
    assert x0.get_attribute("src") == data["runs"][0]["steps"][2]["x0"]
    # the compared runs, side by side at the same step, labelled as in the TUI's compare view
    cards = page.locator("#runs .run")
    assert cards.count() == 4 and cards.nth(1).locator("h3").inner_text() == "B: guidance 1"
    assert cards.nth(1).locator("img").nth(1).get_attribute("src") == data["runs"][1]["steps"][2]["x0"]
    # a word's attention map over x0-hat
    page.locator("#tokens button", has_text="triangle").click()
    assert "'triangle' at step 3" in page.locator("#attention-caption").inner_text()
    lit = page.locator("#attention").evaluate("(c) => Array.from(c.getContext('2d').getImageData(0, 0, c.width, "
                                              "c.height).data).some((v, i) => i % 4 < 3 && v > 0)")
    assert lit
    # the note of the step shows, with its claims
    assert page.locator("#note-now").inner_text().strip()
    page.locator("#play").click()
    assert page.locator("#play").inner_text().startswith("⏸")
    assert outside == [] and problems == []
    page.close()


def test_the_page_fits_a_phone_without_sideways_scrolling(browser, exported):
    page, outside, problems = open_page(browser, exported, 360, 740)
    scroll, client = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client
    smallest = page.evaluate("""() => Math.min(...Array.from(document.querySelectorAll('figcaption, .readout, h3, '
        + '.legend, .plot text, .tokens button')).map((e) => parseFloat(getComputedStyle(e).fontSize)))""")
    assert smallest >= 16
    assert outside == [] and problems == []
    page.close()
