"""The TUI starts in any terminal: one of 0x0 (a pty before its first resize) that answers no query, draws once
it is sized, and quits on `q`. A real pty and a real process: the terminal is the point here."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

ESCAPES = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07]*\x07|P[^\x1b]*\x1b\\|[@-Z\\-_])")


def set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def read_until(fd: int, process, done, seconds: float) -> bytes:
    """What the app wrote until `done(what was written)`, the process ends, or time is up."""
    raw, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline and not done(raw):
        if select.select([fd], [], [], 0.2)[0]:
            try:
                raw += os.read(fd, 1 << 16)
            except OSError:
                break
        elif process.poll() is not None:
            break
    return raw


def start_tui(model_dir, rows: int, columns: int):
    """`stepviz tui` on the tiny model in a new process whose terminal is a pty of rows x columns: (the pty's
    master end, the process)."""
    master, slave = pty.openpty()
    set_size(slave, rows, columns)
    process = subprocess.Popen(
        [sys.executable, "-m", "stepviz", "tui", "--model", str(model_dir), "--steps", "2", "--height", "32",
         "--width", "32"], stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        env=dict(os.environ, TERM="xterm-256color", OMP_NUM_THREADS="1"))
    os.close(slave)
    return master, process


def test_a_0x0_terminal_that_answers_nothing_starts_draws_when_sized_and_quits(tiny_model_dir):
    master, process = start_tui(tiny_model_dir, 0, 0)
    try:
        before = read_until(master, process, lambda raw: b"space" in ESCAPES.sub(b"", raw), 60)  # drawn at 80x25
        assert process.poll() is None, before.decode(errors="replace")
        assert b"Traceback" not in before and b"ZeroDivisionError" not in before
        assert b"\x1b[16t" not in before  # the pixel-size query a silent terminal would never answer
        set_size(master, 30, 100)
        os.kill(process.pid, signal.SIGWINCH)
        below_row_25 = re.compile(rb"\x1b\[(2[6-9]|30);\d+H")
        drawn = read_until(master, process, below_row_25.search, 60)
        assert below_row_25.search(drawn), "nothing drawn below row 25 after the resize"
        assert b"Traceback" not in drawn
        os.write(master, b"q")
        read_until(master, process, lambda raw: process.poll() is not None, 30)  # drained: a full pty blocks it
        assert process.wait(5) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        os.close(master)


def test_the_cell_size_is_never_asked_of_a_terminal_of_0x0(monkeypatch):
    from textual_image import _terminal

    from stepviz.tui import cell_size

    monkeypatch.delattr(_terminal.get_cell_size, "_result", raising=False)
    monkeypatch.setattr(_terminal, "get_tiocgwinsz", lambda: (0, 0, 0, 0))
    monkeypatch.setattr(cell_size.sys, "__stdout__", type("Tty", (), {"isatty": lambda self: True})())
    monkeypatch.delenv("TEXTUAL_CELL_WIDTH", raising=False)
    assert cell_size.prime_cell_size() == cell_size.VT340_CELL
    assert tuple(_terminal.get_cell_size()) == cell_size.VT340_CELL  # cached: no ioctl, no escape query


@pytest.mark.parametrize("answer, expected", [((40, 100, 1000, 800), (10, 20)), ((40, 100, 0, 0), (10, 20)),
                                              ((50, 200, 1600, 1000), (8, 20))])
def test_the_cell_size_comes_from_the_ioctl_when_it_knows(monkeypatch, answer, expected):
    from textual_image import _terminal

    from stepviz.tui import cell_size

    monkeypatch.delattr(_terminal.get_cell_size, "_result", raising=False)
    monkeypatch.setattr(_terminal, "get_tiocgwinsz", lambda: answer)
    monkeypatch.setattr(cell_size.sys, "__stdout__", type("Tty", (), {"isatty": lambda self: True})())
    monkeypatch.delenv("TEXTUAL_CELL_WIDTH", raising=False)
    assert cell_size.prime_cell_size() == expected
