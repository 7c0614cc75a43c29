"""What did the class get wrong? The named mistakes of one graded assignment, per exercise.

    python -m course report ASSIGNMENT [ASSIGNMENT ...]

A failing check ends its message with the stable code of the mistake it names, such as
``[mistake: our_jacfwd/transposed]`` (see ``Exercise`` in course/checks/exercise.py), and
nbgrader keeps that message in every autograded notebook. This reads the gradebook's marks and
those messages and writes, per exercise, how many students got full marks and which mistakes the
others made, with their names: a table on the terminal, ``reports/<assignment>-mistakes.csv``, a
plot ``reports/<assignment>-mistakes.png`` and a page ``reports/<assignment>-mistakes.html``
that opens without a network. A failure whose message names no mistake is reported as
``<exercise>/unnamed`` (a check's own assertion or a student's), and one that is not an
assertion as ``<exercise>/error:<kind>`` (a crash, a timeout, a name the notebook lost). Only
the checks' messages are read: no test source, hidden or not, reaches a report.

``python -m course grade`` writes the report of each assignment it grades.
"""

import argparse
import base64
import collections
import csv
import dataclasses
import html
import io
import re
import typing
from pathlib import Path

import nbformat
from nbgrader import utils as nbgrader_utils

from course import paths
from course.grading import submission_files
from course.paths import db_url

MISTAKE = re.compile(r"\s*\[mistake: ([\w./:-]+)\]\s*$")


@dataclasses.dataclass
class ExerciseMistakes:
    """One exercise's line of the report."""

    name: str
    submissions: int = 0
    full_marks: int = 0
    mistakes: dict = dataclasses.field(default_factory=dict)  # code -> [(student, message)]

    def codes(self):
        """The codes, most frequent first (then by name): the report's order."""
        return sorted(self.mistakes, key=lambda code: (-len(self.mistakes[code]), code))


def _failure(cell):
    """``(code or None, message)`` of a graded cell's error output, or ``(None, "")``."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            found = MISTAKE.search(output.evalue)
            message = MISTAKE.sub("", output.evalue).strip()
            if found:
                return found.group(1), message
            return ("unnamed" if output.ename == "AssertionError"
                    else f"error:{output.ename}"), message
    return "unnamed", "no error shown (output on stderr, or the cell was emptied)"


def collect(course, assignment):
    """``[ExerciseMistakes]`` of ``assignment`` in notebook order, from the gradebook of
    ``course`` and the notebooks in its autograded/ folder."""
    from nbgrader.api import Gradebook

    course = Path(course)
    exercises = {}
    with Gradebook(db_url(course)) as gradebook:
        for submission in sorted(gradebook.assignment_submissions(assignment),
                                 key=lambda s: s.student.id):
            student = submission.student.id
            for notebook in submission.notebooks:
                path = course / "autograded" / student / assignment / f"{notebook.name}.ipynb"
                cells = {}
                if path.exists():
                    cells = {cell.metadata["nbgrader"]["grade_id"]: cell
                             for cell in nbformat.read(path, as_version=4).cells
                             if nbgrader_utils.is_grade(cell)}
                for grade in sorted(notebook.grades, key=lambda g: g.name):
                    name = grade.name.removesuffix("_tests")
                    exercise = exercises.setdefault(grade.name, ExerciseMistakes(name))
                    exercise.submissions += 1
                    if grade.score >= grade.max_score:
                        exercise.full_marks += 1
                        continue
                    cell = cells.get(grade.name)
                    code, message = _failure(cell) if cell else ("unnamed", "no graded notebook")
                    if "/" not in code:
                        code = f"{name}/{code}"
                    exercise.mistakes.setdefault(code, []).append((student, message))
    return [exercises[name] for name in paths.graded_cells(course, assignment)
            if name in exercises]


def table(assignment, exercises):
    """The report as text: per exercise, full marks, then each mistake with its students."""
    lines = [f"{assignment}: what the class got wrong"]
    for exercise in exercises:
        lines.append(f"  {exercise.name}: {exercise.full_marks}/{exercise.submissions} full "
                     "marks")
        for code in exercise.codes():
            students = sorted({student for student, _ in exercise.mistakes[code]})
            lines.append(f"    {len(exercise.mistakes[code]):3}  {code}  ({', '.join(students)})")
    return "\n".join(lines)


def figure(assignment, exercises):
    """Per exercise, a bar of full marks and stacked bars of its named mistakes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = [exercise.name for exercise in exercises]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(names) + 2.5))
    ax.barh(names, [e.full_marks for e in exercises], color="tab:green", label="full marks")
    left = [e.full_marks for e in exercises]
    colors = [c for k, c in enumerate(plt.get_cmap("tab20").colors) if k not in (4, 5)]  # no
    # green: that is full marks
    codes = sorted({code for e in exercises for code in e.mistakes},
                   key=lambda code: code.split("/", 1)[1])
    kinds = list(dict.fromkeys(code.split("/", 1)[1] for code in codes))
    shown = set()
    for exercise_index, exercise in enumerate(exercises):
        for code in exercise.codes():
            kind = code.split("/", 1)[1]
            count = len(exercise.mistakes[code])
            ax.barh(exercise_index, count, left=left[exercise_index],
                    color=colors[kinds.index(kind) % len(colors)], edgecolor="white",
                    label=None if kind in shown else kind)
            shown.add(kind)
            if count:
                ax.text(left[exercise_index] + count / 2, exercise_index, kind, ha="center",
                        va="center", fontsize=7, clip_on=True)
            left[exercise_index] += count
    ax.invert_yaxis()
    ax.set_xlabel("students")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(f"{assignment}: full marks and named mistakes per exercise")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / (len(names) + 2) - 0.08),
              ncol=4, fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


class MistakeReport(typing.NamedTuple):
    """Where an assignment's mistake report was written."""

    csv: Path
    png: Path
    html: Path


def write_report(course, assignment, log=print):
    """Write the CSV, the plot and the page of ``assignment`` into ``course``/reports/, print
    the table through ``log``, and return where (a :class:`MistakeReport`)."""
    import matplotlib.pyplot as plt

    course = Path(course)
    exercises = collect(course, assignment)
    folder = course / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{assignment}-mistakes"
    with open(f"{stem}.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["exercise", "submissions", "full_marks", "mistake", "students",
                         "count", "first_message"])
        for exercise in exercises:
            writer.writerow([exercise.name, exercise.submissions, exercise.full_marks, "", "",
                             "", ""])
            for code in exercise.codes():
                found = exercise.mistakes[code]
                writer.writerow([exercise.name, exercise.submissions, exercise.full_marks, code,
                                 " ".join(sorted({s for s, _ in found})), len(found),
                                 found[0][1]])
    fig = figure(assignment, exercises)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    Path(f"{stem}.png").write_bytes(png.getvalue())
    Path(f"{stem}.html").write_text(_page(assignment, exercises, png.getvalue()))
    log(table(assignment, exercises))
    return MistakeReport(*(Path(f"{stem}.{suffix}") for suffix in ("csv", "png", "html")))


def _page(assignment, exercises, png):
    rows = []
    for exercise in exercises:
        rows.append(f"<tr class='exercise'><th>{html.escape(exercise.name)}</th><td colspan=3>"
                    f"{exercise.full_marks} of {exercise.submissions} with full marks</td></tr>")
        for code in exercise.codes():
            found = exercise.mistakes[code]
            students = ", ".join(sorted({s for s, _ in found}))
            rows.append(f"<tr><td></td><td><code>{html.escape(code)}</code></td>"
                        f"<td>{len(found)}: {html.escape(students)}</td>"
                        f"<td>{html.escape(found[0][1])}</td></tr>")
    image = base64.b64encode(png).decode()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(assignment)}: mistakes</title>
<style>body {{ font-family: sans-serif; max-width: 70em; margin: 2em auto; }}
td, th {{ padding: 0.2em 0.6em; vertical-align: top; text-align: left; }}
tr.exercise {{ background: #eee; }} img {{ max-width: 100%; }}</style></head>
<body><h1>{html.escape(assignment)}: what the class got wrong</h1>
<img alt="full marks and named mistakes per exercise" src="data:image/png;base64,{image}">
<table><tr><th>exercise</th><th>mistake</th><th>students</th><th>what the first was told</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""


def grade_table(course, assignment):
    """The marks of every student of the gradebook per exercise, in notebook order, as text:
    ``-`` where a student submitted nothing; after the total, how many files of a submission
    were refused (links, FIFOs, devices, ...: course/grading/submission_files.py)."""
    from nbgrader.api import Gradebook, MissingEntry

    order = paths.graded_cells(course, assignment)
    rows = [["student", *(name.removesuffix("_tests") for name in order), "total"]]
    with Gradebook(db_url(course)) as gradebook:
        for student in sorted(gradebook.students, key=lambda student: student.id):
            try:
                submission = gradebook.find_submission(assignment, student.id)
            except MissingEntry:
                rows.append([student.id, *("-" for _ in order), "-"])
                continue
            marks = {grade.name: grade for nb in submission.notebooks for grade in nb.grades}
            refused = submission_files.refused_in(
                Path(course) / "submitted" / student.id / assignment)
            rows.append([student.id,
                         *(f"{marks[name].score:g}/{marks[name].max_score:g}" for name in order),
                         f"{submission.score:g}/{submission.max_score:g}",
                         f"({len(refused)} refused: see the grading notes)" if refused else ""])
    rows[0].append("")
    for row in rows:
        row += [""] * (len(rows[0]) - len(row))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
                     for row in rows)


def score_figure(course, assignment):
    """A figure of, per exercise (in notebook order), how many students scored zero, partial and
    full marks, and of the histogram of total scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
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
    order = [name for name in paths.graded_cells(course, assignment) if name in counts]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(order) + 2.2),
                                         gridspec_kw={"width_ratios": [2, 1]})
    start = np.zeros(len(order))
    for outcome, color in (("full", "tab:green"), ("partial", "tab:orange"), ("zero", "tab:red")):
        values = np.array([counts[e][outcome] for e in order])
        left.barh([e.removesuffix("_tests") for e in order], values, left=start, color=color,
                  label=f"{outcome} marks")
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
    for axis in (left.xaxis, right.yaxis):  # counts of students: whole numbers only
        axis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    right.set_title(f"{len(totals)} submissions")
    figure.tight_layout()
    return figure


def score_distribution(course, assignment, path):
    """Save :func:`score_figure` as ``path``."""
    import matplotlib.pyplot as plt

    figure = score_figure(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="+", metavar="assignment")
    parser.add_argument("--course", default=str(paths.ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for assignment in args.assignments:
        written = write_report(args.course, assignment)
        print("  " + "  ".join(str(p) for p in written) + "\n")
    return 0
