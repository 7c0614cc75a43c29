"""course/dev/benchmark.py: the programs of a cold run, counted per cell from its cache."""

import datetime
import os

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course.dev import benchmark


def _ran(cell, start, end):
    stamp = lambda t: datetime.datetime.fromtimestamp(  # noqa: E731
        t, datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    cell.metadata["execution"] = {"iopub.execute_input": stamp(start),
                                  "shell.execute_reply": stamp(end)}
    return cell


def _program(cache, name, written):
    path = cache / f"jit_{name}-{abs(hash(name)):x}-cache"
    path.write_bytes(b"")
    os.utime(path, (written, written))


def test_each_program_counts_in_the_cell_that_was_running_when_it_was_written(tmp_path):
    t = 1_800_000_000.0
    executed = new_notebook(cells=[
        _ran(new_code_cell("import jax"), t, t + 1),
        new_markdown_cell("text"),
        _ran(new_code_cell("jnp.sin(x)"), t + 2, t + 3),
        new_code_cell("never ran"),
    ])
    _program(tmp_path, "sin", t + 2.5)
    _program(tmp_path, "cos", t + 2.6)
    _program(tmp_path, "add", t + 0.5)
    _program(tmp_path, "between", t + 1.5)
    (tmp_path / "not-a-program").write_bytes(b"")
    assert benchmark.compiled_programs_by_cell(executed, tmp_path) == {0: 1, 2: 2, None: 1}


def test_a_cell_without_timing_has_no_span():
    assert benchmark._cell_span(new_code_cell("x")) is None
    assert benchmark._cell_seconds(new_code_cell("x")) == 0.0


def test_grading_only_and_notebooks_only_cannot_be_asked_together(capsys):
    with pytest.raises(SystemExit) as stopped:
        benchmark.main(["--grading-only", "--notebooks-only"])
    assert stopped.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
