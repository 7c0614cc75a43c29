"""Grade a class on an existing Dask distributed cluster: one task per submission.

    python -m course grade ASSIGNMENT [...] --scheduler tcp://HOST:PORT

What stays on the machine that runs the command (the client): collect, the intake
(:mod:`course.grading.intake`), export, the grade table, the plot and the mistake report, and
every write to the course folder. What each task does on a worker: it builds a private,
temporary course directory of its own (``submitted/``, ``autograded/``, ``feedback/``, with
``source/`` and ``release/`` linked from the course folder), writes the submission's regular
files into it (the client read them, by the rules of :mod:`course.grading.submission_files`, and
sent them with the task), runs nbgrader's ``autograde`` (``force=True``) and
``generate_feedback`` there against the shared gradebook, and returns the autograded
notebooks and the feedback files as bytes. The client writes each returned file under a
temporary name and renames it into ``autograded/`` and ``feedback/``, so a file there is always
whole.

So a worker needs: the course folder, read-only, at the same path as on the client (its
``nbgrader_config.py``, ``source/``, ``release/`` and the ``course`` package, importable: start
it with ``PYTHONPATH`` set to that folder); bubblewrap; and the PostgreSQL gradebook reachable
(both checked on every worker before grading). It never writes to the course folder. A SQLite
gradebook is refused: it is a file of the course folder, which workers must not need to write.

A worker that dies while it grades (killed, out of memory) loses its task; the scheduler gives
it to another worker. Grading a submission again is harmless: ``autograde`` with ``force=True``
replaces that submission's grades in the gradebook, so nothing is recorded twice. A submission
whose grading killed its worker three times (distributed's ``KilledWorker``) is marked
ungradable, with a note, and the rest of the class is graded. If the scheduler goes away, the
command stops with :class:`ClusterUnusable`; files already written are whole.

The judge computes the oracle's values once per worker machine, in that machine's folder of
them (course/grading/oracle_values.py).
"""

import contextlib
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tqdm import tqdm

from course.grading import submission_files
from course.paths import db_url, load_config

CONNECT_SECONDS = 20  # how long the client tries to reach (or reach again) the scheduler
TASK_RETRIES = 1  # reruns of a task that raised (a worker lost is rescheduled besides)
KILLED_NOTE = ("its grading killed the worker that ran it, on every try (Dask's KilledWorker); "
               "it was not graded")


class ClusterUnusable(RuntimeError):
    """The cluster cannot grade this course: no scheduler, a worker without the sandbox, a
    gradebook that workers cannot share, or the scheduler lost while grading."""


def require_shared_gradebook(course):
    """The gradebook's URL, which every worker writes to; refuse a SQLite gradebook."""
    url = db_url(course)
    if url.startswith("sqlite:"):
        raise ClusterUnusable(
            f"grading on a Dask cluster needs a PostgreSQL gradebook that every worker can "
            f"reach, not SQLite ({url}): set NBGRADER_DB_URL=postgresql://USER@HOST/DB")
    return url


def read_submission(folder, max_file_bytes):
    """``{relative path: bytes}`` of the regular files of one name in the submission
    ``folder`` (the intake has removed everything else; anything left is skipped again)."""
    files = {}
    for top, folders, names in os.walk(folder):
        folders.sort()
        for name in sorted(names):
            path = os.path.join(top, name)
            try:
                data = submission_files.read_regular(path, max_file_bytes + 1)
            except (OSError, submission_files.Refusal):
                continue
            if len(data) <= max_file_bytes:
                files[os.path.relpath(path, folder)] = data
    return files


def _tree(folder):
    """``{relative path: bytes}`` of every file below ``folder`` (the worker's own output)."""
    found = {}
    for top, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(top, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, folder)] = handle.read()
    return found


def _safe_relative(path):
    """Whether ``path`` stays inside the folder it is relative to."""
    parts = Path(path).parts
    return bool(parts) and not Path(path).is_absolute() and ".." not in parts


def grade_submission(course, assignment, student, files, url, feedback=True):
    """The task: autograde (and generate the feedback of) one submission in a private course
    directory on this worker; returns what nbgrader said and the files it wrote, as bytes."""
    from nbgrader.apps import NbGraderAPI

    course = Path(course)
    with tempfile.TemporaryDirectory(prefix="grading-") as private:
        root = Path(private)
        for shared in ("source", "release"):
            (root / shared).symlink_to(course / shared)
        folder = root / "submitted" / student / assignment
        for relative, data in files.items():
            if not _safe_relative(relative):
                continue
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(data)
        folder.mkdir(parents=True, exist_ok=True)
        config = load_config(course)
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.db_url = url
        api = NbGraderAPI(config=config)
        start = time.perf_counter()
        graded = api.autograde(assignment, student, force=True, create=True)
        result = {"autograded": graded.get("success", False), "error": graded.get("error", ""),
                  "seconds": {"autograde": time.perf_counter() - start}}
        if result["autograded"] and feedback:
            start = time.perf_counter()
            given = api.generate_feedback(assignment, student, force=True)
            result["seconds"]["feedback"] = time.perf_counter() - start
            if not given.get("success", False):
                result["error"] = (f"nbgrader generate_feedback failed: "
                                   f"{given.get('error', '')}")
        for step in ("autograded", "feedback"):
            result[f"{step}_files"] = _tree(root / step / student / assignment)
        return result


def worker_problem(course, sandbox_setting, url):
    """Run on each worker before grading: what stops it from grading (None if nothing): no
    course folder at ``course``, no working bubblewrap, or no gradebook at ``url``."""
    import sqlalchemy

    from course.grading import sandbox

    if not (Path(course) / "nbgrader_config.py").is_file():
        return f"the course folder {course} (nbgrader_config.py) is not there"
    if sandbox_setting == "bwrap":
        try:
            sandbox.bwrap_path()
        except sandbox.SandboxUnavailable as error:
            return str(error)
    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": CONNECT_SECONDS})
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as error:
        return f"cannot reach the gradebook: {str(error).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


def check_workers(client, course, sandbox_setting, url):
    """Refuse a cluster without workers, or with a worker that cannot grade, naming it."""
    problems = client.run(worker_problem, str(course), sandbox_setting, url, on_error="return")
    if not problems:
        raise ClusterUnusable("the Dask cluster has no workers")
    bad = {worker: (f"the check failed: {type(problem).__name__}: {problem}"
                    if isinstance(problem, BaseException) else problem)
           for worker, problem in problems.items() if problem}
    if bad:
        raise ClusterUnusable("cannot grade on these Dask workers: " + "; ".join(
            f"{worker}: {problem}" for worker, problem in sorted(bad.items())))
    return sorted(problems)


def write_results(course, assignment, student, result):
    """Put the files a task returned into the course's autograded/ and feedback/ folders, each
    written to a temporary name and renamed, and remove what an earlier grading left there."""
    for step in ("autograded", "feedback"):
        folder = Path(course) / step / student / assignment
        files = {p: d for p, d in result[f"{step}_files"].items() if _safe_relative(p)}
        for relative, data in sorted(files.items()):
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            submission_files.write_replacing(folder / relative, data)
        if folder.is_dir():
            for top, _, names in os.walk(folder):
                for name in names:
                    path = os.path.join(top, name)
                    if os.path.relpath(path, folder) not in files:
                        os.unlink(path)


@contextlib.contextmanager
def _quiet_distributed():
    """No log records below CRITICAL while the cluster grades: distributed logs a lost
    connection (with tracebacks) from several loggers, and the command says what went wrong
    itself. (Workers log on their own machines.)"""
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(previous)


def connect(scheduler):
    """A Client of the scheduler at ``scheduler``; ClusterUnusable when it cannot be reached."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ClusterUnusable(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def grade_on_cluster(course, jobs, scheduler, sandbox_setting, progress=True, feedback=True):
    """Autograde and give feedback to the submissions ``jobs`` (``(assignment, student)``
    pairs, the first first) on the cluster of ``scheduler``. Returns the seconds it took and
    ``{job: why it was not graded}``, as ``grade_class.grade_parallel`` does; the seconds of
    ``"autograde"`` include the feedback's, which each task gives in the same go."""
    from distributed.comm import CommClosedError

    course = Path(course)
    url = require_shared_gradebook(course)
    lost = ClusterUnusable(f"lost the Dask scheduler at {scheduler} while grading; grade "
                           "again when it is back")
    try:
        with _quiet_distributed(), connect(scheduler) as client:
            return _grade_with(client, course, jobs, url, sandbox_setting, progress, feedback,
                               lost)
    except CommClosedError:
        raise lost from None


def _grade_with(client, course, jobs, url, sandbox_setting, progress, feedback, lost):
    """:func:`grade_on_cluster` with the connected ``client``."""
    from distributed import KilledWorker, as_completed
    from nbgrader.coursedir import CourseDirectory

    workers = check_workers(client, course, sandbox_setting, url)
    max_file_bytes = CourseDirectory(config=load_config(course)).max_file_size * 1000
    start, run = time.perf_counter(), uuid.uuid4().hex[:8]
    futures = {}
    for rank, (assignment, student) in enumerate(jobs):
        files = read_submission(course / "submitted" / student / assignment, max_file_bytes)
        future = client.submit(grade_submission, str(course), assignment, student, files, url,
                               feedback, key=f"grade-{assignment}-{student}-{run}",
                               priority=len(jobs) - rank, retries=TASK_RETRIES, pure=False)
        futures[future] = (assignment, student)
    failed = {}
    with tqdm(total=len(futures), desc=f"grade on {len(workers)} Dask workers",
              unit="submission", disable=not progress, file=sys.stderr) as bar:
        for future in as_completed(futures, loop=client.loop):
            job = futures[future]
            if future.status == "cancelled" or client.status != "running":
                raise lost
            try:
                result = future.result()
            except KilledWorker:
                failed[job] = KILLED_NOTE
            except Exception as error:  # the task raised, on every try
                failed[job] = f"grading on the cluster failed: {type(error).__name__}: {error}"
            else:
                write_results(course, *job, result)
                if not result["autograded"] or result["error"]:
                    failed[job] = result["error"]
            bar.update()
    return {"autograde": time.perf_counter() - start}, failed
