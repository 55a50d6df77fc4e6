"""The lessons and example loops shipped inside the package, found by name.

`stepviz scenarios` lists the lessons (stepviz/lessons/*.toml); `stepviz trace course-loop` runs an example
loop (stepviz/lessons/examples/*.py).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..engine.checks import StepvizInputError

LESSONS_FOLDER = Path(__file__).resolve().parent
EXAMPLES_FOLDER = LESSONS_FOLDER / "examples"


def example_names() -> list[str]:
    return sorted(p.stem.replace("_", "-") for p in EXAMPLES_FOLDER.glob("*.py"))


def script_path(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = EXAMPLES_FOLDER / f"{name_or_path.replace('-', '_')}.py"
    if not path.suffix and shipped.is_file():
        return shipped
    raise StepvizInputError(f"SCRIPT={name_or_path!r}: no such file; give a Python script or a shipped example "
                            f"({', '.join(example_names())})")


class ScenarioError(StepvizInputError):
    """A scenario file is missing or malformed; the message names the file, the key, its line and what is allowed."""


def lesson_path(name_or_path: str | Path) -> Path:
    """A scenario file: an existing path, or the name of a ready lesson ('guidance')."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    stem = path.name.removesuffix(".toml")
    if path.parent == Path(".") and (LESSONS_FOLDER / f"{stem}.toml").is_file():
        return LESSONS_FOLDER / f"{stem}.toml"
    names = ", ".join(p.stem for p in sorted(LESSONS_FOLDER.glob("*.toml")))
    raise ScenarioError(f"scenario {str(name_or_path)!r} not found: give a .toml file or a ready lesson ({names})")


def list_scenarios() -> list[tuple[str, str]]:
    """(name, one line) for every ready lesson, in name order."""
    found = []
    for path in sorted(LESSONS_FOLDER.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError) as exc:
            found.append((path.stem, f"(unreadable: {exc})"))
            continue
        found.append((path.stem, one_line(str(data.get("title", "")), str(data.get("description", "")))))
    return found


def one_line(title: str, description: str, width: int = 100) -> str:
    """The description's first line (its summary), else the title, cut to `width` characters."""
    line = description.strip().split("\n")[0].strip() or title
    return line if len(line) <= width else line[: width - 1] + "…"
