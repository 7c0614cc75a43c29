"""course/reports.py: a graded cell's failure read as a mistake code and message, and the
report's order and text."""

from nbformat.v4 import new_code_cell, new_output

from course import reports


def _failed(ename, evalue):
    return new_code_cell("adcheck.check_f(f)", outputs=[
        new_output("error", ename=ename, evalue=evalue, traceback=[])])


def test_a_named_mistake_is_read_from_the_end_of_the_message():
    cell = _failed("AssertionError", "f(3) is twice the right value. [mistake: f/doubled]")
    assert reports._failure(cell) == ("f/doubled", "f(3) is twice the right value.")


def test_an_assertion_without_a_code_is_unnamed_and_a_crash_is_named_by_its_kind():
    assert reports._failure(_failed("AssertionError", "wrong")) == ("unnamed", "wrong")
    assert reports._failure(_failed("NameError", "name 'f' is not defined")) == (
        "error:NameError", "name 'f' is not defined")


def test_a_failed_cell_without_an_error_output_is_unnamed():
    code, message = reports._failure(new_code_cell("x", outputs=[]))
    assert code == "unnamed" and "no error shown" in message


def test_only_a_final_code_counts():
    text = "the code [mistake: f/a] is quoted mid-message"
    assert reports._failure(_failed("AssertionError", text)) == ("unnamed", text)


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
