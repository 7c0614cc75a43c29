"""End to end with the real nbgrader commands: each submission loses exactly what it should."""

import re

import pytest

from course import paths, reports
from course.dev import scratch_course
from course.grading import outcome
from tests import answers
from tests.harness import notebook_name, secret_lines, source_notebooks, visible_text

EXPECTED_STUDENT_KINDS = ("model", "untouched", "wrong0", "alternative0", "tampering0",
                          "deleted-tests", "emptied-tests")


def test_every_kind_of_submission_was_graded(graded_class):
    graded = {(r.notebook, r.student) for r in graded_class.by_nbgrader() if r.scores}
    for _, text_path in source_notebooks():
        name = notebook_name(text_path)
        for kind in EXPECTED_STUDENT_KINDS:
            assert (name, f"{name}-{kind}") in graded, f"{name}-{kind} was not graded"


def test_each_submission_loses_exactly_its_wrong_exercises(graded_class):
    problems = []
    for record in graded_class.records:
        for grade_id, (score, max_score) in record.scores.items():
            if grade_id in record.losing and score >= max_score:
                problems.append(f"{record.student} ({record.reason}): full marks on "
                                f"{grade_id}, expected a loss")
            if grade_id not in record.losing and score < max_score:
                problems.append(f"{record.student} ({record.reason}): {score}/{max_score} on "
                                f"{grade_id}, expected full marks; the grader said: "
                                f"{graded_class.said(record, grade_id)[:600]}")
    assert not problems, "\n".join(problems)


def test_one_kernel_grades_as_nbgrader_does(graded_class):
    """The answers graded both ways (a group of wrong answers and of alternatives per notebook)
    get the same score on their exercise from nbgrader and from the one-kernel run."""
    both = [r for r in graded_class.in_one_kernel() if r.twin]
    assert {r.notebook for r in both} == set(graded_class.tests_of)
    for record in both:
        [(test_id, in_kernel)] = record.scores.items()
        assert record.twin.scores[test_id] == in_kernel, (
            f"{record.notebook}/{test_id} ({record.reason}): nbgrader gave "
            f"{record.twin.scores[test_id]}, one kernel {in_kernel}")


def _library_answers():
    """Every wrong answer and alternative of the libraries, one test id each:
    ``forward_reverse-our_jacfwd-wrong3``."""
    for _, text_path in source_notebooks():
        name = notebook_name(text_path)
        library = answers.for_notebook(name)
        for kind, group in (("wrong", library.WRONG), ("alternative", library.ALTERNATIVES)):
            for k, answer in enumerate(group):
                yield pytest.param(name, kind, k, id=f"{name}-{answer.grade_id}-{kind}{k}")


@pytest.mark.parametrize("notebook, kind, index", list(_library_answers()))
def test_each_wrong_answer_is_told_its_mistake(graded_class, notebook, kind, index):
    """The test cell of a wrong answer fails with the words its library entry expects
    (``Answer.says``), in whole sentences and the student's terms, under a mistake code of its
    own exercise; an alternative fails nothing."""
    record = graded_class.record(f"{notebook}-kernel-{kind}{index}")
    [(_, answer)] = record.answers
    message = record.message
    where = f"{answer.grade_id} ({answer.reason}): {message!r}"
    if kind != "wrong":
        assert not message, f"alternative {where}"
        return
    code, text = record.verdict.mistake, record.verdict.said
    assert message.endswith(f" [mistake: {code}]"), f"the code not shown to the student: {where}"
    assert code and code.startswith(f"{answer.grade_id}/") and not code.endswith("/unnamed"), (
        f"no named mistake code of {answer.grade_id}: {where}")
    assert answer.says and answer.says in text, f"expected {answer.says!r} in {where}"
    assert text.endswith((".", "?")), f"not a whole sentence: {where}"
    assert not re.search(r"\b(float|int|complex|bool|uint)\d*\[|\binputs \(", text), (
        f"JAX's notation instead of words: {where}")


def test_the_mistake_report_names_what_each_student_got_wrong(graded_class):
    """The report of each assignment graded by real nbgrader: each wrong answer graded there is
    reported for its student under the code its message carries in the one-kernel run (which
    test_each_wrong_answer_is_told_its_mistake checks); a tampering submission under a code for
    every exercise it attacked; the model and the alternatives under none. Written twice, the
    report is the same, and it quotes no test source."""
    problems = []
    for assignment, course in graded_class.courses.items():
        result = outcome.read(course, [assignment])[assignment]
        report = reports.write_report(course, result, log=lambda text: None)
        written = [path.read_bytes() for path in report]
        again = reports.write_report(course, outcome.read(course, [assignment])[assignment],
                                     log=lambda text: None)
        assert [path.read_bytes() for path in again] == written, f"{assignment}: not the same"
        page = report.html.read_text()
        assert "HIDDEN TESTS" not in page and "_Case(" not in page and "<script" not in page
        found = {(exercise.name, student): code
                 for exercise in reports.collect(result)
                 for code, pairs in exercise.mistakes.items() for student, _ in pairs}
        for record in graded_class.in_one_kernel():
            if record.twin is None or record.assignment != assignment:
                continue
            [(kind, answer)] = record.answers
            got = found.get((answer.grade_id, record.twin.student))
            if kind == "wrong":
                if record.verdict.mistake is None or got != record.verdict.mistake:
                    problems.append(f"{record.twin.student} {answer.grade_id} ({answer.reason}):"
                                    f" reported {got}, told {record.message!r}")
            elif got:
                problems.append(f"alternative {record.twin.student} {answer.grade_id}: "
                                f"reported {got}")
        for record in graded_class.by_nbgrader():
            if record.kind == "tampering" and record.assignment == assignment:
                problems += [f"tampering {record.student} {answer.grade_id}: not reported"
                             for _, answer in record.answers
                             if (answer.grade_id, record.student) not in found]
        problems += [f"the model reported: {key} {code}" for key, code in found.items()
                     if key[1].endswith("-model")]
    assert not problems, "\n".join(problems)


def test_grader_quality_report_is_perfect(graded_class):
    from tests import report

    rows = report.outcomes(graded_class)
    assert {exercise for _, exercise, *_ in rows} >= {
        exercise for tests_of in graded_class.tests_of.values() for exercise in tests_of}
    assert all(good for *_, good in rows), report.render(rows)


def test_untouched_release_scores_zero(graded_class):
    untouched = [r for r in graded_class.records if r.kind == "untouched"]
    assert len(untouched) == len(graded_class.tests_of)
    for record in untouched:
        assert record.scores and sum(s for s, _ in record.scores.values()) == 0


def test_export_writes_every_student(graded_class):
    rows = {}
    for course in graded_class.courses.values():
        rows.update({(r["student_id"], r["assignment"]): r
                     for r in scratch_course.export_grades(course)})
    submitted = {(r.student, r.assignment): r for r in graded_class.by_nbgrader()}
    assert set(rows) == set(submitted)
    for key, row in rows.items():
        cells = submitted[key].scores
        assert float(row["score"]) == pytest.approx(sum(score for score, _ in cells.values()))
        assert float(row["max_score"]) == pytest.approx(sum(m for _, m in cells.values()))


@pytest.fixture(scope="module")
def feedback_pages(graded_class):
    """The feedback page of every graded submission, made by ``nbgrader generate_feedback``."""
    pages = []
    for assignment, course in graded_class.courses.items():
        paths.nbgrader("generate_feedback", assignment, "--force", root=course)
        pages += sorted((course / "feedback").glob("*/*/*.html"))
    assert len(pages) == len(graded_class.by_nbgrader())
    return pages


def test_feedback_reads_offline_and_names_its_exercises(feedback_pages):
    for page in feedback_pages:
        text = page.read_text()
        # Math is MathML, written when the page is: nothing to fetch, no TeX left to typeset.
        assert "<script" not in text and "cdnjs" not in text, f"{page} loads a script"
        assert text.count("<math") > 20, f"{page}: its math is not MathML"
        prose = re.sub(r"<pre>.*?</pre>", "", text, flags=re.DOTALL)  # code and outputs
        assert "$" not in visible_text(prose), f"{page} shows TeX"
        assert "div.output_area pre { white-space: pre-wrap;" in text, f"{page}: unwrapped"
        toc = text[text.index('<div id="toc">'):text.index("</ol>")]
        entries = re.findall(r'<li><a href="#([^"]+)">([^<]*)</a>', toc)
        assert entries and all(re.fullmatch(r"Exercise \d+: .+", label) for _, label in entries), (
            f"{page}: table of contents {entries}")


def test_feedback_never_shows_hidden_tests(feedback_pages):
    hidden = secret_lines("HIDDEN TESTS")
    assert hidden, "no hidden tests found in source/"
    for page in feedback_pages:
        text = visible_text(page.read_text())
        assert "adcheck.check_" in text, f"{page}: visible tests missing (is the scan blind?)"
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{page} shows hidden tests: {leaked}"
        # Tracebacks of the student's own cells may stay; none may pass through the grader.
        assert "adcheck.py" not in text, f"{page}: a test cell's traceback reached the feedback"
