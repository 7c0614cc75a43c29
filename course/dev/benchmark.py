"""Where the time goes, measured side by side in one run.

    python -m course benchmark [--skip-demo] [--grading-only | --notebooks-only]
                               [--notebooks NAME ...]

1. Every solution notebook executed from a fresh kernel, first with an empty JAX compilation
   cache of its own (a first run on a new machine), then again with the cache that run left
   (every later run); the slowest cells of the cold run, and the programs XLA compiled in it,
   per cell and in the demo cells (``compiled_programs_by_cell``): a count, unlike seconds,
   does not vary between runs.
2. Grading one model submission of each notebook with a serial ``nbgrader autograde`` (sandbox
   included), twice: first as on a machine that never graded the notebook (it also compiles
   the model solution's programs and computes the judge's oracle values, into folders of this
   run's), then again, against its floor: a fresh kernel running only the graded path (the
   setup cell, the answer cells and the test cells with their hidden tests) as the grader does,
   without nbgrader and without the sandbox. The ratio is what nbgrader, the sandbox and the
   notebook's other cells add, the judge included (it decides the test cells in nbgrader's
   process).
   Then a class of ``CLASS_SIZE`` model submissions graded by ``python -m course grade`` with
   one worker per core: its autograde step's seconds times the cores, per submission, is the
   cost of a submitted notebook per core (with the programs and oracle values of the first
   autograde, as every class after a machine's first).
3. ``python -m course demo``, as the README runs it.

Times are wall-clock seconds on this machine; no test asserts them.
"""

import argparse
import collections
import contextlib
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from course import paths
from course.authoring import build, demo_cells, notebooks
from course.dev import scratch_course
from course.grading import compiled_programs, grade_class
from course.paths import nbgrader

# Four submissions per worker on two cores. A worker's start (importing nbgrader, then JAX and
# the checks in its first autograde: about 2.5 s) is paid once per class; with two submissions
# per worker it added about 1.2 s to each submission's figure.
CLASS_SIZE = 8


def _cell_span(cell):
    """When ``cell`` ran, as (start, end) POSIX times, or None if it did not."""
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    return tuple(datetime.datetime.fromisoformat(stamp.rstrip("Z")).replace(
        tzinfo=datetime.timezone.utc).timestamp() for stamp in (start, end))


def _cell_seconds(cell):
    span = _cell_span(cell)
    return span[1] - span[0] if span else 0.0


def compiled_programs_by_cell(executed, cache):
    """The programs XLA compiled while ``executed`` ran from an empty compilation cache, read
    from that cache (``ADCOURSE_JAX_CACHE``), where the notebooks keep every program they
    compile, one ``*-cache`` file each: {cell index: count}, each file counted in the cell that
    was running when it was written (None: between cells). A count does not vary from run to
    run as seconds do, and each program costs tens of milliseconds to trace, lower and compile:
    most of a cold run."""
    spans = [(index, span) for index, cell in enumerate(executed.cells)
             if cell.cell_type == "code" and (span := _cell_span(cell))]
    counts = collections.Counter()
    for entry in Path(cache).glob("*-cache"):
        written = entry.stat().st_mtime
        counts[next((index for index, (start, end) in spans if start <= written <= end),
                    None)] += 1
    return counts


def run_notebook(nb, cwd, env=None):
    """Seconds to execute ``nb`` in a fresh kernel (kernel start included), and the notebook."""
    start = time.perf_counter()
    nb = build.execute(nb, cwd, env, record_timing=True)
    return time.perf_counter() - start, nb


def all_notebooks(selected):
    found = []
    for assignment in build.assignments():
        for text_path in notebooks.text_sources(paths.ROOT / "source" / assignment):
            name = notebooks.notebook_path(text_path).stem
            if not selected or name in selected:
                found.append((assignment, name, notebooks.notebook_path(text_path)))
    return found


def bench_notebooks(found, log):
    rows = []
    for assignment, name, path in found:
        solution = notebooks.solution_notebook(nbformat.read(path, as_version=4))
        cwd = paths.ROOT / "solutions" / assignment
        with tempfile.TemporaryDirectory(prefix="jax-cache-") as cache:
            env = {"ADCOURSE_JAX_CACHE": cache}
            cold, executed = run_notebook(nbformat.from_dict(solution), cwd, env)
            programs = compiled_programs_by_cell(executed, cache)
            warm, _ = run_notebook(nbformat.from_dict(solution), cwd, env)
        slow = sorted(((_cell_seconds(c), i, programs[i]) for i, c in enumerate(executed.cells)
                       if c.cell_type == "code"), reverse=True)[:3]
        in_demos = sum(n for i, n in programs.items()
                       if i is not None and demo_cells.is_demo(executed.cells[i]))
        rows.append((name, cold, warm, sum(programs.values()), in_demos, slow))
        log(f"  {name}: {cold:.1f} s cold, {warm:.1f} s warm")
    return rows


def bench_grading(found, log):
    rows = []
    with tempfile.TemporaryDirectory(prefix="grading-floor-") as folder, \
            _machine_folders(Path(folder)):
        for assignment, name, path in found:
            source_nb = nbformat.read(path, as_version=4)
            course = scratch_course.new_course(Path(folder) / name)
            release_nb = nbformat.read(course / "release" / assignment / f"{name}.ipynb",
                                       as_version=4)
            scratch_course.submit(course, assignment, "model",
                           {name: scratch_course.submission(
                               release_nb, scratch_course.model_answers(source_nb))})
            build.build_release(assignment, root=course)
            first = _autograde_seconds(course, assignment)
            again = _autograde_seconds(course, assignment)
            scores = scratch_course.cell_scores(course, assignment)["model"]
            full = all(score >= top for score, top in scores.values())
            floor, _ = run_notebook(compiled_programs.model_graded_path(source_nb), path.parent,
                                    {"NBGRADER_EXECUTION": "autograde"})
            per_core, class_full = grade_a_class(course, assignment, name, source_nb,
                                                 release_nb)
            rows.append((name, first, again, floor, per_core, full and class_full))
            log(f"  {name}: autograde {first:.1f} s (first on this machine), then {again:.1f} "
                f"s, floor {floor:.1f} s, in a class {per_core:.1f} s per submission per core")
    return rows


@contextlib.contextmanager
def _machine_folders(folder):
    """Grading compiles the model solution's programs (compiled_programs.py) and computes the
    oracle's values (oracle_values.py) again, into folders of this run's, so that a notebook's
    first autograde is timed as a machine's first."""
    names = {"ADCOURSE_GRADING_PROGRAMS": folder / "programs",
             "ADCOURSE_ORACLE_VALUES": folder / "oracle-values"}
    before = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(path) for name, path in names.items()})
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
        programs = names["ADCOURSE_GRADING_PROGRAMS"]
        for entry in (programs.iterdir() if programs.is_dir() else ()):
            compiled_programs.remove(entry)


def _autograde_seconds(course, assignment):
    start = time.perf_counter()
    nbgrader("autograde", assignment, "--force", root=course)
    return time.perf_counter() - start


def grade_a_class(course, assignment, name, source_nb, release_nb):
    """Seconds per submitted notebook per core, and whether everyone got full marks, when
    ``python -m course grade`` grades ``CLASS_SIZE`` model submissions with a worker per core."""
    for k in range(2, CLASS_SIZE + 1):
        scratch_course.submit(course, assignment, f"model-{k}",
                              {name: scratch_course.submission(
                                  release_nb, scratch_course.model_answers(source_nb))})
    workers = os.cpu_count()
    result = grade_class.grade_class(course, assignment, workers, progress=False,
                                     log=lambda *_: None)
    scores = scratch_course.cell_scores(course, assignment)
    full = len(scores) == CLASS_SIZE and all(
        score >= top for cells in scores.values() for score, top in cells.values())
    return result.seconds["autograde"] * workers / CLASS_SIZE, full


def bench_demo(log):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "course", "demo"], cwd=paths.ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    log(f"  demo: {seconds:.1f} s")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--skip-demo", action="store_true")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--grading-only", action="store_true",
                      help="time grading only (neither the notebooks nor the demo)")
    only.add_argument("--notebooks-only", action="store_true",
                      help="time the notebooks only (neither grading nor the demo)")
    args = parser.parse_args(argv)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    found = all_notebooks(args.notebooks)
    nb_rows = []
    if not args.grading_only:
        log("notebooks:")
        nb_rows = bench_notebooks(found, log)
    grade_rows = [] if args.notebooks_only else (log("grading:") or bench_grading(found, log))
    demo_seconds = (None if args.skip_demo or args.grading_only or args.notebooks_only
                    else (log("demo:") or bench_demo(log)))

    print(f"{os.cpu_count()} cores, jax {__import__('jax').__version__}")
    if nb_rows:
        print(f"{'notebook':18} {'cold s':>7} {'warm s':>7} {'programs':>9} {'in demos':>9}   "
              "slowest cells of the cold run (s, programs)")
        for name, cold, warm, programs, in_demos, slow in nb_rows:
            print(f"{name:18} {cold:7.1f} {warm:7.1f} {programs:9} {in_demos:9}   "
                  + ", ".join(f"#{i} {s:.1f} ({n})" for s, i, n in slow))
        print(f"{'all':18} " + " ".join(f"{sum(r[k] for r in nb_rows):{w}.{p}f}"
                                         for k, w, p in ((1, 7, 1), (2, 7, 1), (3, 9, 0),
                                                         (4, 9, 0))))
        print("(programs: what XLA compiled in the cold run, read from its compilation cache; "
              "in demos: those compiled by the cells tagged demo)")
    if not grade_rows:
        return 0
    print(f"\n{'notebook':18} {'first s':>8} {'autograde s':>11} {'floor s':>8} "
          f"{'ratio':>6} {'class s/core':>12}  model full marks")
    for name, first, seconds, floor, per_core, full in grade_rows:
        print(f"{name:18} {first:8.1f} {seconds:11.1f} {floor:8.1f} {seconds / floor:6.2f} "
              f"{per_core:12.1f}  {'yes' if full else 'NO'}")
    print("(first s: the notebook's first autograde on this machine, which also runs the "
          "model solution to compile its programs and computes the oracle's values; "
          "autograde s: the same again)")
    print(f"(class s/core: {CLASS_SIZE} model submissions graded by `python -m course grade` "
          f"with {os.cpu_count()} workers; its autograde seconds x cores / submissions)")
    if demo_seconds is not None:
        print(f"\npython -m course demo: {demo_seconds:.1f} s")
    return 0 if all(full for *_, full in grade_rows) else 1
