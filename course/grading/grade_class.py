"""Grade a whole class with nbgrader: collect, inspect, autograde in parallel, feedback, export,
and report what the class got wrong (course/reports.py).

    python -m course grade ASSIGNMENT [ASSIGNMENT ...] [--collect | --zip-collect]
                           [--workers N | --scheduler tcp://HOST:PORT]

Run it from the course folder's copy of the repository (where nbgrader_config.py lives). Every
step is nbgrader's own: ``nbgrader collect`` or ``zip_collect``, then ``NbGraderAPI.autograde``
and ``NbGraderAPI.generate_feedback`` (what formgrader calls) in worker processes that share
the gradebook, and ``nbgrader export``. The submissions of every assignment named share one
pool of workers, which takes the submissions with the most answered cells first. Before
grading, :mod:`course.intake` makes every submission gradable and writes
what it found into the student's notebook. The gradebook is ``db_url`` of nbgrader_config.py:
the course's SQLite file, or the database named by ``NBGRADER_DB_URL`` (PostgreSQL for several
graders). With ``--scheduler``, autograde and feedback run on an existing Dask cluster
instead, one task per submission (see course/grading/dask_grading.py); everything else is the
same.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from nbgrader import utils as nbgrader_utils
from tqdm import tqdm

from course import paths, reports
from course.grading import dask_grading, intake, oracle_values, outcome
from course.grading.outcome import ClassOutcome
from course.paths import db_url, load_config, nbgrader

SQLITE_BUSY_TIMEOUT = 120  # seconds a worker waits for another's write to the SQLite gradebook
MODEL_RUN_PER_WORKER = 3  # submissions per worker of an assignment that pay for a model run


_api = None  # each worker process's NbGraderAPI


def _end_with_parent(parent):
    """End this worker when the command that started it, ``parent``, is gone (killed by
    SIGTERM or SIGKILL, which its pool cannot pass on), even before this worker started: a
    worker otherwise waits for work forever, holding its memory. Its grading kernel ends with
    it (bwrap's --die-with-parent)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _start_worker(course, values, parent, model_run=True):
    global _api
    from nbgrader.apps import NbGraderAPI

    threading.Thread(target=_end_with_parent, args=(parent,), daemon=True).start()

    config = load_config(course)
    config.JudgeTestCells.oracle_values = values  # the judge's oracle values, shared
    if not model_run:
        config.ExecuteSurvivingCrashes.compile_model_programs = False
    url = db_url(course)
    if url.startswith("sqlite:") and "?" not in url:
        # Workers write to one SQLite file: wait for each other instead of failing at once.
        config.CourseDirectory.db_url = f"{url}?timeout={SQLITE_BUSY_TIMEOUT}"
    _api = NbGraderAPI(config=config)


def _oracle_folder(course):
    """Where the workers keep the judge's oracle values: the course's
    ``JudgeTestCells.oracle_values``, else this machine's folder (course/grading/
    oracle_values.py); empty: a private folder of this run's."""
    configured = load_config(course).JudgeTestCells.get("oracle_values")
    return oracle_values.default_folder() if configured is None else configured


def _autograde(assignment, student):
    result = _api.autograde(assignment, student, force=True, create=True)
    return (assignment, student), result.get("success", False), result.get("error", "")


def _feedback(assignment, student):
    result = _api.generate_feedback(assignment, student, force=True)
    return (assignment, student), result.get("success", False), result.get("error", "")


@dataclasses.dataclass
class ClassResult:
    assignment: str
    students: list
    notes: dict  # student -> {notebook: [notes]}
    failed: dict  # student -> nbgrader's error, for the few it still could not grade
    seconds: dict  # step -> seconds
    grades_csv: Path
    plot: Path
    mistakes: reports.MistakeReport = None  # where the mistake report was written
    outcome: ClassOutcome = None  # what grading decided, read once from the gradebook


def sandbox_setting(course):
    """How grading kernels will run (``"bwrap"`` or ``"none"``); raises SandboxUnavailable, with
    what to install, when the sandbox is configured but cannot run here."""
    from course.grading import sandbox

    config = load_config(course)
    setting = str(config.ExecuteSurvivingCrashes.get("sandbox", "bwrap")).lower()
    if setting == "bwrap":
        sandbox.bwrap_path()
    return setting


def students(course, assignment):
    """The students with a submission of ``assignment`` in submitted/, as nbgrader finds them."""
    from nbgrader.apps import NbGraderAPI

    return sorted(NbGraderAPI(config=load_config(course)).get_submitted_students(assignment))


def answered_cells(course, assignment, student, release):
    """How many answer cells of a submission differ from the release: a guess of how long it
    takes to grade (an unanswered exercise fails at once)."""
    count = 0
    for name, release_nb in release.items():
        path = Path(course) / "submitted" / student / assignment / f"{name}.ipynb"
        try:
            nb = intake.read_notebook(path)
        except Exception:  # unreadable: nbgrader will say so, quickly
            continue
        handed_out = {cell.metadata["nbgrader"]["grade_id"]: cell.source
                      for cell in release_nb.cells if nbgrader_utils.is_solution(cell)}
        count += sum(1 for cell in nb.cells if intake._nbgrader(cell).get("solution")
                     and cell.source != handed_out.get(intake._nbgrader(cell)["grade_id"]))
    return count


def _in_pool(pool, task, jobs, description, progress):
    """Run ``task(assignment, student)`` for every job in ``pool``, in order; ``{job: error}``
    of those that failed."""
    failed = {}
    futures = [pool.submit(task, *job) for job in jobs]
    with tqdm(total=len(futures), desc=description, unit="submission",
              disable=not progress, file=sys.stderr) as bar:
        for future in concurrent.futures.as_completed(futures):
            job, ok, error = future.result()
            if not ok:
                failed[job] = error
            bar.update()
    return failed


def grade_parallel(course, jobs, workers, progress=True, feedback=True):
    """Autograde the submissions ``jobs`` (``(assignment, student)`` pairs) in ``workers``
    processes, then generate their feedback in the same processes. Returns the seconds of both
    steps and ``{job: nbgrader's error}`` of those it could not autograde or give feedback.

    A notebook that this machine has no compiled programs of yet gets them from a run of the
    model solution (course/grading/compiled_programs.py), which costs about one submission and
    saves a quarter to two fifths of each later one; while it runs, the other workers grade
    without them. A class with fewer than ``MODEL_RUN_PER_WORKER`` submissions of every
    assignment per worker is graded without that run (with the programs an earlier run left,
    if any)."""
    seconds = {}
    per_assignment = collections.Counter(assignment for assignment, _ in jobs)
    model_run = any(n >= MODEL_RUN_PER_WORKER * workers for n in per_assignment.values())
    context = multiprocessing.get_context("spawn")
    kept = _oracle_folder(course)
    with (contextlib.nullcontext(kept) if kept else
          tempfile.TemporaryDirectory(prefix="oracle-values-")) as values, \
            concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_start_worker,
                initargs=(str(course), values, os.getpid(), model_run)) as pool:
        start = time.perf_counter()
        failed = _in_pool(pool, _autograde, jobs, "autograde", progress)
        seconds["autograde"] = time.perf_counter() - start
        if feedback:
            start = time.perf_counter()
            graded = [job for job in jobs if job not in failed]
            for job, error in _in_pool(pool, _feedback, graded, "feedback", progress).items():
                failed[job] = f"nbgrader generate_feedback failed: {error}"
            seconds["feedback"] = time.perf_counter() - start
    return seconds, failed


def _inspect(course, assignment, student, release):
    """:func:`intake.inspect` of one submission; one that it cannot inspect is named, and left
    to nbgrader, whose own check of the submission's files then fails it alone."""
    try:
        return intake.inspect(course / "submitted" / student / assignment, release,
                              course / "originals" / assignment / student)
    except Exception as error:
        return {"": [f"could not be inspected ({type(error).__name__}: {error})"]}


def register_students(course, names):
    """Add the students to the gradebook before the workers start: two workers that both
    created the same new student would collide, and one of the submissions would fail."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url(course)) as gradebook:
        for name in sorted(names):
            gradebook.update_or_create_student(name)


def grade_classes(course, assignments, workers=None, collect=None, progress=True, log=print,
                  scheduler=None):
    """Collect (``"exchange"``, ``"zip"`` or None: already in submitted/), inspect, autograde
    and generate feedback in parallel (on the Dask cluster of ``scheduler``, if given), export
    grades and plot them: a :class:`ClassResult` per assignment (they share their
    ``seconds``)."""
    course = Path(course)
    seconds = {}
    workers = workers or os.cpu_count()
    if scheduler:
        dask_grading.require_shared_gradebook(course)
    sandbox = sandbox_setting(course)
    if sandbox == "none":
        log("WARNING: grading kernels run WITHOUT a sandbox (ExecuteSurvivingCrashes.sandbox = "
            "'none'): a submission can read the course folder and change other students' files.")

    def step(name, *nbgrader_args):
        start = time.perf_counter()
        nbgrader(*nbgrader_args, root=course)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

    names, notes, cost = {}, {}, {}
    for assignment in assignments:
        if collect == "exchange":
            step("collect", "collect", assignment, "--update")
        elif collect == "zip":
            step("collect", "zip_collect", assignment, "--force")
        names[assignment] = students(course, assignment)
        if not names[assignment]:
            raise RuntimeError(f"no submissions of {assignment} in {course / 'submitted'}")

        start = time.perf_counter()
        release = paths.release_notebooks(course, assignment)
        notes[assignment] = {name: _inspect(course, assignment, name, release)
                             for name in names[assignment]}
        for name in names[assignment]:
            cost[assignment, name] = answered_cells(course, assignment, name, release)
        seconds["inspect"] = seconds.get("inspect", 0.0) + time.perf_counter() - start
        noted = sum(any(n.values()) for n in notes[assignment].values())
        log(f"{assignment}: {len(names[assignment])} submissions, {noted} with grading notes")

    jobs = sorted(cost, key=lambda job: -cost[job])  # stable: ties keep their order
    register_students(course, {student for _, student in jobs})
    if scheduler:
        steps, failed = dask_grading.grade_on_cluster(course, jobs, scheduler, sandbox, progress)
        where = f"on the Dask cluster at {scheduler}, feedback included"
    else:
        steps, failed = grade_parallel(course, jobs, workers, progress)
        where = f"with {workers} workers, feedback in {steps['feedback']:.0f} s"
    seconds.update(steps)
    log(f"autograded {len(jobs)} submissions in {seconds['autograde']:.0f} s {where}"
        + (f"; nbgrader failed on {sorted(f'{a}/{s}' for a, s in failed)}" if failed else ""))
    step("export", "export")
    outcomes = outcome.read(course, assignments)
    results = []
    for assignment in assignments:
        plot = reports.score_distribution(outcomes[assignment],
                                          course / "reports" / f"{assignment}-scores.png")
        report = reports.write_report(course, outcomes[assignment], log=lambda text: None)
        results.append(ClassResult(
            assignment, names[assignment], notes[assignment],
            {s: e for (a, s), e in failed.items() if a == assignment}, seconds,
            course / "grades.csv", plot, report, outcomes[assignment]))
    return results


def grade_class(course, assignment, workers=None, collect=None, progress=True, log=print,
                scheduler=None):
    """:func:`grade_classes` for one assignment."""
    return grade_classes(course, [assignment], workers, collect, progress, log, scheduler)[0]


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="+", metavar="assignment")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--collect", action="store_const", const="exchange", dest="source",
                        help="first run `nbgrader collect` (the exchange)")
    source.add_argument("--zip-collect", action="store_const", const="zip", dest="source",
                        help="first run `nbgrader zip_collect` (an LMS download in "
                             "downloaded/ASSIGNMENT/archive/)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="parallel grading processes (default: the number of cores)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="grade on this Dask cluster instead (needs a PostgreSQL gradebook; "
                             "see the README)")
    parser.add_argument("--course", default=str(paths.ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from course.grading.sandbox import SandboxUnavailable

    try:
        results = grade_classes(args.course, args.assignments, args.workers, args.source,
                                scheduler=args.scheduler)
    except dask_grading.ClusterUnusable as error:
        print(f"Cannot grade on the cluster: {error}", file=sys.stderr)
        return 2
    except SandboxUnavailable as error:
        print(f"Cannot grade: {error}. To grade without isolation (only where every submission "
              "is trusted), set c.ExecuteSurvivingCrashes.sandbox = 'none' in "
              "nbgrader_config.py.", file=sys.stderr)
        return 2
    for result in results:
        for student in result.students:
            for notebook, notes in result.notes[student].items():
                for note in notes:
                    print(f"  {student}/{result.assignment}/{notebook}: {note}")
    for result in results:
        print(f"\n{result.assignment}:\n{reports.grade_table(result.outcome)}\n"
              f"feedback in feedback/*/{result.assignment}/, plot {result.plot}")
        print("\n" + reports.table(result.assignment, reports.collect(result.outcome)))
        print("report: " + ", ".join(str(path) for path in result.mistakes))
    print(f"\ngrades: {results[0].grades_csv} (empty scores: not submitted)")
    for result in results:
        for student, error in result.failed.items():
            print(f"\nnbgrader could not grade {student}/{result.assignment} (its marks above "
                  f"are not real):\n{error.strip()}", file=sys.stderr)
    return 1 if any(result.failed for result in results) else 0
