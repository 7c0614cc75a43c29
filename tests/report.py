"""The grader-quality report: per exercise, the wrong answers caught and the alternatives kept.

Every answer of the libraries in ``tests/answers/`` is graded as the test suite grades it: the
tampering ones and a representative set with the real ``nbgrader autograde``, every wrong
answer and alternative in one kernel per notebook (tests/kernel_grading.py). A wrong answer
(or a tampering attempt) is caught when it loses points on its own exercise; an alternative is
accepted when it keeps full marks.

    python -m tests.report [NOTEBOOK ...] [hostile] [--no-sandbox]
                                    e.g. python -m tests.report implicit

With no name, or with ``hostile``, it also grades the hostile submissions of
tests/answers/hostile.py with ``python -m course grade`` beside honest students, and lists each
as ``blocked`` or ``ESCAPED``; ``--no-sandbox`` grades them with grading kernels outside the
sandbox, to see what the sandbox stops (some attacks then harm the temporary course).

Exit status 1 unless every wrong answer is caught, every alternative accepted and every hostile
submission blocked.
"""

import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

from tests.harness import ROOT, grade_answer_libraries, notebook_name, source_notebooks


def outcomes(graded):
    """(notebook, exercise, kind, reason, good) for every library answer: ``good`` is True
    when a wrong answer or tampering lost points, or an alternative kept full marks."""
    rows = []
    for record in graded.records:
        if record.twin is not None:  # reported once, as graded by nbgrader
            continue
        for kind, answer in record.answers:
            score, max_score = record.scores[graded.tests_of[record.notebook][answer.grade_id]]
            good = score == max_score if kind == "alternative" else score < max_score
            rows.append((record.notebook, answer.grade_id, kind, answer.reason, good))
    return rows


def render(rows):
    lines, totals = [], collections.Counter()
    by_exercise = collections.defaultdict(list)
    for notebook, exercise, kind, reason, good in rows:
        by_exercise[notebook, exercise].append((kind, reason, good))
    for (notebook, exercise), answers in by_exercise.items():
        counts = collections.Counter((kind, good) for kind, _, good in answers)
        caught = counts["wrong", True] + counts["tampering", True]
        wrong = caught + counts["wrong", False] + counts["tampering", False]
        accepted, alternatives = counts["alternative", True], sum(
            counts["alternative", g] for g in (True, False))
        totals.update(caught=caught, wrong=wrong, accepted=accepted, alternatives=alternatives)
        lines.append(f"{notebook}/{exercise}: {caught}/{wrong} wrong answers caught, "
                     f"{accepted}/{alternatives} alternatives accepted")
        for kind, reason, good in answers:
            verdict = {("alternative", True): "accepted", ("alternative", False): "REJECTED",
                       }.get((kind, good), "caught" if good else "MISSED")
            lines.append(f"    {verdict:>8}  {kind:<11} {reason}")
    lines.append(f"total: {totals['caught']}/{totals['wrong']} wrong answers caught "
                 f"({100 * totals['caught'] / max(totals['wrong'], 1):.0f}%), "
                 f"{totals['accepted']}/{totals['alternatives']} alternatives accepted "
                 f"({100 * totals['accepted'] / max(totals['alternatives'], 1):.0f}%)")
    return "\n".join(lines)


def timing(graded):
    return (f"graded {len(graded.by_nbgrader())} submissions of {len(graded.courses)} "
            f"assignments with nbgrader autograde (one process per assignment) and "
            f"{len(graded.in_one_kernel())} "
            f"answers in one kernel per notebook, in parallel, in {graded.seconds:.0f} s")


def hostile_rows(folder, sandboxed=True):
    from tests import hostile_class
    from tests.tiny_assignment import make_tiny_course

    tiny = make_tiny_course(folder / "tiny", ROOT)
    stand_in = None
    if not sandboxed:  # then the kill-grader attack gets a process of its own to kill
        with open(tiny / "nbgrader_config.py", "a") as config:
            config.write('\nc.ExecuteSurvivingCrashes.sandbox = "none"\n')
        stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)"])
    # the attacks aim at the grader's folders of programs and oracle values: this run's own,
    # never the machine's (an unsandboxed kernel reaches them)
    machine_folders = {"ADCOURSE_GRADING_PROGRAMS": str(folder / "programs"),
                       "ADCOURSE_ORACLE_VALUES": str(folder / "oracle-values")}
    try:
        with mock.patch.dict(os.environ, machine_folders):
            graded = hostile_class.grade(tiny, folder, "course grade",
                                         stand_in.pid if stand_in else None)
    finally:
        if stand_in:
            stand_in.kill()
    return hostile_class.outcomes(graded), hostile_class.render


def main(argv):
    known = {notebook_name(path) for _, path in source_notebooks()}
    sandboxed = "--no-sandbox" not in argv
    names = set(argv) - {"--no-sandbox", "hostile"}
    if names - known:
        print(f"unknown notebook(s): {', '.join(sorted(names - known))}; "
              f"choose from {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    good = True
    with tempfile.TemporaryDirectory(prefix="grader-report-") as folder:
        if names or "hostile" not in argv:
            graded = grade_answer_libraries(Path(folder) / "class", names or None)
            rows = outcomes(graded)
            print(render(rows))
            print(timing(graded))
            good = bool(rows) and all(ok for *_, ok in rows)
        if not names:
            rows, render_hostile = hostile_rows(Path(folder), sandboxed)
            print(render_hostile("course grade" + ("" if sandboxed else " WITHOUT the sandbox"),
                                 rows))
            good = good and all(blocked for *_, blocked in rows)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
