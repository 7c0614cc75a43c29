"""course/grading/outcome.py and course/reports.py: a graded cell's failure read as a mistake
code and words (the judge's verdict, as data), and the report's order and text."""

from nbformat.v4 import new_code_cell, new_output

from course import reports
from course.grading import outcome
from course.grading.outcome import ClassOutcome, Mark, Submission


def _failed(ename, evalue, verdict=None):
    cell = new_code_cell("adcheck.check_f(f)", outputs=[
        new_output("error", ename=ename, evalue=evalue, traceback=[])])
    if verdict is not None:
        cell.metadata["verdict"] = verdict
    return cell


def test_the_mistake_is_the_judges_verdict_not_the_messages_text():
    cell = _failed("AssertionError", "f(3) is twice the right value. [mistake: f/doubled]",
                   {"passed": False, "mistake": "f/doubled",
                    "said": "f(3) is twice the right value."})
    assert outcome._failure(cell) == ("f/doubled", "f(3) is twice the right value.")


def test_a_code_in_the_text_alone_names_nothing():
    text = "f(3) is twice the right value. [mistake: f/doubled]"
    assert outcome._failure(_failed("AssertionError", text)) == ("unnamed", text)


def test_without_a_verdict_an_assertion_is_unnamed_and_a_crash_is_named_by_its_kind():
    assert outcome._failure(_failed("AssertionError", "wrong")) == ("unnamed", "wrong")
    assert outcome._failure(_failed("NameError", "name 'f' is not defined")) == (
        "error:NameError", "name 'f' is not defined")


def test_a_failed_cell_without_an_error_output_is_unnamed():
    code, message = outcome._failure(new_code_cell("x", outputs=[]))
    assert code == "unnamed" and "no error shown" in message


def _class():
    def marks(f, g):
        return {"f_tests": f, "g_tests": g}

    full, doubled = Mark(1, 1), Mark(0, 1, "f/doubled", "f(3) is twice the right value.")
    return ClassOutcome("01_x", ["f_tests", "g_tests"], ["ann", "bob", "cyd", "dan"], {
        "ann": Submission("ann", 2, 2, marks(full, full)),
        "bob": Submission("bob", 1, 2, marks(doubled, full), refused=2),
        "dan": Submission("dan", 0.5, 2, marks(doubled, Mark(0.5, 1, "g/sign", "sign")))})


def test_the_report_counts_full_marks_and_mistakes_per_exercise_in_notebook_order():
    f, g = reports.collect(_class())
    assert (f.name, f.submissions, f.full_marks) == ("f", 3, 1)
    assert f.mistakes == {"f/doubled": [("bob", "f(3) is twice the right value."),
                                        ("dan", "f(3) is twice the right value.")]}
    assert (g.name, g.full_marks, list(g.mistakes)) == ("g", 2, ["g/sign"])


def test_the_grade_table_shows_every_student_absent_ones_and_refusals():
    assert reports.grade_table(_class()).splitlines() == [
        "student  f    g      total",
        "ann      1/1  1/1    2/2",
        "bob      0/1  1/1    1/2    (2 refused: see the grading notes)",
        "cyd      -    -      -",
        "dan      0/1  0.5/1  0.5/2"]


def test_the_report_lists_mistakes_most_frequent_first():
    exercise = reports.ExerciseMistakes("f", submissions=4, full_marks=1, mistakes={
        "f/b": [("s1", "m")], "f/a": [("s2", "m")], "f/c": [("s3", "m"), ("s4", "m")]})
    assert exercise.codes() == ["f/c", "f/a", "f/b"]
    assert reports.table("01_x", [exercise]).splitlines() == [
        "01_x: what the class got wrong",
        "  f: 1/4 full marks",
        "      2  f/c  (s3, s4)",
        "      1  f/a  (s2)",
        "      1  f/b  (s1)"]
