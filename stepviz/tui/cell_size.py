"""The terminal's cell size in pixels, found without asking a terminal that may not answer.

textual-image finds it once, when it is imported: from the terminal's window-size ioctl, else by an
escape-sequence query. A pty before its first resize (or `script` with no terminal) reports 0 rows and
0 columns, which textual-image divided by (ZeroDivisionError), and a terminal that does not answer the
query printed a TimeoutError traceback. `prime_cell_size()` fills textual-image's cache first, from the
ioctl when it gives real sizes, else from textual-serve's TEXTUAL_CELL_WIDTH/HEIGHT, else VT340 cells
(10x20 pixels, textual-image's own fallback). Half-cell pictures (the default) are sized in cells by
stepviz (widgets/picture.fit_cells), so for them the pixel size does not matter.
"""

from __future__ import annotations

import logging
import os
import sys

VT340_CELL = (10, 20)


def prime_cell_size() -> tuple[int, int]:
    """Fill textual-image's cell-size cache (call before importing textual_image.widget)."""
    from textual_image import _terminal

    cached = getattr(_terminal.get_cell_size, "_result", None)  # textual-image's own cache of its answer
    if cached is not None:
        return tuple(cached)
    size = _from_ioctl(_terminal) or _from_environment() or VT340_CELL
    _terminal.get_cell_size._result = _terminal.CellSize(*size)
    logging.getLogger("textual_image").setLevel(logging.ERROR)  # its graphics probes warn with tracebacks
    return size


def _from_ioctl(terminal) -> tuple[int, int] | None:
    try:
        if not (sys.__stdout__ and sys.__stdout__.isatty()):
            return None
        rows, columns, width, height = terminal.get_tiocgwinsz()
    except (OSError, ValueError):
        return None
    if min(rows, columns, width, height) <= 0 or width < columns or height < rows:
        return None
    return width // columns, height // rows


def _from_environment() -> tuple[int, int] | None:
    width, height = os.environ.get("TEXTUAL_CELL_WIDTH", ""), os.environ.get("TEXTUAL_CELL_HEIGHT", "")
    if width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0:
        return int(width), int(height)
    return None
