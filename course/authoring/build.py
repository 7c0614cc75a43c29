"""Build the course: source text → source notebooks → release/ (nbgrader) and solutions/ (executed).

Building twice gives no diff: files are rewritten only when their content changes, and an
executed solution whose only changes are in timing cells (tagged ``nbval-ignore-output``) is
kept.
"""

import argparse
import concurrent.futures
import hashlib
import importlib.metadata
import os
import shutil
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

from course.authoring import demo_cells, notebooks
from course.checks import bundle
from course.paths import ROOT, nbgrader

WORK = "work"  # the students' own folder (python -m course start), which the build never touches
CELL_TIMEOUT = 600
CHECKS = "adcheck.py"  # an assignment's checks module, built from course/checks/


def assignments(root=ROOT):
    return sorted(p.name for p in (Path(root) / "source").iterdir()
                  if p.is_dir() and notebooks.text_sources(p))


def support_files(assignment_dir):
    """Files nbgrader copies along with the notebooks (e.g. the checks module)."""
    return sorted(p for p in Path(assignment_dir).iterdir()
                  if p.is_file() and p.suffix != ".ipynb" and not p.name.endswith(
                      notebooks.TEXT_SUFFIX) and not p.name.startswith("."))


def execute(nb, cwd, env=None, record_timing=False):
    """Execute a notebook in ``cwd`` with a fresh kernel, its environment ours updated with
    ``env``; raise on the first error."""
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=record_timing,
                   resources={"metadata": {"path": str(cwd)}}).execute(
        env={**os.environ, **(env or {})})
    # How printed text splits into stream outputs depends on timing: store it merged.
    return CoalesceStreamsPreprocessor().preprocess(nb, {})[0]


def build_source(assignment, root=ROOT):
    if bundle.declarations(assignment):  # its checks: the shared parts and its declarations
        bundle.write_bundle(assignment, Path(root) / "source" / assignment / CHECKS)
    for text_path in notebooks.text_sources(Path(root) / "source" / assignment):
        nb = notebooks.to_notebook(text_path)
        problems = demo_cells.demo_dependencies(nb)
        if problems:
            raise ValueError(f"{text_path}: grading skips the cells tagged demo, but cells it "
                             "runs read what they define: " + "; ".join(
                                 f"cell {index + 1} reads {name!r} from demo cell {demo + 1}"
                                 for index, name, demo in problems)
                             + ". Move the definition to an untagged cell, or untag the cell.")
        notebooks.write_if_changed(nb, notebooks.notebook_path(text_path))


class ReleaseHoldsWork(RuntimeError):
    """release/<assignment>/ holds something the build did not write: regenerating it (which
    ``nbgrader generate_assignment --force`` does by deleting the folder) would destroy it."""


def cells_digest(nb):
    """A digest of what a student writes into a notebook: the type and text of every cell
    (outputs come back by running it again)."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        digest.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0\0")
    return digest.hexdigest()


def _release_changes(assignment, root):
    """Paths under release/<assignment>/ that the last build did not leave as they are."""
    release_dir = Path(root) / "release" / assignment
    if not release_dir.is_dir():
        return []
    written = {p.name for p in support_files(Path(root) / "source" / assignment)}
    changed = []
    for path in sorted(release_dir.iterdir()):
        if path.name in ("__pycache__", ".ipynb_checkpoints"):  # what running a notebook leaves
            continue
        if path.suffix == ".ipynb" and path.is_file():
            try:
                nb = nbformat.read(path, as_version=4)
            except (OSError, ValueError):
                changed.append(path)
                continue
            stamp = nb.metadata.get("course", {}).get("release_cells")
            if stamp is not None and stamp != cells_digest(nb):
                changed.append(path)
        elif path.name not in written:
            changed.append(path)
    return changed


def _what_to_do(assignment, path, root):
    relative = path.relative_to(root)
    kept = Path(root) / WORK / assignment / path.name
    if path.suffix == ".ipynb" and not kept.exists():
        return (f"{relative} was changed since the build wrote it (it may hold your answers). "
                f"Copy it into your own folder with `python -m course start {assignment}` "
                f"(it goes to {WORK}/{assignment}/, which the build never touches), then "
                f"`git checkout -- release/{assignment}` and build again.")
    return (f"{relative} is not what the build wrote (it may hold your work). Move it out of "
            f"release/, e.g. `mv {relative} {WORK}/{assignment}/{path.stem}-from-release"
            f"{path.suffix}`, then build again.")


def build_release(assignment, root=ROOT):
    build_releases([assignment], root)


def _refuse_to_replace_work(selected, root):
    for assignment in selected:
        changes = _release_changes(assignment, root)
        if changes:
            raise ReleaseHoldsWork(
                f"The build regenerates release/{assignment}/ from source/ and would delete what "
                "is there. Nothing was changed.\n" + "\n".join(
                    _what_to_do(assignment, path, Path(root)) for path in changes))


def build_releases(selected, root=ROOT):
    """Regenerate release/ of the assignments ``selected`` with ``nbgrader generate_assignment``
    (which also records them in the course's gradebook): one nbgrader process for all of them
    when they are every assignment of source/, since each process spends about two seconds
    starting. Nothing is regenerated if a release folder holds work the build did not write."""
    _refuse_to_replace_work(selected, root)
    if len(selected) > 1 and sorted(selected) == assignments(root):
        nbgrader("generate_assignment", "*", "--force", root=root)
    else:
        for assignment in selected:
            nbgrader("generate_assignment", assignment, "--force", root=root)
    for assignment in selected:
        for path in sorted((Path(root) / "release" / assignment).glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            nb.metadata.setdefault("course", {})["release_cells"] = cells_digest(nb)
            nbformat.write(nb, path)


def build_solutions(assignment, root=ROOT, env=None):
    source_dir = Path(root) / "source" / assignment
    target_dir = Path(root) / "solutions" / assignment
    target_dir.mkdir(parents=True, exist_ok=True)
    for path in support_files(source_dir):
        target = target_dir / path.name
        if not target.exists() or target.read_bytes() != path.read_bytes():
            shutil.copyfile(path, target)
    for text_path in notebooks.text_sources(source_dir):
        source_nb = nbformat.read(notebooks.notebook_path(text_path), as_version=4)
        nb = notebooks.solution_notebook(source_nb)
        target = target_dir / notebooks.notebook_path(text_path).name
        nb.metadata["course"] = {"built_from": _inputs_digest(nb, support_files(source_dir))}
        if _built_from(target) == nb.metadata["course"]["built_from"]:
            continue  # executed from these very inputs already
        nb = execute(nb, target_dir, env)
        notebooks.write_if_changed(
            nb, target,
            same=lambda old, new: notebooks.comparable(old) == notebooks.comparable(new))


def _inputs_digest(nb, support):
    """What an executed solution depends on: its cells, its assignment's checks module (the
    shared parts and its own declarations, not the other assignments'), and the JAX that ran
    it."""
    digest = hashlib.sha256(nbformat.writes(nb).encode())
    for path in support:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(importlib.metadata.version("jax").encode())
    return digest.hexdigest()


def _built_from(path):
    try:
        return nbformat.read(path, as_version=4).metadata.get("course", {}).get("built_from")
    except (OSError, ValueError):
        return None


def build(selected=None, root=ROOT, log=print, env=None, beside_releases=None):
    """Build the assignments ``selected`` (all of source/ by default) of the course at ``root``;
    ``env`` is added to the environment of the kernels that execute the solutions.
    ``beside_releases``, if given, runs in a thread of its own while nbgrader generates the
    releases, once source/ is built (the demo makes its class's course then); its result is
    returned."""
    selected = selected or assignments(root)

    def timed(what, step):
        start = time.perf_counter()
        result = step()
        log(f"{what} ({time.perf_counter() - start:.1f} s)")
        return result

    for assignment in selected:
        timed(f"{assignment}: source", lambda: build_source(assignment, root))
    _refuse_to_replace_work(selected, root)  # before anything starts beside the releases
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        beside = pool.submit(beside_releases) if beside_releases else None
        timed(f"release/ of {', '.join(selected)}", lambda: build_releases(selected, root))
        made = beside.result() if beside else None
    for assignment in selected:
        timed(f"{assignment}: solutions", lambda: build_solutions(assignment, root, env))
    return made


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course build", description=(
        "Regenerate the source notebooks, release/ and solutions/ from the text sources."))
    parser.add_argument("assignments", nargs="*", help="default: every assignment of source/")
    build(parser.parse_args(argv).assignments)
    return 0
