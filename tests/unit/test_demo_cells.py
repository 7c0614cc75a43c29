"""course/authoring/demo_cells.py: which graded cells would read a name only a skipped demo cell
binds."""

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course.authoring import demo_cells


def _demo(source):
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["demo"]
    return cell


def _notebook(*cells):
    return new_notebook(cells=[new_code_cell(c) if isinstance(c, str) else c for c in cells])


def test_a_demo_cell_is_tagged_and_not_an_nbgrader_cell():
    graded = _demo("x = 1")
    graded.metadata["nbgrader"] = {"grade": True, "grade_id": "t"}
    assert demo_cells.is_demo(_demo("x = 1"))
    assert not demo_cells.is_demo(new_code_cell("x = 1"))
    assert not demo_cells.is_demo(graded)
    assert not demo_cells.is_demo(new_markdown_cell("x = 1"))


@pytest.mark.parametrize("cells, found", [
    (["import jax", _demo("table = jax.numpy.ones(3)"), "print(table)"], [(2, "table", 1)]),
    ([_demo("n = 3"), "n = 4\nprint(n)"], []),  # bound before it is read
    ([_demo("n = 3"), "n = n + 1"], [(1, "n", 0)]),  # read before it is bound
    ([_demo("n = 3"), "n = 4", "print(n)"], []),  # the graded cell rebinds it
    ([_demo("w = 2"), "def f(x):\n    return w * x"], [(1, "w", 0)]),  # read whenever called
    ([_demo("x = 2"), "def f(x):\n    return x"], []),  # a parameter, not the global
    ([_demo("i = 2"), "squares = [i * i for i in range(3)]"], []),  # the comprehension's own
    ([_demo("k = 2"), "for k in range(3):\n    print(k)"], []),  # bound by the loop first
    ([_demo("grid = 1"), "%timeit grid\nprint(1)"], []),  # magics are not Python
    ([_demo("a = 1"), _demo("b = a"), "print(b)"], [(2, "b", 1)]),  # demo reads demo: fine
], ids=["read", "bound-first", "read-first", "rebound", "function-body", "parameter",
        "comprehension", "loop", "magic", "demo-reads-demo"])
def test_graded_cells_that_read_what_only_a_demo_binds(cells, found):
    assert demo_cells.demo_dependencies(_notebook(*cells)) == found
