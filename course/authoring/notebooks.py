"""Notebook files of the course: the text sources, and how nbgrader's notebooks are made from them.

A notebook is written as a jupytext percent file, ``source/<assignment>/<name>.pct.py``. Cells
that nbgrader must know about carry a compact ``nbgrader`` header, for example::

    # %% nbgrader={"grade_id": "vgrad", "solution": true}          an answer cell
    # %% nbgrader={"grade_id": "vgrad_tests", "points": 2}         a locked test cell
    # %% nbgrader={"grade_id": "setup", "locked": true}            a read-only cell

``to_notebook`` expands that into nbgrader's full cell metadata and gives every cell a stable id,
so the ``.ipynb`` next to the text file is a pure function of it.
"""

import hashlib
import re
from pathlib import Path

import jupytext
import nbformat
from nbgrader import utils as nbgrader_utils
from nbgrader.preprocessors import ClearHiddenTests

TEXT_SUFFIX = ".pct.py"
IGNORE_OUTPUT_TAG = "nbval-ignore-output"  # nbval compares every other output
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.MULTILINE)


def text_sources(assignment_dir):
    return sorted(Path(assignment_dir).glob("*" + TEXT_SUFFIX))


def notebook_path(text_path):
    text_path = Path(text_path)
    return text_path.with_name(text_path.name[: -len(TEXT_SUFFIX)] + ".ipynb")


def _nbgrader_metadata(compact):
    points = compact.get("points")
    metadata = {
        "grade": points is not None,
        "grade_id": compact["grade_id"],
        "locked": bool(compact.get("locked", points is not None)),
        "schema_version": 3,
        "solution": bool(compact.get("solution", False)),
        "task": False,
    }
    if points is not None:
        metadata["points"] = points
    return metadata


def to_notebook(text_path):
    """The nbgrader source notebook written in ``text_path``."""
    nb = jupytext.read(text_path, fmt="py:percent")
    nb.metadata.pop("jupytext", None)
    nb.metadata["language_info"] = {"name": "python"}
    name = Path(text_path).name
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("lines_to_next_cell", None)
        if "nbgrader" in cell.metadata:
            cell.metadata["nbgrader"] = _nbgrader_metadata(cell.metadata["nbgrader"])
            cell.id = cell.metadata["nbgrader"]["grade_id"]
        else:
            cell.id = hashlib.sha1(f"{name}:{index}".encode()).hexdigest()[:12]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validate(nb)
    return nb


def write_if_changed(nb, path, same=lambda old, new: old == new):
    """Write ``nb`` unless the file holds a notebook that ``same`` deems equal; True if written."""
    path = Path(path)
    text = nbformat.writes(nb) + "\n"
    if path.exists():
        old = path.read_text()
        if old == text or same(nbformat.reads(old, as_version=4), nb):
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def solution_notebook(source_nb):
    """The source notebook with its hidden tests removed (by nbgrader's own ClearHiddenTests)
    and the solution markers dropped."""
    nb, _ = ClearHiddenTests().preprocess(nbformat.from_dict(source_nb), {})
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = SOLUTION_MARKERS.sub("", cell.source).rstrip()
    return nb


def test_cells(nb):
    """``{answer grade_id: the test cell that follows it}``."""
    pairs, answer = {}, None
    for cell in nb.cells:
        if nbgrader_utils.is_solution(cell):
            answer = cell.metadata["nbgrader"]["grade_id"]
        elif nbgrader_utils.is_grade(cell) and answer is not None:
            pairs[answer], answer = cell, None
    return pairs


def ignores_output(cell):
    """A cell whose output changes from run to run (a timing): nbval does not compare it."""
    return cell.cell_type == "code" and IGNORE_OUTPUT_TAG in cell.metadata.get("tags", ())


def comparable(nb):
    """The notebook without what legitimately changes between runs or machines: the outputs
    of timing cells, and the pixels of plots (last-bit float differences move anti-aliased
    pixels; that a plot is there still counts)."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if ignores_output(cell):
            cell.outputs = []
        for output in cell.get("outputs", []):
            for mime in output.get("data", {}):
                if mime.startswith("image/"):
                    output.data[mime] = "<image>"
    return nb
