"""Serial ``nbgrader autograde`` against ``python -m course grade`` on one synthetic class.

    python -m course benchmark-grading [--students 40] [--workers N] [--assignment NAME]

Both grade the same submissions (the demo class's kinds, repeated) in two fresh course folders;
the grades must agree. Prints the seconds of each and their ratio.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from . import build, classgrade, demo, grading


def synthetic_class(assignment, students):
    kinds = demo.demo_class(build.ROOT, assignment)  # {kind: {notebook: nb}}
    names = sorted(kinds)
    return {f"s{k:03d}-{names[k % len(names)]}": kinds[names[k % len(names)]]
            for k in range(students)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course benchmark-grading",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--assignment", default=build.assignments()[0])
    args = parser.parse_args(argv)
    klass = synthetic_class(args.assignment, args.students)
    with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as folder:
        serial, parallel = (grading.new_course(Path(folder) / name)
                            for name in ("serial", "parallel"))
        for course in (serial, parallel):
            build.build_release(args.assignment, root=course)
            for student, notebooks in klass.items():
                grading.submit(course, args.assignment, student, notebooks)

        start = time.perf_counter()
        result = build.nbgrader("autograde", args.assignment, "--force", root=serial,
                                check=False)
        serial_seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader autograde failed:\n{result.stderr}")

        graded = classgrade.grade_class(parallel, args.assignment, args.workers,
                                        log=lambda *_: None)
        same = (grading.cell_scores(serial, args.assignment)
                == grading.cell_scores(parallel, args.assignment))
    steps = graded.seconds
    print(f"{args.assignment}: {args.students} submissions, {os.cpu_count()} cores")
    print(f"  nbgrader autograde (one process)        {serial_seconds:7.1f} s  "
          f"({serial_seconds / args.students:.2f} s per submission)")
    print(f"  course grade, autograde ({args.workers} workers)    {steps['autograde']:7.1f} s  "
          f"({steps['autograde'] / args.students:.2f} s per submission)")
    print(f"  speed-up of autograding                 {serial_seconds / steps['autograde']:7.2f}x")
    print("  course grade, other steps               "
          + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items() if k != "autograde"))
    print(f"  same grades from both: {'yes' if same else 'NO'}")
    return 0 if same else 1
