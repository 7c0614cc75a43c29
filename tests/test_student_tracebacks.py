"""What a student reads when a visible test fails: their own line and the check's message.

A release notebook's kernel runs a stub, a wrong answer and a cell of the student's own that
raises; each traceback names the student's cell and ends with the message, and no frame of the
checks module (``adcheck.py``, its wrappers) stands between them.
"""

import re
import shutil

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from tests.harness import ROOT

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def tracebacks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    shutil.copy(ROOT / "release" / "01_forward_reverse" / "adcheck.py", folder)
    cells = {
        "setup": "import jax\nimport jax.numpy as jnp\nimport adcheck\n\nadcheck.setup()",
        "stub": "def vgrad(f, x):\n    raise NotImplementedError()",
        "stub test": "adcheck.check_vgrad(vgrad)",
        "wrong": "def vgrad(f, x):\n    return jnp.ones_like(x)",
        "wrong test": "adcheck.check_vgrad(vgrad)",
        "own error": "def helper(x):\n    return x.no_such_attribute\n\nhelper(jnp.ones(2))",
    }
    nb = new_notebook(cells=[new_code_cell(source) for source in cells.values()])
    NotebookClient(nb, timeout=120, allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    shown = {}
    for name, cell in zip(cells, nb.cells):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        shown[name] = ANSI.sub("", "\n".join(errors[0].traceback)) if errors else None
    return shown


@pytest.mark.parametrize("cell, message", [
    ("stub test", "AssertionError: vgrad is not implemented yet."),
    ("wrong test", "AssertionError: vgrad is wrong for f(x) = "),
])
def test_a_failing_check_shows_the_test_line_and_the_message(tracebacks, cell, message):
    text = tracebacks[cell]
    assert text is not None, f"the {cell} cell did not fail"
    assert "----> 1 adcheck.check_vgrad(vgrad)" in text, text
    assert text.splitlines()[-1].startswith(message), text
    assert "adcheck.py" not in text and "_student_facing" not in text, text
    assert len([line for line in text.splitlines() if line.startswith("Cell In")]) == 1, text


def test_the_students_own_errors_keep_their_frames(tracebacks):
    text = tracebacks["own error"]
    assert text is not None and "AttributeError" in text.splitlines()[-1], text
    assert "----> 4 helper(jnp.ones(2))" in text and "----> 2     return x.no_such_attribute" \
        in text, text
    assert tracebacks["setup"] is None and tracebacks["wrong"] is None
