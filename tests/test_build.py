"""release/ and solutions/ are what the build command makes of source/, and nothing leaks."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader import utils as nbgrader_utils

from course.authoring import build, demo_cells, notebooks
from course.checks import bundle, guard
from tests.harness import ROOT, deprecations, source_notebooks

GENERATED = ("release", "solutions")


def _files(root, folder):
    base = root / folder
    return {p.relative_to(base): p for p in sorted(base.rglob("*")) if p.is_file()
            and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}


def _difference(old, new):
    if old.metadata != new.metadata or len(old.cells) != len(new.cells):
        return "notebook metadata or number of cells"
    for index, (a, b) in enumerate(zip(old.cells, new.cells)):
        if a != b:
            return f"cell {index}: {b.source.splitlines()[0] if b.source else ''!r}"
    return "?"


@pytest.mark.parametrize("folder", GENERATED)
def test_generated_folders_match_a_fresh_build(rebuilt, folder):
    committed, fresh = _files(ROOT, folder), _files(rebuilt, folder)
    assert sorted(committed) == sorted(fresh), f"{folder}/ has other files than a fresh build"
    for relative, path in committed.items():
        if path.suffix == ".ipynb":
            old, new = (notebooks.comparable(nbformat.read(p, as_version=4))
                        for p in (path, fresh[relative]))
            assert old == new, (f"{folder}/{relative} is out of date ({_difference(old, new)}): "
                                "run `python -m course build`")
        else:
            assert path.read_bytes() == fresh[relative].read_bytes(), f"{folder}/{relative}"


def test_solutions_run_without_deprecated_jax_numpy_or_matplotlib(rebuilt):
    for path in sorted((rebuilt / "solutions").glob("*/*.ipynb")):
        found = deprecations(nbformat.read(path, as_version=4))
        assert not found, f"{path.name} uses a deprecated API: " + "; ".join(
            f"cell {index}: {text.strip()[:300]}" for index, text in found)


def test_solutions_write_nothing_to_stderr(rebuilt):
    """A warning names the file that raised it, a path of this machine: nbval on another
    machine would fail the cell, and a student would read it as a fault of theirs."""
    for path in sorted((rebuilt / "solutions").glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        written = [(index, output.get("text", "")) for index, cell in enumerate(nb.cells)
                   if cell.cell_type == "code" for output in cell.get("outputs", [])
                   if output.get("name") == "stderr" or output.output_type == "error"]
        assert not written, f"{path.name} writes to stderr: " + "; ".join(
            f"cell {index}: {text.strip()[:300]}" for index, text in written)


def test_source_notebooks_match_their_text(rebuilt):
    for assignment, text_path in source_notebooks():
        nb_path = notebooks.notebook_path(text_path)
        fresh = rebuilt / nb_path.relative_to(ROOT)
        assert nb_path.read_text() == fresh.read_text(), (
            f"{nb_path.relative_to(ROOT)} is out of date: run `python -m course build`")


def test_building_twice_changes_nothing(rebuilt):
    before = {p: p.read_bytes() for folder in ("source", *GENERATED)
              for p in _files(rebuilt, folder).values()}
    build.build(root=rebuilt, log=lambda *_: None)
    after = {p: p.read_bytes() for folder in ("source", *GENERATED)
             for p in _files(rebuilt, folder).values()}
    changed = [str(p.relative_to(rebuilt)) for p in before if before[p] != after.get(p)]
    assert sorted(before) == sorted(after) and not changed, f"changed: {changed}"


def _release_and_solution(assignment, text_path):
    name = notebooks.notebook_path(text_path).name
    return (nbformat.read(ROOT / "release" / assignment / name, as_version=4),
            nbformat.read(ROOT / "solutions" / assignment / name, as_version=4))


@pytest.mark.parametrize("assignment,text_path", source_notebooks())
def test_release_has_stubs_and_nothing_to_hide(assignment, text_path):
    release, _ = _release_and_solution(assignment, text_path)
    source = nbformat.read(notebooks.notebook_path(text_path), as_version=4)
    solution_lines = set()
    for cell in source.cells:
        for region in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source,
                                 re.DOTALL):
            solution_lines.update(line.strip() for line in region.splitlines()
                                  if len(line.strip()) > 15)
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        assert "SOLUTION" not in cell.source and "HIDDEN TESTS" not in cell.source
        assert "NBVAL" not in cell.source, "nbval's markers are cell tags, not code"
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
        if meta.get("solution"):
            leaked = [line for line in solution_lines if line in cell.source]
            assert not leaked, f"solution text in release cell {meta['grade_id']}: {leaked}"
            assert "raise NotImplementedError()" in cell.source
            assert "YOUR CODE HERE" in cell.source


@pytest.mark.parametrize("assignment,text_path", source_notebooks())
def test_students_receive_only_their_assignments_checks(assignment, text_path):
    nb = nbformat.read(notebooks.notebook_path(text_path), as_version=4)
    own = {f"check_{answer}" for answer in notebooks.test_cells(nb)}
    every = {f"check_{answer}" for _, other in source_notebooks()
             for answer in notebooks.test_cells(nbformat.read(
                 notebooks.notebook_path(other), as_version=4))}
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
    for folder in ("source", "release", "solutions"):
        path = ROOT / folder / assignment / "adcheck.py"
        tree = ast.parse(path.read_text())
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        defined |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
        assert own <= defined, f"{path} lacks {sorted(own - defined)}"
        assert not (every - own) & defined, f"{path} holds {sorted((every - own) & defined)}"
        undefined = subprocess.run([ruff, "check", "--isolated", "--no-cache", "--select",
                                    "F821,F811", str(path)], capture_output=True, text=True)
        assert undefined.returncode == 0, undefined.stdout
        assert path.read_text() == bundle.bundle(assignment), f"{path} is not the built bundle"
        assert "def verdict" not in path.read_text(), "the judge is never shipped"


@pytest.mark.parametrize("assignment,text_path", source_notebooks())
def test_solutions_keep_answers_and_drop_hidden_tests(assignment, text_path):
    _, solution = _release_and_solution(assignment, text_path)
    for cell in solution.cells:
        assert "HIDDEN TESTS" not in cell.source and "### BEGIN SOLUTION" not in cell.source
        if nbgrader_utils.is_solution(cell):  # no stub (an answer may raise with a message)
            assert "raise NotImplementedError()" not in cell.source
        if cell.cell_type == "code":
            assert cell.execution_count is not None, "solutions/ must be executed"
            assert not [o for o in cell.outputs if o.output_type == "error"]


def test_build_executes_only_solutions_whose_inputs_changed(rebuilt, tmp_path, monkeypatch):
    copy = tmp_path / "course"
    shutil.copytree(rebuilt, copy, symlinks=True)
    executed = []
    monkeypatch.setattr(build, "execute", lambda nb, cwd, env=None: executed.append(cwd) or nb)
    build.build(root=copy, log=lambda *_: None)
    assert executed == [], "an up-to-date solution was executed again"
    first = build.assignments(copy)[0]
    text = notebooks.text_sources(copy / "source" / first)[0]
    text.write_text(text.read_text() + "\n# %%\nprint('changed')\n")
    build.build(root=copy, log=lambda *_: None)
    assert [Path(cwd).name for cwd in executed] == [first], (
        "a changed notebook must be executed again, and no other")
    executed.clear()
    monkeypatch.setattr(bundle, "HERE", copy / "course" / "checks")
    last = build.assignments(copy)[-1]
    own = bundle.declarations(last)
    own.write_text(own.read_text() + "\n# changed\n")
    build.build(root=copy, log=lambda *_: None)
    assert [Path(cwd).name for cwd in executed] == [last], (
        "a change to one assignment's checks must execute its solutions again, and no other")
    executed.clear()
    shared = copy / "course" / "checks" / "calls.py"
    shared.write_text(shared.read_text() + "\n# changed\n")
    build.build(root=copy, log=lambda *_: None)
    assert sorted(Path(cwd).name for cwd in executed) == build.assignments(copy), (
        "a change to the shared checks must execute every solution again")


def test_build_refuses_a_graded_cell_that_reads_a_demo_cell(tmp_path):
    folder = tmp_path / "source" / "00_demo"
    folder.mkdir(parents=True)
    (folder / "demo.pct.py").write_text(
        '# %% tags=["demo"]\n'
        "import time\n\ndef best_time(fn):\n    return min(time.perf_counter() for _ in fn())\n\n"
        "x = [1, 2]\nfor y in x:\n    print(y)\n\n"
        '# %% nbgrader={"grade_id": "ex", "solution": true}\n'
        "def answer(z):\n    return [v for v in z]\n\n"
        '# %% nbgrader={"grade_id": "ex_tests", "points": 1}\n'
        "y = 3\nassert answer([y]) == [3]\nprint(best_time(lambda: x))\n")
    with pytest.raises(ValueError, match=r"cell 3 reads 'best_time' from demo cell 1; "
                                         r"cell 3 reads 'x' from demo cell 1\."):
        build.build_source("00_demo", root=tmp_path)
    # rebinding a name before reading it, parameters and loop variables are no dependency
    (folder / "demo.pct.py").write_text((folder / "demo.pct.py").read_text().replace(
        "print(best_time(lambda: x))", "x = [y]\nprint(x)"))
    build.build_source("00_demo", root=tmp_path)
    nb = nbformat.read(folder / "demo.ipynb", as_version=4)
    assert [demo_cells.is_demo(c) for c in nb.cells] == [True, False, False]


def test_every_notebook_has_demo_cells_and_none_that_graded_cells_need(rebuilt):
    for assignment, text_path in source_notebooks():
        nb = nbformat.read(rebuilt / "source" / assignment / notebooks.notebook_path(
            text_path).name, as_version=4)
        assert any(demo_cells.is_demo(c) for c in nb.cells), f"{text_path.name}: no demo cell"
        assert demo_cells.demo_dependencies(nb) == []


def test_the_checks_know_the_pinned_jax():
    pinned = re.search(r"^jax==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned and pinned.group(1) == guard.TESTED_JAX, (
        "course/checks/guard.py's TESTED_JAX must be the jax of requirements.txt")


def test_the_first_cell_says_when_jax_is_not_the_tested_one():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import adcheck\nadcheck.TESTED_JAX = '0.0.1'\nadcheck.setup()")])
    build.execute(nb, ROOT / "solutions" / build.assignments()[0])
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "tested with JAX 0.0.1" in text and len(text.strip().splitlines()) == 1, text


def _write_answer(path, marker):
    """Put ``marker`` into the first answer cell of the notebook at ``path``, as a student's
    JupyterLab would save it."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if nbgrader_utils.is_solution(c))
    cell.source = cell.source.replace("raise NotImplementedError()", f"return {marker!r}")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def _course_command(root, *args):
    return subprocess.run([sys.executable, "-m", "course", *args], cwd=root, capture_output=True,
                          text=True, timeout=600)


def test_students_answers_are_never_overwritten(rebuilt, tmp_path):
    copy = tmp_path / "course"
    shutil.copytree(rebuilt, copy, symlinks=True)
    first = build.assignments(copy)[0]
    name = notebooks.notebook_path(notebooks.text_sources(copy / "source" / first)[0]).name
    release_nb, work_nb = copy / "release" / first / name, copy / "work" / first / name

    assert _course_command(copy, "start", first).returncode == 0
    _write_answer(work_nb, "answer in work/")
    for command in (("build", first), ("start", first)):
        result = _course_command(copy, *command)
        assert result.returncode == 0, result.stderr
    assert "answer in work/" in work_nb.read_text(), "the build or start replaced work/"
    assert f"kept   work/{first}/{name}" in result.stdout

    _write_answer(release_nb, "answer in release/")
    for command in (("build",), ("demo", "--folder", str(tmp_path / "demo"))):
        result = _course_command(copy, *command)
        assert result.returncode == 1, result.stdout + result.stderr
        assert (f"release/{first}/{name} is not what the build wrote" in result.stderr
                and f"mv release/{first}/{name} work/{first}/" in result.stderr
                and "Nothing was changed" in result.stderr), result.stderr
        assert "answer in release/" in release_nb.read_text()
    assert not (tmp_path / "demo").exists()

    work_nb.unlink()  # with no copy in work/ yet, `start` rescues the answers
    result = _course_command(copy, "build", first)
    assert f"release/{first}/{name} was changed since the build wrote it" in result.stderr
    assert f"python -m course start {first}" in result.stderr
    assert _course_command(copy, "start", first).returncode == 0
    assert "answer in release/" in work_nb.read_text()

    release_nb.unlink()
    (copy / "release" / first / "notes.txt").write_text("my notes")
    result = _course_command(copy, "build", first)
    assert result.returncode == 1 and f"release/{first}/notes.txt is not what the build" in (
        result.stderr)
    assert (copy / "release" / first / "notes.txt").read_text() == "my notes"
