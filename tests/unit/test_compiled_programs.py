"""The folder of a notebook's compiled programs (course/grading/compiled_programs.py): made once
by the model solution's run, sealed, shared, and never waited for."""

import fcntl
import logging
import os

from course.grading import compiled_programs

LOG = logging.getLogger("test")


def _sources(tmp_path, text="model"):
    notebook, checks = tmp_path / "nb.ipynb", tmp_path / "adcheck.py"
    notebook.write_text(text)
    checks.write_text("checks")
    return [notebook, checks]


def _warm_up(calls, leave=("jit_sin-1-cache",)):
    def warm_up(folder):
        calls.append(folder)
        for name in leave:
            with open(os.path.join(folder, name), "w") as handle:
                handle.write("program")
    return warm_up


def _entries(folder):
    os.chmod(folder, 0o700)
    try:
        return {e.name: e.stat(follow_symlinks=False).st_mode & 0o777 for e in os.scandir(folder)}
    finally:
        os.chmod(folder, 0o111)


def test_the_model_runs_once_and_leaves_a_sealed_folder(tmp_path):
    files, calls = _sources(tmp_path), []
    base = tmp_path / "programs"
    warm_up = _warm_up(calls, leave=("jit_sin-1-cache", "stray.txt"))
    folder = compiled_programs.ready(base, "01_a", "a", files, warm_up, LOG)
    again = compiled_programs.ready(base, "01_a", "a", files, warm_up, LOG)
    assert folder == again and len(calls) == 1
    assert os.stat(folder).st_mode & 0o777 == 0o111, "a kernel could list the folder"
    assert _entries(folder) == {"jit_sin-1-cache": 0o444}, "not an entry, or writable"
    assert os.stat(base).st_mode & 0o777 == 0o700


def test_a_change_to_the_notebook_makes_a_new_folder_and_keeps_the_newest(tmp_path):
    base, calls, folders = tmp_path / "programs", [], []
    for version in range(compiled_programs.KEPT + 2):
        files = _sources(tmp_path, f"model {version}")
        folders.append(compiled_programs.ready(base, "01_a", "a", files, _warm_up(calls), LOG))
        os.utime(folders[-1], (version, version))  # the newest last, whatever the clock
    assert len(set(folders)) == len(calls) == compiled_programs.KEPT + 2
    kept = sorted(p.name for p in base.iterdir() if p.is_dir())
    assert kept == sorted(os.path.basename(f) for f in folders[-compiled_programs.KEPT:])


def test_the_jax_settings_a_kernel_inherits_name_the_folder(tmp_path, monkeypatch):
    files = _sources(tmp_path)
    plain = compiled_programs.folder_name("01_a", "a", files)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    assert compiled_programs.folder_name("01_a", "a", files) != plain


def test_while_another_process_runs_the_model_a_submission_compiles_its_own(tmp_path):
    files, calls = _sources(tmp_path), []
    base = tmp_path / "programs"
    base.mkdir(mode=0o700)
    with open(base / "01_a--a--lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # flock locks belong to the open file: another open of the lock file is refused
        assert compiled_programs.ready(base, "01_a", "a", files, _warm_up(calls), LOG) is None
    assert calls == []


def test_a_failed_model_run_leaves_nothing_and_grading_goes_on(tmp_path, caplog):
    files = _sources(tmp_path)
    base = tmp_path / "programs"

    def broken(folder):
        (tmp_path / "started").write_text(folder)
        raise RuntimeError("the kernel died")

    assert compiled_programs.ready(base, "01_a", "a", files, broken, LOG) is None
    assert not os.path.exists((tmp_path / "started").read_text())
    assert [p.name for p in base.iterdir()] == ["01_a--a--lock"]
    assert "the kernel died" in caplog.text


def test_a_base_folder_that_is_a_link_is_not_used(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "programs").symlink_to(tmp_path / "elsewhere")
    calls = []
    assert compiled_programs.ready(tmp_path / "programs", "01_a", "a", _sources(tmp_path),
                                   _warm_up(calls), LOG) is None
    assert calls == [] and list((tmp_path / "elsewhere").iterdir()) == []


def test_without_a_model_run_only_a_folder_made_before_is_used(tmp_path):
    files, calls = _sources(tmp_path), []
    base = tmp_path / "programs"
    assert compiled_programs.ready(base, "01_a", "a", files, None, LOG) is None
    made = compiled_programs.ready(base, "01_a", "a", files, _warm_up(calls), LOG)
    assert compiled_programs.ready(base, "01_a", "a", files, None, LOG) == made
    assert len(calls) == 1
