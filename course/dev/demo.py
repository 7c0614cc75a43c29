"""The main job: build the course, then grade a small demo class and print its grade table."""

import argparse
import os
import shutil
import time
from pathlib import Path

import nbformat

from course import paths, reports
from course.authoring import build
from course.dev import scratch_course
from course.grading import grade_class


def demo_class(root, assignment):
    """A model student, a student who submitted the untouched release, and one in between."""
    submissions = {name: {} for name in ("ada", "blank", "half")}
    for path in sorted((Path(root) / "release" / assignment).glob("*.ipynb")):
        release_nb = nbformat.read(path, as_version=4)
        source_nb = nbformat.read(Path(root) / "source" / assignment / path.name, as_version=4)
        answers = scratch_course.model_answers(source_nb)
        ids = list(answers)
        chosen = {"ada": ids, "blank": [], "half": ids[: len(ids) // 2]}
        for student, answered in chosen.items():
            submissions[student][path.stem] = scratch_course.submission(
                release_nb, {i: answers[i] for i in answered})
    return submissions


DEMO_FOLDER = paths.ROOT / "demo-class"
MARK = ".made-by-course-demo"


def fresh_folder(folder):
    """An empty ``folder``; one the demo made before is replaced, anything else is refused."""
    folder = Path(folder)
    if folder.exists():
        if not (folder / MARK).exists():
            raise SystemExit(f"{folder} exists and was not made by the demo: give another "
                             "--folder, or move it away.")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARK).write_text("python -m course demo replaces this folder when it runs.\n")
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course demo", description=__doc__)
    parser.add_argument("--folder", default=str(DEMO_FOLDER),
                        help="where the demo class's course goes (default: demo-class/; a "
                             "folder of an earlier demo is replaced)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="parallel grading processes (default: the number of cores)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    assignments = build.assignments()
    folder = Path(args.folder)

    def demo_course():
        """The demo class's course, made while nbgrader generates the course's releases: its
        source/ copied, its own releases generated (which records them in its gradebook), and
        the three students' submissions."""
        course = scratch_course.new_course(
            fresh_folder(folder) / "course",
            files=[f for f in scratch_course.COURSE_FILES if f != "release"])
        build.build_releases(assignments, root=course)
        for assignment in assignments:
            for student, nbs in demo_class(course, assignment).items():
                scratch_course.submit(course, assignment, student, nbs)
        return course

    print("Building the course (a notebook is executed only when its source changed) and the "
          "demo class's course:", flush=True)
    course = build.build(log=lambda line: print("  " + line, flush=True),
                         beside_releases=demo_course)
    print(f"Built in {time.perf_counter() - start:.0f} s.\n", flush=True)
    print(f"Grading a class of three students in {folder}/ with {args.workers} workers:",
          flush=True)
    results = grade_class.grade_classes(course, assignments, args.workers,
                                       log=lambda line: print("  " + line, flush=True))
    for result in results:
        print(f"\n{result.assignment}:\n" + reports.grade_table(result.outcome), flush=True)
    print("\n" + reports.table(assignments[-1], reports.collect(results[-1].outcome)))
    plots = [result.plot for result in results]
    print()
    rows = scratch_course.read_grades(course / "grades.csv")
    print(f"nbgrader export wrote grades.csv with {len(rows)} rows:")
    for row in rows:
        score = f"{float(row['score']):g}" if row["score"] else "-"
        print(f"  {row['student_id']:6} {row['assignment']:22} {score}/"
              f"{float(row['max_score']):g}")
    print(f"\nDone in {time.perf_counter() - start:.0f} s. The demo class is in {folder}/:")
    print(f"  gradebook   {course / 'gradebook.db'}")
    print(f"  feedback    {course / 'feedback'}/<student>/<assignment>/*.html")
    print(f"  grades      {course / 'grades.csv'}")
    for plot in plots:
        print(f"  plot        {plot}")
    for result in results:
        print(f"  mistakes    {result.mistakes.html}")
    failed = sorted(f"{r.assignment}/{student}" for r in results for student in r.failed)
    if failed:
        print(f"nbgrader could not grade {', '.join(failed)}: see the messages above.")
        return 1
    return 0
