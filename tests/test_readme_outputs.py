"""What README.md prints comes from running it: the Python example's line, the course loop's trace report and the
lessons check sample (lines the README leaves out are marked '...'; runs' timings are not compared)."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def block_after(marker: str, fence: str = "```") -> str:
    """The first fenced block after `marker` in README."""
    start = README.index(marker)
    opening = README.index(fence, start)
    body = README.index("\n", opening) + 1
    return README[body:README.index("```", body)]


def collapsed(text: str) -> str:
    text = re.sub(r"played in [\d.]+ s", "played in N s", text)
    return " ".join(text.split())


def assert_shown_in(readme_block: str, output: str) -> None:
    """Every stretch of the README's block between '...' lines is in the output, whitespace aside."""
    pieces = re.split(r"\n\s*\.\.\.\s*\n", "\n" + readme_block + "\n")
    said = collapsed(output)
    for piece in pieces:
        assert collapsed(piece) in said, f"README shows:\n{piece}\nthe run printed:\n{output}"


def test_the_python_example_prints_what_readme_says():
    code = block_after("## Use it from Python")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    expected = re.search(r"prints `([^`]+)`", README[README.index("## Use it from Python"):]).group(1)
    assert printed.getvalue().strip() == expected


def test_the_course_loops_trace_report_is_what_readme_shows():
    done = subprocess.run([sys.executable, "-m", "stepviz", "trace", "course-loop"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1
    assert_shown_in(block_after("With LMS the report reads:"), done.stdout)


def test_the_lessons_check_sample_is_what_it_prints():
    start = README.index("$ stepviz lessons check guidance\n")
    sample = README[README.index("\n", start) + 1:README.index("```", start)]
    done = subprocess.run([sys.executable, "-m", "stepviz", "lessons", "check", "guidance"], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_shown_in(sample, done.stdout)
