"""Serial ``nbgrader autograde`` against ``python -m course grade`` on one synthetic class.

    python -m course benchmark-grading [--students 40] [--workers N] [--assignment NAME]
                                       [--scheduler tcp://HOST:PORT --db-url postgresql://...]

Both grade the same submissions (the demo class's kinds, repeated) in fresh course folders; the
grades must agree. Prints the seconds of each and their ratio, and the cost of the sandbox: the
same serial autograde with grading kernels outside it (``--no-sandbox-run`` skips that run),
which also compile every program (only sandboxed kernels load the model solution's: see
course/grading/compiled_programs.py).
With ``--scheduler``, the class is also graded on that Dask cluster (its workers must see this
machine's temporary folder at the same path: a cluster on this machine, or a shared
filesystem), into the empty PostgreSQL gradebook ``--db-url``; it prints the speed-up of the
cluster over the local pool. The other runs keep SQLite gradebooks of their own.
"""

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

from course import paths
from course.authoring import build
from course.dev import demo, scratch_course
from course.grading import grade_class
from course.paths import nbgrader


def synthetic_class(assignment, students):
    kinds = demo.demo_class(paths.ROOT, assignment)  # {kind: {notebook: nb}}
    names = sorted(kinds)
    return {f"s{k:03d}-{names[k % len(names)]}": kinds[names[k % len(names)]]
            for k in range(students)}


@contextlib.contextmanager
def gradebook(url):
    """``NBGRADER_DB_URL`` set to ``url`` (None: unset, each course's own SQLite file)."""
    saved = os.environ.pop("NBGRADER_DB_URL", None)
    if url:
        os.environ["NBGRADER_DB_URL"] = url
    try:
        yield
    finally:
        os.environ.pop("NBGRADER_DB_URL", None)
        if saved is not None:
            os.environ["NBGRADER_DB_URL"] = saved


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course benchmark-grading",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--assignment", default=build.assignments()[0])
    parser.add_argument("--no-sandbox-run", action="store_true",
                        help="skip the serial run with grading kernels outside the sandbox")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="also grade on this Dask cluster, and report its speed-up")
    parser.add_argument("--db-url", help="an empty PostgreSQL gradebook for the Dask run")
    args = parser.parse_args(argv)
    if args.scheduler and not (args.db_url or "").startswith("postgresql"):
        parser.error("--scheduler needs --db-url postgresql://... (an empty database)")
    klass = synthetic_class(args.assignment, args.students)
    names = (("serial", "parallel") + (() if args.no_sandbox_run else ("unsandboxed",))
             + (("dask",) if args.scheduler else ()))
    urls = {"dask": args.db_url}
    with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as folder, gradebook(None):
        courses = {name: scratch_course.new_course(Path(folder) / name) for name in names}
        for name, course in courses.items():
            with gradebook(urls.get(name)):
                build.build_release(args.assignment, root=course)
            for student, notebooks in klass.items():
                scratch_course.submit(course, args.assignment, student, notebooks)

        def serial_autograde(course, *options):
            start = time.perf_counter()
            nbgrader("autograde", args.assignment, "--force", *options, root=course)
            return time.perf_counter() - start

        serial_seconds = serial_autograde(courses["serial"])
        unsandboxed_seconds = None if args.no_sandbox_run else serial_autograde(
            courses["unsandboxed"], "--ExecuteSurvivingCrashes.sandbox=none")
        graded = grade_class.grade_class(courses["parallel"], args.assignment, args.workers,
                                        log=lambda *_: None)
        if args.scheduler:
            with gradebook(args.db_url):
                on_dask = grade_class.grade_class(courses["dask"], args.assignment,
                                                  log=lambda *_: None, scheduler=args.scheduler)
        scores = {}
        for name, course in courses.items():
            with gradebook(urls.get(name)):
                scores[name] = scratch_course.cell_scores(course, args.assignment)
        same = all(other == scores["serial"] for other in scores.values())
    steps = graded.seconds
    print(f"{args.assignment}: {args.students} submissions, {os.cpu_count()} cores")
    print(f"  nbgrader autograde (one process)        {serial_seconds:7.1f} s  "
          f"({serial_seconds / args.students:.2f} s per submission)")
    print(f"  course grade, autograde ({args.workers} workers)    {steps['autograde']:7.1f} s  "
          f"({steps['autograde'] / args.students:.2f} s per submission)")
    print(f"  speed-up of autograding                 {serial_seconds / steps['autograde']:7.2f}x")
    if unsandboxed_seconds is not None:
        print(f"  nbgrader autograde without the sandbox  {unsandboxed_seconds:7.1f} s  "
              f"({unsandboxed_seconds / args.students:.2f} s per submission; the sandbox, "
              f"with the compiled programs that only sandboxed kernels load, changes it by "
              f"{100 * (serial_seconds / unsandboxed_seconds - 1):+.1f}%)")
    if args.scheduler:
        both = steps["autograde"] + steps["feedback"]
        dask_seconds = on_dask.seconds["autograde"]
        print(f"  course grade on Dask, with feedback     {dask_seconds:7.1f} s  (the local pool, "
              f"with feedback: {both:.1f} s; speed-up of the cluster {both / dask_seconds:.2f}x)")
    print("  course grade, other steps               "
          + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items() if k != "autograde"))
    print(f"  same grades from every run: {'yes' if same else 'NO'}")
    return 0 if same else 1
