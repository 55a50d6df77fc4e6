"""Open exported pages in the system's Chromium: size, time to first paint from file://, screenshots, errors.

    python bench/page_in_browser.py EXPORT_DIR [EXPORT_DIR ...] [--shots DIR]

For each export: index.html's size, first-contentful-paint, the moment the page's script has drawn every view
(its "stepviz-ready" mark) and the load event (performance entries, from navigation start), the
requests that left the file (none expected), console and page errors; screenshots at 1280x800 and 390x844 when
--shots is given. Needs Debian's chromium and the playwright package (never its own browser download).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


def chromium_path() -> str | None:
    return next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)


SIZE_BUDGET = 12 * 2**20  # the bound for a 25-step lesson with 3 compared runs
PAINT = "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime"
LOADED = "() => performance.getEntriesByType('navigation')[0].loadEventEnd"
READY = "() => (performance.getEntriesByName('stepviz-ready')[0] || {}).startTime"  # the page's script: all drawn


def measure(browser, folder: Path, name: str, size: tuple[int, int], shots: Path | None) -> None:
    """Open folder/index.html at `size`; print its figures; screenshots into `shots`."""
    page_file = (folder / "index.html").resolve()
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    outside, problems = [], []
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else outside.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0")
    paint, loaded, ready = page.evaluate(PAINT), page.evaluate(LOADED), page.evaluate(READY)
    megabytes = page_file.stat().st_size / 2**20
    print(f"{folder.name:<24} {name:<8} {megabytes:6.2f} MiB ({megabytes * 2**20 / SIZE_BUDGET:4.0%} of 12 MiB)  "
          f"first paint {paint:5.0f} ms  views drawn {ready:5.0f} ms  load {loaded:5.0f} ms  "
          f"requests out {len(outside)}  errors {problems}")
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / f"{folder.name}-{name}.png"))
        page.keyboard.press("End")
        page.screenshot(path=str(shots / f"{folder.name}-{name}-end.png"))
        page.screenshot(path=str(shots / f"{folder.name}-{name}-full.png"), full_page=True)
    page.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("exports", nargs="+", type=Path)
    parser.add_argument("--shots", type=Path)
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for folder in args.exports:
            for name, size in VIEWPORTS.items():
                measure(browser, folder, name, size, args.shots)
        browser.close()


if __name__ == "__main__":
    main()
