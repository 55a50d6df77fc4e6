"""The package's layering, read from the source: every import statement of every module (ast), those
inside functions included, relative imports resolved.

- stepviz/engine imports nothing of the project outside engine/, and never Textual;
- render/, export/, lessons/ and run/ import nothing of stepviz.tui, nor Textual (the notebook and the
  exporter run without a terminal UI);
- stepviz's modules import each other without a cycle;
- the sub-packages are layers that only import downward, in the order stepviz/__init__.py states.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "stepviz"
NO_TUI = ("stepviz.render", "stepviz.export", "stepviz.lessons", "stepviz.run")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, functions: bool = True) -> set[str]:
    """The modules `name` imports (absolute names); `functions=False`: only its module-level statements."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if functions else _module_level(tree.body)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            # `from package import module` imports the module too
            found.update(f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in MODULES)
    return found


def _module_level(body):
    """Statements run when the module is imported: the top level and its if/try blocks, not function bodies
    nor `if TYPE_CHECKING:` blocks."""
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    yield from _module_level(child.body if isinstance(child, ast.ExceptHandler) else [child])


def project_imports(name: str, functions: bool = True) -> set[str]:
    return {m for m in imports_of(name, functions) if m == "stepviz" or m.startswith("stepviz.")}


def test_the_reader_sees_imports_at_every_depth():
    """The rules below can only hold if the reader finds what is there: a module-level relative import,
    one inside a method, and `from package import module`."""
    assert "stepviz.engine.records" in project_imports("stepviz.engine.stepper", functions=False)
    session = project_imports("stepviz.run.session")
    assert "stepviz.run.play" in session  # inside RunSession.play
    assert "stepviz.run.play" not in project_imports("stepviz.run.session", functions=False)
    assert "stepviz.render.plots" in project_imports("stepviz.export.run_export")  # from ..render import plots
    assert "textual.app" in imports_of("stepviz.tui.app") or "textual" in imports_of("stepviz.tui.app")


@pytest.mark.parametrize("name", [m for m in MODULES if m.startswith("stepviz.engine")])
def test_the_engine_imports_nothing_of_the_project_nor_textual(name):
    outside = sorted(m for m in project_imports(name) if not (m + ".").startswith("stepviz.engine."))
    assert not outside, f"{name} imports {outside}: the engine imports nothing of stepviz outside engine/"
    textual = sorted(m for m in imports_of(name) if m.split(".")[0] == "textual")
    assert not textual, f"{name} imports {textual}"


@pytest.mark.parametrize("name", [m for m in MODULES if m.startswith(NO_TUI)])
def test_render_export_lessons_and_run_import_no_tui(name):
    tui = sorted(m for m in imports_of(name) if m.startswith("stepviz.tui") or m.split(".")[0] == "textual")
    assert not tui, f"{name} imports {tui}: only the CLI and tui/ itself may import the terminal UI"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a module importing itself), Tarjan."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("functions", [False, True], ids=["module-level imports", "all imports"])
def test_no_import_cycles_between_stepviz_modules(functions):
    """No cycle among module-level imports (a cycle there breaks imports by their order); none either
    counting the imports inside functions (deferred for speed, not to hide a cycle)."""
    graph = {name: {m for m in project_imports(name, functions) if m in MODULES and m != name
                    and not name.startswith(m + ".")}  # a module importing its own package's __init__
             for name in MODULES}
    assert cycles(graph) == []


# what the engine may import besides the standard library: torch and diffusers, and the picture types
# (PIL, numpy) that diffusers' own pipelines take as inputs
ENGINE_THIRD_PARTY = {"torch", "diffusers", "PIL", "numpy"}


def stated_layers() -> dict[str, int]:
    """{sub-package: rank} from the package docstring's line 'a, b <- c <- ...': a rank imports only lower ones."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8")))
    line = next(line for line in doc.splitlines() if line.count("<-") >= 3)
    return {name.strip(): rank for rank, group in enumerate(line.split("<-")) for name in group.split(",")}


def layer_of(module: str) -> str | None:
    """'engine' for stepviz.engine.stepper, 'cli' for stepviz.cli; None for the top-level package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "stepviz" else None


def upward_imports(modules, imports, layers: dict[str, int]) -> list[str]:
    """'module imports other (a may not import b)' for each import between layers that does not point down."""
    wrong = []
    for name in modules:
        mine = layer_of(name)
        if mine is None or mine == "__main__":
            continue  # the top-level package names things lazily; __main__ runs the CLI
        for other in sorted(imports(name)):
            theirs = layer_of(other)
            if theirs is None or theirs == mine:
                continue
            if mine not in layers or theirs not in layers or layers[theirs] >= layers[mine]:
                wrong.append(f"{name} imports {other} ({mine} may not import {theirs})")
    return wrong


def test_every_sub_package_has_its_layer():
    present = {layer_of(name) for name in MODULES} - {None, "__main__"}
    assert present <= set(stated_layers()), f"not in the docstring's layers: {sorted(present - set(stated_layers()))}"


def test_imports_only_point_down_the_layers():
    assert upward_imports(MODULES, project_imports, stated_layers()) == []


def test_an_upward_import_is_named():
    graph = {"stepviz.low.a": {"stepviz.high.b"}, "stepviz.high.b": {"stepviz.low.a"}}
    assert upward_imports(graph, graph.get, {"low": 0, "high": 1}) == [
        "stepviz.low.a imports stepviz.high.b (low may not import high)"]


@pytest.mark.parametrize("name", [m for m in MODULES if m.startswith("stepviz.engine")])
def test_the_engine_imports_only_torch_diffusers_and_the_standard_library(name):
    outside = sorted(m for m in imports_of(name) if m.split(".")[0] not in
                     {"stepviz", *sys.stdlib_module_names, *ENGINE_THIRD_PARTY})
    assert not outside, f"{name} imports {outside}"


def test_nothing_in_the_package_imports_the_lab():
    lab = sorted(name for name in MODULES if any(m.split(".")[0] == "training" for m in imports_of(name)))
    assert not lab, f"{lab} import training/ (the lab is not installed)"
