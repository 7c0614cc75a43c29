"""The README's instructor commands, run as written, on the tiny assignment.

The whole-cycle block of the README (release, fetch and submit as two students, collect,
autograde, feedback, export, fetch feedback) runs in a course of the tiny assignment, with the
assignment's name and the virtualenv's path put in; it must contain every command of the
instructor table. Then ``python -m course grade`` prints the grade table, a student who
submitted nothing gets empty scores, a submission through the exchange is collected and
graded, and ``release_feedback`` names a hand-placed submission instead of crashing.
"""

import csv
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from course import paths, reports
from course.grading import outcome
from tests.harness import ROOT
from tests.tiny_assignment import ASSIGNMENT, WRONG_SQUARE, answered, make_tiny_course, submit

README = (ROOT / "README.md").read_text()
VENV_BIN = re.compile(r"(\$course/)?\.venv/bin/")


def cycle_block():
    after = README[README.index("### The whole cycle on one machine"):]
    return re.search(r"```bash\n(.*?)```", after, re.DOTALL).group(1)


def table_commands():
    """The first command of each row of the instructor table, as `.venv/bin/...` text."""
    table = README[README.index("| step | command |"):]
    table = table[:table.index("\n\n")]
    commands = []
    for row in table.splitlines()[2:]:
        spans = re.findall(r"`([^`]+)`", row.split("|")[2])
        commands += [span for span in spans[:1] if span.startswith(".venv/bin/")]
    return commands


def run(command, cwd):
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = make_tiny_course(tmp_path_factory.mktemp("readme") / "course", ROOT)
    source = course / "source" / ASSIGNMENT
    jupytext.write(nbformat.read(source / "tiny.ipynb", as_version=4), source / "tiny.pct.py",
                   fmt="py:percent")
    return course


def test_the_table_commands_are_all_in_the_cycle():
    block = cycle_block()
    commands = table_commands()
    assert len(commands) == 6, commands  # build, release, collect, autograde, feedback, export
    for command in commands:
        assert command.replace("<assignment>", "$a") in block, command
    assert "a=01_forward_reverse" in block.splitlines()[0]
    ignored = subprocess.run(["git", "check-ignore", "class/ada", "exchange/x"], cwd=ROOT,
                             capture_output=True, text=True)
    assert ignored.stdout.split() == ["class/ada", "exchange/x"]


def test_the_whole_cycle_runs_as_written(course):
    block = cycle_block().replace("a=01_forward_reverse", f"a={ASSIGNMENT}", 1)
    block = VENV_BIN.sub(str(Path(sys.executable).parent) + "/", block)
    result = run(block, course)
    assert result.returncode == 0, result.stdout + result.stderr

    with open(course / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["ada", "bob"]
    assert all(float(row["score"]) == 0 and row["max_score"] == "3.0" for row in rows.values())
    fetched = list((course / "class" / "ada" / ASSIGNMENT / "feedback").glob("*/tiny.html"))
    assert len(fetched) == 1, fetched  # ada's own feedback, not bob's
    assert not (course / "class" / "bob" / ASSIGNMENT / "feedback").exists()
    with open(course / "reports" / f"{ASSIGNMENT}-mistakes.csv", newline="") as handle:
        reported = [row for row in csv.DictReader(handle) if row["mistake"]]
    assert {row["exercise"] for row in reported} == {"double", "square", "halve"}
    assert all(row["students"] == "ada bob" for row in reported), reported


def test_grade_prints_the_table_and_leaves_unsubmitted_empty(course):
    # A student who submitted nothing, one whose submission was put in submitted/ by hand, and
    # one who submits a wrong answer through the exchange, collected by course grade.
    paths.nbgrader("db", "student", "add", "cyd", root=course)
    submit(course, "dan", {"tiny.ipynb": nbformat.read(
        course / "release" / ASSIGNMENT / "tiny.ipynb", as_version=4)})
    eve = course / "class" / "eve"
    eve.mkdir(parents=True)
    as_eve = ("--course=jax-autodiff", "--student=eve", f"--Exchange.root={course / 'exchange'}",
              f"--Exchange.cache={eve / '.cache'}")
    paths.nbgrader("fetch_assignment", ASSIGNMENT, *as_eve, root=eve)
    nbformat.write(answered(course, halve=WRONG_SQUARE.replace("square", "halve")),
                   eve / ASSIGNMENT / "tiny.ipynb")
    paths.nbgrader("submit", ASSIGNMENT, *as_eve, root=eve)
    python = Path(sys.executable)
    result = subprocess.run([str(python), "-m", "course", "grade", ASSIGNMENT, "--collect"],
                            cwd=course, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr
    table = result.stdout[result.stdout.index(f"{ASSIGNMENT}:\nstudent"):].splitlines()[1:7]
    assert [line.split() for line in table] == [
        ["student", "double", "square", "halve", "total"],
        ["ada", "0/1", "0/1", "0/1", "0/3"],
        ["bob", "0/1", "0/1", "0/1", "0/3"],
        ["cyd", "-", "-", "-", "-"],
        ["dan", "0/1", "0/1", "0/1", "0/3"],
        ["eve", "1/1", "1/1", "0/1", "2/3"]]
    assert (course / "feedback" / "eve" / ASSIGNMENT / "tiny.html").exists()
    report = result.stdout[result.stdout.index(f"{ASSIGNMENT}: what the class got wrong"):]
    halve = report[report.index("  halve: 0/4 full marks"):].splitlines()
    assert any("eve" in line for line in halve[1:3]), report
    # The same class graded again: the same report, byte for byte.
    written = sorted((course / "reports").glob(f"{ASSIGNMENT}-mistakes.*"))
    first = [path.read_bytes() for path in written]
    again = subprocess.run([str(python), "-m", "course", "grade", ASSIGNMENT], cwd=course,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert [path.read_bytes() for path in written] == first, "graded twice, reported otherwise"
    with open(course / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert (rows["cyd"]["raw_score"], rows["cyd"]["score"]) == ("", "")
    assert rows["dan"]["score"] == "0.0"

    # Counts of students, 0 to 4 here, are whole numbers on the plot's axes.
    figure = reports.score_figure(outcome.read(course, [ASSIGNMENT])[ASSIGNMENT])
    per_exercise, totals = figure.axes
    for ticks in (per_exercise.get_xticks(), totals.get_yticks()):
        assert len(ticks) > 2 and all(float(t).is_integer() for t in ticks), ticks

    released = paths.nbgrader("release_feedback", ASSIGNMENT, root=course, check=False)
    assert released.returncode == 0, released.stderr
    assert re.search(r"Not released: dan's feedback in \S+/feedback/dan/00_tiny\. .* has no "
                     r"submission_secret\.txt", released.stderr), released.stderr
    assert "Releasing feedback for student 'ada'" in released.stderr
