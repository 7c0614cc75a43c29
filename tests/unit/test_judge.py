"""The judge and the evidence it decides on, without a kernel: the tiny assignment's checks run
in probe mode in this process (as a grading kernel runs them), their record is handed to the
judge as nbgrader would hand it the graded notebook, and the judge decides.

What a kernel may forge is exactly the record, so each test changes the record, never the
judge: right values pass, wrong or missing ones fail with a message, and nothing of the
student's is ever called by the judge.
"""

import importlib.util
import itertools
import json
import os

import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_output

from course.checks import evidence, judge
from tests.tiny_assignment import tiny_checks

_loaded = itertools.count()


@pytest.fixture(scope="module")
def checks_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "adcheck.py"
    path.write_text(tiny_checks())
    return path


def _module(path, mode):
    spec = importlib.util.spec_from_file_location(f"_tiny_checks_{next(_loaded)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._Evidence.mode = mode
    return module


def _kernel_run(path, source, namespace):
    """What a grading kernel hands out when it runs the test cell ``source``: the outputs of
    the cell (its records as display outputs, an error if it stopped with one)."""
    probe = _module(path, "probe")
    outputs = []
    probe._emit = lambda record: outputs.append(new_output(
        "display_data", data={judge.EVIDENCE_MIME: record, "text/plain": "(checked)"}))
    try:
        exec(source, {"adcheck": probe, **namespace})
    except AssertionError as error:
        outputs.append(new_output("error", ename="AssertionError", evalue=str(error),
                                  traceback=[]))
    return outputs


SOURCE = "adcheck.check_square(square)\nadcheck.check_square(square, cases=[-1.5])\n"


def _judged(path, outputs, source=SOURCE):
    cell = new_code_cell(source, outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "square_tests", "points": 1}
    module = judge.checks_module(str(path))
    judge.judge_cell(module, ("00_tiny", "tiny", "square_tests"), source, cell)
    return cell.outputs


def _score(outputs):
    return 0 if any(o.output_type == "error" for o in outputs) else 1


def test_a_right_answer_passes_and_its_messages_are_the_judges(checks_file):
    outputs = _judged(checks_file, _kernel_run(checks_file, SOURCE, {"square": lambda x: x * x}))
    assert _score(outputs) == 1 and outputs[0].text == "square passed\nsquare passed\n"


def test_a_wrong_answer_fails_with_its_message(checks_file):
    outputs = _judged(checks_file, _kernel_run(checks_file, SOURCE, {"square": lambda x: 2 * x}))
    assert _score(outputs) == 0
    assert outputs[0].evalue == "square(3) should be 9 [mistake: square/wrong-values]"


def test_right_on_the_visible_case_only_fails_on_the_hidden_one(checks_file):
    lookup = {3: 9}
    outputs = _judged(checks_file, _kernel_run(checks_file, SOURCE,
                                               {"square": lambda x: lookup.get(x, 0)}))
    assert outputs[0].evalue == "square is wrong on a hidden case [mistake: square/wrong-values]"


def _forged(values):
    """A record as a hostile kernel could write it: the hidden case answered with ``values``."""
    return [new_output("display_data", data={judge.EVIDENCE_MIME: {
        "exercise": "square", "facts": facts, "observations": [
            {"name": "square", "returned": evidence._encode(value)}]}})
        for facts, value in zip(({"visible": True, "jit": False, "cases": ["3"]},
                                 {"visible": False, "jit": False, "cases": ["-1.5"]}), values)]


def test_a_forged_record_scores_only_with_the_right_values(checks_file):
    assert _score(_judged(checks_file, _forged([9, 2.25]))) == 1
    assert _score(_judged(checks_file, _forged([9, 2.0]))) == 0


@pytest.mark.parametrize("spoil", [
    lambda outputs: [],  # the kernel skipped the cell, or hid its outputs
    lambda outputs: outputs[:1],  # the hidden check did not report
    lambda outputs: outputs[::-1],  # out of order
    lambda outputs: [new_output("display_data", data={judge.EVIDENCE_MIME: {
        "exercise": "square", "facts": {"visible": True}, "observations": "all passed"}})],
    lambda outputs: [new_output("stream", name="stdout", text="square passed\n")],
], ids=["no-record", "one-record", "reversed", "malformed", "printed-pass"])
def test_a_missing_or_spoiled_record_fails(checks_file, spoil):
    right = _kernel_run(checks_file, SOURCE, {"square": lambda x: x * x})
    outputs = _judged(checks_file, spoil(right))
    assert _score(outputs) == 0
    assert "[mistake: square/no-evidence]" in outputs[0].evalue


def test_the_kernels_error_is_named_not_quoted(checks_file):
    outputs = [new_output("error", ename="NameError", evalue="the hidden test is -1.5",
                          traceback=["secret"])]
    [verdict] = _judged(checks_file, outputs)
    assert verdict.evalue.startswith("NameError: a name the test cell uses is not defined")
    assert "-1.5" not in verdict.evalue and verdict.traceback == [f"AssertionError: "
                                                                  f"{verdict.evalue}"]


def test_the_judge_never_calls_student_code(checks_file):
    module = judge.checks_module(str(checks_file))
    stand_in = module._Replayed("square")
    with pytest.raises(module._JudgeError):
        stand_in(3)
    with pytest.raises(module._JudgeError):
        stand_in.attribute = 1


@pytest.mark.parametrize("value", [
    np.float32(1.5), np.arange(6, dtype=np.int16).reshape(2, 3), np.array(2.0),
    np.array([1 + 2j], np.complex64), (1, 2.5, None, "x", True), {"w": np.ones(2), "b": [3]},
    [np.zeros((0, 4))],
], ids=lambda v: type(v).__name__)
def test_values_cross_as_data(value):
    back = evidence._decode(evidence._encode(value))
    assert type(back) is type(value)
    for a, b in zip(np.atleast_1d(np.asarray(back, dtype=object)).ravel(),
                    np.atleast_1d(np.asarray(value, dtype=object)).ravel()):
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_code_never_crosses():
    def answer():
        pass

    back = evidence._decode(evidence._encode(answer))
    assert type(back).__name__ == "function" and isinstance(back, evidence._Replayed)
    assert evidence._encode(np.array([answer], dtype=object)) == {"object": "ndarray"}
    with pytest.raises(ValueError):
        evidence._decode({"array": "object", "shape": [1], "data": ""})
    with pytest.raises(ValueError):
        evidence._decode({"array": "float32", "shape": [10**9], "data": "AAAA"})


def _logged_compute(log, value):
    """An oracle that leaves a line in ``log`` each time it is computed, and takes a while."""
    import time

    with open(log, "a") as handle:
        handle.write("computed\n")
    time.sleep(0.5)
    return np.array([value, 2 * value])


def _shared_value(checks_file, folder, log):
    module = judge.checks_module(str(checks_file))
    values = judge.SharedOracleValues(module, str(folder))
    return values.value((("00_tiny", "tiny", "square_tests", "x"), 0, "square"),
                        lambda: _logged_compute(log, 1.25))


def test_a_class_computes_each_oracle_value_once(checks_file, tmp_path):
    """``course grade``'s workers share the oracle's values: of two processes that need the same
    value at once, one computes it while the other waits, then both use the same numbers."""
    import concurrent.futures
    import multiprocessing

    folder, log = tmp_path / "values", tmp_path / "log"
    folder.mkdir()
    with concurrent.futures.ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context("spawn")) as pool:
        got = list(pool.map(_shared_value, *zip(*[(checks_file, folder, log)] * 2)))
    assert log.read_text() == "computed\n"
    assert all(type(value) is np.ndarray and value.tolist() == [1.25, 2.5] for value in got)
    assert _shared_value(checks_file, folder, log).tolist() == [1.25, 2.5]
    assert log.read_text() == "computed\n"


def test_the_judge_decides_with_the_shared_values(checks_file, tmp_path):
    """The values in the folder are what every worker's judge compares with (which is why the
    folder is private to the grader): change them and the verdicts follow."""
    module = judge.checks_module(str(checks_file))
    right = _kernel_run(checks_file, SOURCE, {"square": lambda x: x * x})
    kept = module._Evidence.oracles
    try:
        module._Evidence.oracles = judge.SharedOracleValues(module, str(tmp_path))
        assert _score(_judged(checks_file, right)) == 1
        stored = sorted(tmp_path.glob("*.json"))
        assert len(stored) == 2  # the visible case and the hidden one
        for path in stored:
            path.write_text(json.dumps(evidence._encode(0)))
        module._Evidence.oracles = judge.SharedOracleValues(module, str(tmp_path))
        assert _score(_judged(checks_file, right)) == 0
        assert _score(_judged(checks_file, _forged([0, 0]))) == 1
    finally:
        module._Evidence.oracles = kept


@pytest.mark.parametrize("value", [
    (np.float64(0.1), np.ones((2, 3), np.float32)), [1, 2.5, 1 + 1j], {"a": np.arange(3)}])
def test_oracle_values_are_the_same_shared_or_not(value):
    """Shared or kept in its process, an oracle value reaches the checks as the same data."""
    encoded, portable = evidence._portable(value)
    assert encoded is not None
    assert repr(portable) == repr(evidence._decode(json.loads(json.dumps(encoded))))
    assert repr(portable) == repr(value)


def test_an_oracle_value_that_is_not_data_stays_in_its_process():
    value = (np.ones(2), len)
    assert evidence._portable(value) == (None, value)
    assert evidence._portable(["x" * 30_000])[0] is None


def _verdict(path, outputs):
    cell = new_code_cell(SOURCE, outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "square_tests", "points": 1}
    cell.metadata["verdict"] = {"passed": True, "mistake": None, "said": "forged"}
    decided = judge.judge_cell(judge.checks_module(str(path)), ("00_tiny", "tiny",
                                                                "square_tests"), SOURCE, cell)
    assert cell.metadata["verdict"] == {"passed": decided.passed, "mistake": decided.mistake,
                                        "said": decided.said}
    return cell.metadata["verdict"]


def test_the_verdict_is_left_in_the_cell_as_data_replacing_what_the_student_wrote(checks_file):
    wrong = _verdict(checks_file, _kernel_run(checks_file, SOURCE, {"square": lambda x: 2 * x}))
    assert wrong == {"passed": False, "mistake": "square/wrong-values",
                     "said": "square(3) should be 9"}
    right = _verdict(checks_file, _kernel_run(checks_file, SOURCE, {"square": lambda x: x * x}))
    assert right == {"passed": True, "mistake": None, "said": ""}


def test_an_unjudgeable_cell_is_named_as_the_judges_error(checks_file):
    verdict = _verdict(checks_file, [new_output("stream", name="stdout", text="hi")])
    assert verdict["passed"] is False and verdict["mistake"].startswith("square/")


def test_with_the_judge_off_no_verdict_the_student_wrote_survives():
    from nbformat.v4 import new_notebook

    cell = new_code_cell("adcheck.check_square(square)")
    cell.metadata["verdict"] = {"passed": False, "mistake": "square/made-up", "said": "forged"}
    nb, _ = judge.JudgeTestCells(enabled=False).preprocess(new_notebook(cells=[cell]), {})
    assert "verdict" not in nb.cells[0].metadata


def test_a_broken_shared_folder_is_the_graders_fault_not_the_students(checks_file, tmp_path):
    module = judge.checks_module(str(checks_file))
    right = _kernel_run(checks_file, SOURCE, {"square": lambda x: x * x})
    kept = module._Evidence.oracles
    try:
        module._Evidence.oracles = judge.SharedOracleValues(module, str(tmp_path / "gone"))
        [verdict] = _judged(checks_file, right)
    finally:
        module._Evidence.oracles = kept
    assert verdict.evalue.startswith("The grader could not judge this test cell")
    assert "[mistake: square/error:judge]" in verdict.evalue


def test_the_oracle_compiles_fast_without_changing_what_children_inherit(monkeypatch):
    """The judge asks XLA for the grading kernels' flags in its own process only: kernels,
    nbval's and the build's started later inherit the environment as it was."""
    import jax

    from course.checks import guard

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    seen = []
    monkeypatch.setattr(jax, "devices", lambda: seen.append(os.environ["XLA_FLAGS"]))
    judge._compile_faster_here(jax)
    assert seen and guard._GRADING_COMPILES_FASTER in seen[0].split()
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1"

    monkeypatch.delenv("XLA_FLAGS")
    judge._compile_faster_here(jax)
    assert "XLA_FLAGS" not in os.environ


@pytest.mark.parametrize("mode", ["run", "probe"])
def test_a_kernel_computes_each_expected_value_of_the_visible_cases_once(checks_file, mode):
    """Running a test cell again (or trying many candidate answers) computes no expected value
    of the visible cases again: the kernel keeps them, and a wrong answer still fails on them. A
    hidden test's values are computed at each call in a student's run (never in a grading
    kernel), and checks' code inside an observation of student code is never served a kept
    value."""
    module = _module(checks_file, mode)
    module._emit = lambda record: None
    computed = []
    check = module.check_square
    check.oracle = lambda x: computed.append(x) or x * x
    for _ in range(3):
        check(lambda x: x * x)
    with pytest.raises(AssertionError, match=r"square\(3\) should be 9"):
        check(lambda x: 2 * x)
    for _ in range(2):
        check(lambda x: x * x, cases=[-1.5])
    assert computed == [3] + ([-1.5, -1.5] if mode == "run" else [])

    with module._checking("square", {"visible": True, "jit": False, "cases": ["3"]}):
        for _ in range(2):
            module._at("case", 0)
            module._observe("square", lambda: module._oracle(lambda: computed.append("in")))
    assert computed.count("in") == 2
