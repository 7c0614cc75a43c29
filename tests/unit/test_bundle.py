"""course/checks/bundle.py: each assignment's adcheck.py holds the shared parts and its own
declarations, and no other assignment's."""

import ast

import pytest

from course.authoring import build
from course.checks import bundle

ASSIGNMENTS = build.assignments()


def _defined(text):
    return {node.name for node in ast.parse(text).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))} | {
        target.id for node in ast.parse(text).body if isinstance(node, ast.Assign)
        for target in node.targets if isinstance(target, ast.Name)}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_bundle_holds_its_own_declarations_and_no_others(assignment):
    text = bundle.bundle(assignment)
    names = _defined(text)
    own = _defined(bundle.declarations(assignment).read_text())
    assert own <= names
    for other in ASSIGNMENTS:
        if other != assignment:
            checks = {n for n in _defined(bundle.declarations(other).read_text())
                      if n.startswith("check_")}
            assert not checks & names, f"{assignment}'s bundle holds {other}'s checks"
    assert "def _judge" not in text and "JudgeTestCells" not in text
    compile(text, "adcheck.py", "exec")


def test_a_bundles_imports_come_first_standard_library_then_others():
    text = bundle.bundle(ASSIGNMENTS[0])
    tree = ast.parse(text)
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert imports and all(node.lineno < tree.body[-1].lineno for node in imports)
    modules = [(node.module if isinstance(node, ast.ImportFrom) else node.names[0].name)
               for node in imports]
    third_party = [m.split(".")[0] in ("jax", "numpy") for m in modules]
    assert third_party == sorted(third_party), modules
    assert not any(node.level for node in imports if isinstance(node, ast.ImportFrom))


def test_an_assignment_without_declarations_has_no_bundle():
    assert bundle.declarations("99_nothing") is None
    with pytest.raises(ValueError):
        bundle.bundle("99_nothing")
