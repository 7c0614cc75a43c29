"""The main job: build the course, then grade a small demo class and print its grade table."""

import tempfile
import time
from pathlib import Path

import nbformat

from . import build, grading


def demo_class(root, assignment):
    """A model student, a student who submitted the untouched release, and two in between."""
    submissions = {name: {} for name in ("ada", "blank", "half", "most")}
    for path in sorted((Path(root) / "release" / assignment).glob("*.ipynb")):
        release_nb = nbformat.read(path, as_version=4)
        source_nb = nbformat.read(Path(root) / "source" / assignment / path.name, as_version=4)
        answers = grading.model_answers(source_nb)
        ids = list(answers)
        chosen = {"ada": ids, "blank": [], "half": ids[: len(ids) // 2], "most": ids[:-1]}
        for student, answered in chosen.items():
            submissions[student][path.stem] = grading.submission(
                release_nb, {i: answers[i] for i in answered})
    return submissions


def grade_table(scores):
    ids = sorted({grade_id for cells in scores.values() for grade_id in cells})
    rows = [["student", *ids, "total"]]
    for student in sorted(scores):
        cells = scores[student]
        total = sum(cells[i][0] for i in ids)
        rows.append([student, *(f"{cells[i][0]:g}/{cells[i][1]:g}" for i in ids),
                     f"{total:g}/{sum(cells[i][1] for i in ids):g}"])
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows)


def main():
    start = time.perf_counter()
    build.build()
    print(f"Built the course in {time.perf_counter() - start:.0f} s.\n")
    with tempfile.TemporaryDirectory(prefix="demo-class-") as folder:
        course = grading.new_course(Path(folder) / "course")
        for assignment in build.assignments():
            for student, nbs in demo_class(build.ROOT, assignment).items():
                grading.submit(course, assignment, student, nbs)
            start = time.perf_counter()
            grading.autograde(course, assignment)
            seconds = time.perf_counter() - start
            scores = grading.cell_scores(course, assignment)
            print(f"{assignment}: autograded {len(scores)} submissions in {seconds:.0f} s "
                  "(one nbgrader autograde process)")
            print(grade_table(scores) + "\n")
            build.nbgrader("generate_feedback", assignment, "--force", root=course)
        rows = grading.export_grades(course)
        print(f"nbgrader export wrote grades.csv with {len(rows)} rows:")
        for row in rows:
            print(f"  {row['student_id']:6} {row['assignment']:22} "
                  f"{float(row['score']):g}/{float(row['max_score']):g}")
