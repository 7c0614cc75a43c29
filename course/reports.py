"""What did the class get wrong? The grade table, the score plot, and the named mistakes of one
graded assignment, per exercise, all rendered from its outcome (course/grading/outcome.py).

    python -m course report ASSIGNMENT [ASSIGNMENT ...]

A failing check names its mistake with a stable code, such as ``our_jacfwd/transposed`` (see
``Exercise`` in course/checks/exercise.py), and the judge keeps it, as data, in every autograded
notebook. Per exercise, the report gives how many students got full marks and which mistakes the
others made, with their names: a table on the terminal, ``reports/<assignment>-mistakes.csv``, a
plot ``reports/<assignment>-mistakes.png`` and a page ``reports/<assignment>-mistakes.html``
that opens without a network. A failure the checks did not name is reported as
``<exercise>/unnamed``, and one that is not an assertion as ``<exercise>/error:<kind>`` (a
crash, a timeout, a name the notebook lost). Only what the checks told the students is shown:
no test source, hidden or not, reaches a report.

``python -m course grade`` writes the report of each assignment it grades.
"""

import argparse
import base64
import collections
import csv
import dataclasses
import html
import io
import typing
from pathlib import Path

from course import paths
from course.grading import outcome
from course.grading.outcome import exercise_name


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


def collect(result):
    """``[ExerciseMistakes]`` of a :class:`~course.grading.outcome.ClassOutcome`, in notebook
    order."""
    exercises = {}
    for student, submission in result.submissions.items():
        for grade_id, mark in submission.marks.items():
            exercise = exercises.setdefault(grade_id, ExerciseMistakes(exercise_name(grade_id)))
            exercise.submissions += 1
            if mark.full:
                exercise.full_marks += 1
            else:
                exercise.mistakes.setdefault(mark.mistake, []).append((student, mark.said))
    return [exercises[name] for name in result.exercises if name in exercises]


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


def write_report(course, result, log=print):
    """Write the CSV, the plot and the page of the outcome ``result`` into ``course``/reports/,
    print the table through ``log``, and return where (a :class:`MistakeReport`)."""
    import matplotlib.pyplot as plt

    course, assignment = Path(course), result.assignment
    exercises = collect(result)
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


def grade_table(result):
    """The marks of every student of the gradebook per exercise, in notebook order, as text:
    ``-`` where a student submitted nothing; after the total, how many files of a submission
    were refused (links, FIFOs, devices, ...: course/grading/submission_files.py)."""
    order = result.exercises
    rows = [["student", *(exercise_name(name) for name in order), "total"]]
    for student in result.students:
        submission = result.submissions.get(student)
        if submission is None:
            rows.append([student, *("-" for _ in order), "-"])
            continue
        marks = submission.marks
        rows.append([student,
                     *(f"{marks[name].score:g}/{marks[name].max_score:g}" for name in order),
                     f"{submission.score:g}/{submission.max_score:g}",
                     f"({submission.refused} refused: see the grading notes)"
                     if submission.refused else ""])
    rows[0].append("")
    for row in rows:
        row += [""] * (len(rows[0]) - len(row))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
                     for row in rows)


def score_figure(result):
    """A figure of, per exercise (in notebook order), how many students scored zero, partial and
    full marks, and of the histogram of total scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    assignment = result.assignment
    counts = collections.defaultdict(collections.Counter)
    totals, max_total = [], 0
    for submission in result.submissions.values():
        totals.append(submission.score)
        max_total = submission.max_score
        for name, mark in submission.marks.items():
            counts[name]["full" if mark.full else "zero" if mark.score == 0 else "partial"] += 1
    order = [name for name in result.exercises if name in counts]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(order) + 2.2),
                                         gridspec_kw={"width_ratios": [2, 1]})
    start = np.zeros(len(order))
    for marks, color in (("full", "tab:green"), ("partial", "tab:orange"), ("zero", "tab:red")):
        values = np.array([counts[e][marks] for e in order])
        left.barh([exercise_name(e) for e in order], values, left=start, color=color,
                  label=f"{marks} marks")
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


def score_distribution(result, path):
    """Save :func:`score_figure` as ``path``."""
    import matplotlib.pyplot as plt

    figure = score_figure(result)
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
    outcomes = outcome.read(args.course, args.assignments)
    for assignment in args.assignments:
        written = write_report(args.course, outcomes[assignment])
        print("  " + "  ".join(str(p) for p in written) + "\n")
    return 0
