"""What stepviz learns about a pipeline is kept beside it (engine/pipeline_facts.py), never set on it."""

import ast
from pathlib import Path

import stepviz
from stepviz.engine.pipeline_facts import facts_of

PACKAGE = Path(stepviz.__file__).parent
# the names stepviz's code gives a diffusers pipeline (its parts are reached through it: pipe.vae)
DIFFUSERS_OBJECTS = {"pipe", "pipeline"}
# the learner's own loops that `stepviz trace` runs: they set pipe.scheduler as the course does
LEARNER_SCRIPTS = PACKAGE / "lessons" / "examples"


def _names_along(node) -> set[str]:
    """The names of an attribute chain: {'self', 'pipe', 'vae'} for self.pipe.vae (a call ends the chain)."""
    names = set()
    while isinstance(node, ast.Attribute):
        names.add(node.attr)
        node = node.value
    return names | ({node.id} if isinstance(node, ast.Name) else set())


def attributes_set_on_diffusers_objects(source: str) -> list[int]:
    """Lines that assign an attribute of a pipeline (or of one of its parts), or call setattr on one."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            targets = [ast.Attribute(value=node.args[0], attr="?")] if node.args else []
        for target in targets:
            for element in (target.elts if isinstance(target, ast.Tuple) else [target]):
                if isinstance(element, ast.Attribute) and (
                        _names_along(element.value) & DIFFUSERS_OBJECTS or "stepviz" in element.attr):
                    lines.append(node.lineno)
    return lines


def test_the_checker_finds_an_attribute_set_on_a_pipeline():
    assert attributes_set_on_diffusers_objects("pipe._stepviz_cache = 1\nx.y = 2\n") == [1]
    assert attributes_set_on_diffusers_objects("def f(self):\n    self.pipe.vae.extra = 3\n") == [2]
    assert attributes_set_on_diffusers_objects("setattr(pipe, 'a', 1)\nfacts_of(pipe).notices = []\n") == [1]


def test_nothing_in_stepviz_sets_attributes_on_a_diffusers_object():
    found = [f"{path.relative_to(PACKAGE)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
             if LEARNER_SCRIPTS not in path.parents
             for line in attributes_set_on_diffusers_objects(path.read_text(encoding="utf-8"))]
    assert found == []


def test_a_loaded_pipeline_has_its_facts_beside_it(tiny_model_dir):
    pipe = stepviz.load_pipeline(tiny_model_dir, device="cpu")
    facts = facts_of(pipe)
    assert facts.model_id == str(tiny_model_dir) and facts is facts_of(pipe)
    assert not any(name.startswith(("stepviz", "_stepviz")) for name in vars(pipe))
