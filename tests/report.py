"""The grader-quality report: per exercise, the wrong answers caught and the alternatives kept.

Every answer of the libraries in ``tests/answers/`` is graded with the real ``nbgrader
autograde``, as the test suite does. A wrong answer (or a tampering attempt) is caught when it
loses points on its own exercise; an alternative is accepted when it keeps full marks.

    python -m tests.report [NOTEBOOK ...]     e.g. python -m tests.report implicit

Exit status 1 unless every wrong answer is caught and every alternative accepted.
"""

import collections
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import (  # noqa: E402
    grade_answer_libraries, notebook_name, source_notebooks)


def outcomes(graded):
    """(notebook, exercise, kind, reason, good) for every library answer: ``good`` is True
    when a wrong answer or tampering lost points, or an alternative kept full marks."""
    rows = []
    for notebook, kind, student, answer in graded.answers:
        score, max_score = graded.scores[student][graded.tests_of[notebook][answer.grade_id]]
        good = score == max_score if kind == "alternative" else score < max_score
        rows.append((notebook, answer.grade_id, kind, answer.reason, good))
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
    return (f"graded {len(graded.scores)} submissions of {len(graded.courses)} assignments with "
            f"nbgrader autograde in {graded.seconds:.0f} s (one process per assignment, "
            "in parallel)")


def main(argv):
    known = {notebook_name(path) for _, path in source_notebooks()}
    if set(argv) - known:
        print(f"unknown notebook(s): {', '.join(sorted(set(argv) - known))}; "
              f"choose from {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="grader-report-") as folder:
        graded = grade_answer_libraries(Path(folder), set(argv) or None)
        rows = outcomes(graded)
    print(render(rows))
    print(timing(graded))
    return 0 if rows and all(good for *_, good in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
