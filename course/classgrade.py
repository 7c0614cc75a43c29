"""Grade a whole class with nbgrader: collect, inspect, autograde in parallel, feedback, export.

    python -m course grade ASSIGNMENT [--collect | --zip-collect] [--workers N]

Run it from the course folder's copy of the repository (where nbgrader_config.py lives). Every
step is nbgrader's own: ``nbgrader collect`` or ``zip_collect``, ``NbGraderAPI.autograde``
(what formgrader calls) in worker processes that share the gradebook, ``generate_feedback``
and ``export``. Before grading, :mod:`course.intake` makes every submission gradable and writes
what it found into the student's notebook. The gradebook is ``db_url`` of nbgrader_config.py:
the course's SQLite file, or the database named by ``NBGRADER_DB_URL`` (PostgreSQL for several
graders).
"""

import collections
import concurrent.futures
import dataclasses
import multiprocessing
import os
import sys
import time
from pathlib import Path

import nbformat
from tqdm import tqdm

from . import build, intake

SQLITE_BUSY_TIMEOUT = 120  # seconds a worker waits for another's write to the SQLite gradebook


def load_config(course):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


def db_url(course):
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=load_config(course)).db_url


_api = None  # each worker process's NbGraderAPI


def _start_worker(course):
    global _api
    from nbgrader.apps import NbGraderAPI

    config = load_config(course)
    url = db_url(course)
    if url.startswith("sqlite:") and "?" not in url:
        # Workers write to one SQLite file: wait for each other instead of failing at once.
        config.CourseDirectory.db_url = f"{url}?timeout={SQLITE_BUSY_TIMEOUT}"
    _api = NbGraderAPI(config=config)


def _autograde(assignment, student):
    result = _api.autograde(assignment, student, force=True, create=True)
    return student, result.get("success", False), result.get("error", "")


@dataclasses.dataclass
class ClassResult:
    assignment: str
    students: list
    notes: dict  # student -> {notebook: [notes]}
    failed: dict  # student -> nbgrader's error, for the few it still could not grade
    seconds: dict  # step -> seconds
    grades_csv: Path
    plot: Path


def sandbox_setting(course):
    """How grading kernels will run (``"bwrap"`` or ``"none"``); raises SandboxUnavailable, with
    what to install, when the sandbox is configured but cannot run here."""
    from . import sandbox

    config = load_config(course)
    setting = str(config.ExecuteSurvivingCrashes.get("sandbox", "bwrap")).lower()
    if setting == "bwrap":
        sandbox.bwrap_path()
    return setting


def students(course, assignment):
    return sorted(p.parent.name for p in (Path(course) / "submitted").glob(f"*/{assignment}")
                  if p.is_dir())


def release_notebooks(course, assignment):
    return {p.stem: nbformat.read(p, as_version=4)
            for p in sorted((Path(course) / "release" / assignment).glob("*.ipynb"))}


def autograde_parallel(course, assignment, names, workers, progress=True):
    """Autograde the students ``names`` in ``workers`` processes; ``{student: error}`` of those
    nbgrader could not grade."""
    failed = {}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_start_worker,
            initargs=(str(course),)) as pool:
        futures = [pool.submit(_autograde, assignment, name) for name in names]
        with tqdm(total=len(futures), desc=f"autograde {assignment}", unit="student",
                  disable=not progress, file=sys.stderr) as bar:
            for future in concurrent.futures.as_completed(futures):
                student, ok, error = future.result()
                if not ok:
                    failed[student] = error
                bar.update()
    return failed


def score_distribution(course, assignment, path):
    """Draw, per exercise (in notebook order), how many students scored zero, partial and full
    marks, and the histogram of total scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from nbgrader.api import Gradebook

    counts = collections.defaultdict(collections.Counter)
    totals, max_total = [], 0
    with Gradebook(db_url(course)) as gradebook:
        for submission in gradebook.assignment_submissions(assignment):
            totals.append(submission.score)
            max_total = submission.max_score
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    score, top = grade.score, grade.max_score
                    counts[grade.name][
                        "full" if score >= top else "zero" if score == 0 else "partial"] += 1
    order = [cell.metadata["nbgrader"]["grade_id"]
             for nb in release_notebooks(course, assignment).values() for cell in nb.cells
             if cell.metadata.get("nbgrader", {}).get("grade_id") in counts]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(order) + 2.2),
                                         gridspec_kw={"width_ratios": [2, 1]})
    start = np.zeros(len(order))
    for outcome, color in (("full", "tab:green"), ("partial", "tab:orange"), ("zero", "tab:red")):
        values = np.array([counts[e][outcome] for e in order])
        left.barh(order, values, left=start, color=color, label=f"{outcome} marks")
        start += values
    left.invert_yaxis()
    left.set_xlabel("students")
    left.set_title(f"{assignment}: marks per exercise")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 1.0 / (len(order) + 4)),
                ncol=3, fontsize="small", frameon=False)
    right.hist(totals, bins=np.arange(-0.5, max_total + 1.0, max(1.0, max_total / 20)),
               color="tab:blue", edgecolor="white")
    right.set_xlabel(f"total score (of {max_total:g})")
    right.set_ylabel("students")
    right.set_title(f"{len(totals)} submissions")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def grade_class(course, assignment, workers=None, collect=None, progress=True, log=print):
    """Collect (``"exchange"``, ``"zip"`` or None: already in submitted/), inspect, autograde
    in parallel, generate feedback, export grades and plot them."""
    course = Path(course)
    seconds = {}
    workers = workers or os.cpu_count()
    if sandbox_setting(course) == "none":
        log("WARNING: grading kernels run WITHOUT a sandbox (ExecuteSurvivingCrashes.sandbox = "
            "'none'): a submission can read the course folder and change other students' files.")

    def step(name, *nbgrader_args):
        start = time.perf_counter()
        result = build.nbgrader(*nbgrader_args, root=course, check=False)
        seconds[name] = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader {' '.join(nbgrader_args)} failed:\n{result.stderr}")

    if collect == "exchange":
        step("collect", "collect", assignment, "--update")
    elif collect == "zip":
        step("collect", "zip_collect", assignment, "--force")
    names = students(course, assignment)
    if not names:
        raise RuntimeError(f"no submissions of {assignment} in {course / 'submitted'}")

    start = time.perf_counter()
    release = release_notebooks(course, assignment)
    notes = {name: intake.inspect(course / "submitted" / name / assignment, release,
                                  course / "originals" / assignment / name) for name in names}
    seconds["inspect"] = time.perf_counter() - start
    noted = sum(any(n.values()) for n in notes.values())
    log(f"{assignment}: {len(names)} submissions, {noted} with grading notes")

    start = time.perf_counter()
    failed = autograde_parallel(course, assignment, names, workers, progress)
    seconds["autograde"] = time.perf_counter() - start
    log(f"{assignment}: autograded in {seconds['autograde']:.0f} s with {workers} workers"
        + (f"; nbgrader could not grade {sorted(failed)}" if failed else ""))

    step("feedback", "generate_feedback", assignment, "--force")
    step("export", "export")
    plot = score_distribution(course, assignment, course / "reports" / f"{assignment}-scores.png")
    return ClassResult(assignment, names, notes, failed, seconds, course / "grades.csv", plot)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignment")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--collect", action="store_const", const="exchange", dest="source",
                        help="first run `nbgrader collect` (the exchange)")
    source.add_argument("--zip-collect", action="store_const", const="zip", dest="source",
                        help="first run `nbgrader zip_collect` (an LMS download in "
                             "downloaded/ASSIGNMENT/archive/)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="parallel grading processes (default: the number of cores)")
    parser.add_argument("--course", default=str(build.ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from .sandbox import SandboxUnavailable

    try:
        result = grade_class(args.course, args.assignment, args.workers, args.source)
    except SandboxUnavailable as error:
        print(f"Cannot grade: {error}. To grade without isolation (only where every submission "
              "is trusted), set c.ExecuteSurvivingCrashes.sandbox = 'none' in "
              "nbgrader_config.py.", file=sys.stderr)
        return 2
    for student in result.students:
        for notebook, notes in result.notes[student].items():
            for note in notes:
                print(f"  {student}/{notebook}: {note}")
    print(f"feedback: feedback/*/{args.assignment}/  grades: {result.grades_csv}  "
          f"plot: {result.plot}")
    return 1 if result.failed else 0
