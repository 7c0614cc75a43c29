"""The judge's folder of oracle values (course/grading/oracle_values.py): computed by one grading
run, read by every later one on the machine, in a folder no sandboxed kernel can see, named by
everything a value depends on."""

import concurrent.futures
import logging
import multiprocessing
import os

import numpy as np
import pytest

from course.checks import judge
from course.grading import oracle_values
from tests.tiny_assignment import tiny_checks

LOG = logging.getLogger("test")
KEY = (("00_tiny", "tiny", "square_tests", "x"), 0, "square")


@pytest.fixture(scope="module")
def checks_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "adcheck.py"
    path.write_text(tiny_checks())
    return path


def _value_in_a_new_process(checks_file, base, log):
    """A grading run of its own (when called in a new process): its judge loads the checks,
    finds the machine's folder, and asks for one value (whose computation is logged)."""
    module = judge.checks_module(str(checks_file))
    judge.share_oracle_values(module, oracle_values.folder(str(base), "00_tiny", module, LOG))

    def compute():
        with open(log, "a") as handle:
            handle.write("computed\n")
        return np.array([1.25, 2.5])

    return module._Evidence.oracles.value(KEY, compute).tolist()


def test_a_later_grading_run_reads_the_values_instead_of_computing_them(checks_file, tmp_path):
    base, log = tmp_path / "oracle-values", tmp_path / "log"
    context = multiprocessing.get_context("spawn")
    for _ in range(2):  # two grading runs, one after the other, each a process of its own
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            assert pool.submit(_value_in_a_new_process, checks_file, base, log).result() == [
                1.25, 2.5]
    assert log.read_text() == "computed\n"
    (folder,) = base.iterdir()
    assert folder.name.startswith("00_tiny--")
    assert base.stat().st_mode & 0o777 == 0o700 and folder.stat().st_mode & 0o777 == 0o700


def test_a_spoiled_value_is_computed_again(checks_file, tmp_path):
    """A value file that is not whole (a disk that filled up, a hand edit) is not the student's
    fault: the next judge computes the value again and replaces the file."""
    base, log = tmp_path / "oracle-values", tmp_path / "log"
    assert _value_in_a_new_process(checks_file, base, log) == [1.25, 2.5]
    (stored,) = next(base.iterdir()).glob("*.json")
    for spoiled in ('{"sequence": ', '{"no such kind": 1}', '[]'):
        stored.write_text(spoiled)
        judge.checks_module(str(checks_file))._Evidence.oracles._values.clear()
        assert _value_in_a_new_process(checks_file, base, log) == [1.25, 2.5]
    assert log.read_text() == "computed\n" * 4
    judge.checks_module(str(checks_file))._Evidence.oracles._values.clear()
    assert _value_in_a_new_process(checks_file, base, log) == [1.25, 2.5]
    assert log.read_text() == "computed\n" * 4  # read from the file written again


def test_the_folder_changes_with_what_a_value_depends_on(checks_file, tmp_path, monkeypatch):
    module = judge.checks_module(str(checks_file))
    first = oracle_values.folder(str(tmp_path), "00_tiny", module, LOG)
    assert oracle_values.folder(str(tmp_path), "00_tiny", module, LOG) == first
    monkeypatch.setenv("JAX_ENABLE_X64", "0")
    second = oracle_values.folder(str(tmp_path), "00_tiny", module, LOG)
    monkeypatch.setattr(module, "_judge_xla_flags", "--xla_cpu_enable_fast_math=true",
                        raising=False)
    third = oracle_values.folder(str(tmp_path), "00_tiny", module, LOG)
    assert len({first, second, third}) == 3


def test_no_folder_when_the_flags_the_oracle_computes_with_are_unknown(checks_file, tmp_path,
                                                                      monkeypatch):
    """A process whose XLA started before the judge set its flags keeps its values to itself."""
    module = judge.checks_module(str(checks_file))
    monkeypatch.setattr(module, "_judge_xla_flags", None, raising=False)
    assert oracle_values.folder(str(tmp_path), "00_tiny", module, LOG) is None
    assert list(tmp_path.iterdir()) == []


def test_no_folder_where_a_sandboxed_kernel_could_read_it(checks_file, tmp_path, monkeypatch,
                                                          caplog):
    """Matplotlib's cache is shown to every grading kernel (read-only): values kept inside it
    would hand the expected values to the students' code."""
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path))
    module = judge.checks_module(str(checks_file))
    with caplog.at_level(logging.WARNING):
        assert oracle_values.folder(str(tmp_path / "values"), "00_tiny", module, LOG) is None
    assert "which grading kernels see" in caplog.text
    assert not (tmp_path / "values").exists()


def test_a_base_that_is_a_link_is_refused(checks_file, tmp_path, caplog):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "values")
    module = judge.checks_module(str(checks_file))
    with caplog.at_level(logging.WARNING):
        assert oracle_values.folder(str(tmp_path / "values"), "00_tiny", module, LOG) is None
    assert "not a folder of this user's" in caplog.text


def test_empty_keeps_the_values_in_the_process(checks_file, monkeypatch):
    monkeypatch.setenv("ADCOURSE_ORACLE_VALUES", "")
    module = judge.checks_module(str(checks_file))
    assert oracle_values.folder(oracle_values.default_folder(), "00_tiny", module, LOG) is None


def test_the_newest_folders_of_an_assignment_are_kept(checks_file, tmp_path, monkeypatch):
    module = judge.checks_module(str(checks_file))
    made = []
    for k in range(oracle_values.KEPT + 2):
        monkeypatch.setenv("JAX_COURSE_VERSION", str(k))
        made.append(oracle_values.folder(str(tmp_path), "00_tiny", module, LOG))
        os.utime(made[-1], (k, k))
    other = oracle_values.folder(str(tmp_path), "01_other", module, LOG)
    assert sorted(map(str, tmp_path.iterdir())) == sorted(made[-oracle_values.KEPT:] + [other])
