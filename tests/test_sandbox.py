"""The grading kernel's sandbox (course/grading/sandbox.py) and the checks' guard, seen from
inside a kernel started the way nbgrader starts it (course/grading/preprocessors.py)."""

import json
import os
import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course.grading import preprocessors, sandbox
from course.grading.preprocessors import ExecuteSurvivingCrashes, SetupCellFirst
from tests.harness import ROOT

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

LOOK_AROUND = """
import json, os, socket
seen = {"cwd": os.getcwd(), "files": sorted(os.listdir(".")), "uid": os.getuid(),
        "course": sorted(os.listdir(COURSE)) if os.path.isdir(COURSE) else [],
        "processes": [p for p in os.listdir("/proc") if p.isdigit()],
        "env": sorted(os.environ), "home": os.environ.get("HOME")}
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2)
    seen["network"] = "connected"
except OSError as error:
    seen["network"] = type(error).__name__
open("written-by-the-kernel.txt", "w").write("x")
print(json.dumps(seen))
"""


def _run(cells, folder, **options):
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    options.setdefault("timeout", 60)
    nb, _ = ExecuteSurvivingCrashes(**options).preprocess(
        nb, {"metadata": {"path": str(folder)}})
    return nb


@needs_bwrap
def test_a_kernel_sees_a_copy_of_its_submission_and_nothing_of_the_course(tmp_path, monkeypatch):
    monkeypatch.setenv("NBGRADER_DB_URL", "postgresql://grader:secret@dbhost/course")
    for name in ("adcheck.py", "notes.txt", "numpy.py"):
        (tmp_path / name).write_text("# a file of the submission\n")
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("raise SystemExit('a fake jax')\n")
    nb = _run([f"COURSE = {str(ROOT)!r}", LOOK_AROUND], tmp_path)
    seen = json.loads(nb.cells[1].outputs[0].text)
    assert seen["cwd"] == sandbox.SUBMISSION
    assert seen["files"] == ["adcheck.py", "notes.txt"], "a submitted module or package got in"
    # of the course folder, at most the virtualenv that it may hold (read-only)
    assert set(seen["course"]) <= {".venv"}, f"the kernel sees the course folder: {seen['course']}"
    assert len(seen["processes"]) <= 3, seen["processes"]
    assert seen["uid"] != os.getuid() or os.getuid() != 0
    assert seen["network"] in ("ConnectionRefusedError", "OSError"), seen["network"]
    assert "NBGRADER_DB_URL" not in seen["env"] and seen["home"].startswith("/tmp")
    assert not (tmp_path / "written-by-the-kernel.txt").exists(), "it wrote into the original"


def _guarded_notebook():
    return [
        "import _thread, time\nstart = _thread.start_new_thread",
        "import adcheck\nadcheck.setup()",
        "start(lambda: time.sleep(60), ())",
        "adcheck.check_vgrad(lambda f, x: x)",
        "print('not reached')",
    ]


@needs_bwrap
def test_a_thread_alive_when_a_test_cell_starts_stops_grading(tmp_path, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    shutil.copy(ROOT / "source" / "01_forward_reverse" / "adcheck.py", tmp_path)
    nb = _run(_guarded_notebook(), tmp_path)
    [error] = [o for o in nb.cells[3].outputs if o.output_type == "error"]
    assert error.ename == "GradingStopped" and "thread" in error.evalue, error
    assert nb.cells[4].outputs[0].ename == "NotRun"


def test_without_bubblewrap_grading_says_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    sandbox.bwrap_path.cache_clear()
    try:
        with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
            _run(["1"], ROOT / "source")
    finally:
        sandbox.bwrap_path.cache_clear()


def test_opting_out_warns(tmp_path, caplog):
    monkeypatched = ExecuteSurvivingCrashes._warned
    ExecuteSurvivingCrashes._warned = False
    try:
        nb = _run(["print(1 + 1)"], tmp_path, sandbox="none")
    finally:
        ExecuteSurvivingCrashes._warned = monkeypatched
    assert nb.cells[0].outputs[0].text == "2\n"
    assert "WITHOUT a sandbox" in caplog.text


def test_the_setup_cell_runs_before_any_code_moved_above_it():
    release = nbformat.read(ROOT / "release" / "01_forward_reverse" / "forward_reverse.ipynb",
                            as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in release.cells]
    setup = ids.index("setup")
    moved = nbformat.from_dict(release)
    attack = new_code_cell("import numpy; numpy.allclose = lambda *a, **k: True")
    moved.cells.insert(0, attack)
    nb, _ = SetupCellFirst().preprocess(moved, {})
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata["nbgrader"]["grade_id"] == "setup"
    assert code[1].source == attack.source
    assert len(nb.cells) == len(release.cells) + 1 and setup >= 0


def test_nothing_of_the_host_is_writable_and_the_connection_folder_is_small(tmp_path):
    args = sandbox.command(["python", "-m", "ipykernel_launcher", "-f", "k.json"], tmp_path,
                           tmp_path / "connection")
    assert "--bind" not in args, "a folder of the host is writable from the sandbox"
    # every tmpfs has a size: "--size", bytes, "--perms", mode, "--tmpfs", folder
    tmpfs = {args[i + 1]: int(args[i - 3]) for i, a in enumerate(args)
             if a == "--tmpfs" and args[i - 4] == "--size"}
    assert len(tmpfs) == args.count("--tmpfs") == 3, tmpfs
    assert tmpfs[str(tmp_path / "connection")] <= 4 * 2**20, "the connection folder is large"
    assert {args[i + 1] for i, a in enumerate(args) if a == "--remount-ro"} == {"/", "/dev"}
    assert str(ROOT) not in [args[i + 2] for i, a in enumerate(args) if a == "--ro-bind"]
    assert "--unshare-net" in args and "--unshare-pid" in args and "--die-with-parent" in args
    assert preprocessors.ExecuteSurvivingCrashes().sandbox == "bwrap", "the sandbox is the default"


def test_only_the_model_solutions_run_may_write_its_compiled_programs(tmp_path):
    from course.checks import guard

    cmd = ["python", "-m", "ipykernel_launcher", "-f", "k.json"]
    reading = sandbox.command(cmd, tmp_path, tmp_path / "connection", programs=tmp_path / "p")
    writing = sandbox.command(cmd, tmp_path, tmp_path / "connection", programs=tmp_path / "p",
                              write_programs=True)
    bound = [reading[i:i + 3] for i, a in enumerate(reading) if a.endswith("bind")]
    assert ["--ro-bind", str(tmp_path / "p"), sandbox.PROGRAMS] in bound
    assert "--bind" not in reading and sandbox.COMPILED_PROGRAMS_WRITE_ENV not in reading
    assert [writing[i:i + 3] for i, a in enumerate(writing) if a == "--bind"] == [
        ["--bind", str(tmp_path / "p"), sandbox.PROGRAMS]]
    assert (guard.COMPILED_PROGRAMS_ENV, guard.COMPILED_PROGRAMS_WRITE_ENV) == (
        sandbox.COMPILED_PROGRAMS_ENV, sandbox.COMPILED_PROGRAMS_WRITE_ENV)


@needs_bwrap
def test_a_cell_that_ignores_the_interrupt_costs_its_points_not_the_notebook(tmp_path):
    nb = _run(["import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n"
               "    pass", "print('not reached')"], tmp_path, interrupt_on_timeout=True,
              raise_on_iopub_timeout=True, timeout=3, error_on_timeout={
                  "ename": "CellTimeoutError", "evalue": "time limit", "traceback": []})
    assert any(o.get("ename") == "CellTimeoutError" for o in nb.cells[0].outputs)
    assert nb.cells[1].outputs[0].ename == "NotRun"


FORK_UNTIL_REFUSED = """
import os, sys, time
children = []
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    children.append(pid)
print(f"holding {len(children)} processes", flush=True)
sys.stdin.readline()
"""

THREADS_WHEN_TOLD = """
import sys, threading
sys.stdin.readline()
started = []
try:
    for _ in range(40):
        thread = threading.Thread(target=lambda: None)
        thread.start()
        started.append(thread)
except RuntimeError as error:
    print(f"refused after {len(started)}: {error}", flush=True)
else:
    print(f"started {len(started)}", flush=True)
"""


def _sandboxed(folder, name, code, limits):
    """A process running ``code`` in a sandbox as a grading kernel runs, limits included."""
    import functools
    import subprocess
    import sys

    (folder / name).mkdir()
    (folder / name / f"{name}.py").write_text(code)
    connection = folder / f"{name}-connection"
    connection.mkdir()
    (connection / "kernel.json").write_text("{}")
    uid = sandbox.kernel_uid()
    args = sandbox.command([sys.executable, "-m", name], folder / name, connection, limits,
                           importable=(f"{name}.py",), uid=uid)
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=functools.partial(
                                sandbox.prepare_child, limits, str(connection / "kernel.json"),
                                sandbox.process_limit(limits, uid), uid))


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="a grader that is not root shares its user "
                                              "with its kernels (see the README)")
def test_one_kernels_fork_bomb_leaves_another_kernel_its_process_limit(tmp_path):
    """Two kernels graded at once: the first is running when the second forks until it is
    refused. The first can still start threads: the limit on processes is per kernel."""
    limits = sandbox.Limits(processes=64)
    honest = _sandboxed(tmp_path, "threads_when_told", THREADS_WHEN_TOLD, limits)
    bomb = _sandboxed(tmp_path, "fork_until_refused", FORK_UNTIL_REFUSED, limits)
    try:
        held = bomb.stdout.readline()
        assert held.startswith("holding "), held
        honest.stdin.write("go\n")
        honest.stdin.flush()
        assert honest.stdout.readline().strip() == "started 40"
    finally:
        for process in (honest, bomb):
            process.kill()
            process.wait()



MODEL_COMPILES = ("import jax, jax.numpy as jnp\n"
                  "print(jax.jit(jnp.sin)(jnp.arange(3.0)), jnp.cos(jnp.ones(5)))")
STUDENT_LOOKS_AT_THE_PROGRAMS = """
import json, os
import jax, jax.numpy as jnp
folder = os.environ["ADCOURSE_COMPILED_PROGRAMS"]
seen = {"hits": events["/jax/compilation_cache/cache_hits"],
        "min_compile_seconds": jax.config.jax_persistent_cache_min_compile_time_secs}
try:
    seen["listed"] = os.listdir(folder)
except OSError as error:
    seen["listed"] = error.strerror
try:
    open(os.path.join(folder, "jit_sin-0-cache"), "wb").write(b"poison")
except OSError as error:
    seen["written"] = error.strerror
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.jit(lambda x: x * 3.25)(jnp.ones(3))
print(json.dumps(seen))
"""


def _mini_course(root):
    """A course of one notebook (its setup cell, then an answer that compiles two programs),
    with the checks of 01_forward_reverse."""
    folder = root / "source" / "99_mini"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "source" / "01_forward_reverse" / "adcheck.py", folder)
    cells = [new_code_cell("import adcheck\nadcheck.setup()"), new_code_cell(MODEL_COMPILES)]
    for cell, grade_id in zip(cells, ("setup", "model")):
        cell.metadata["nbgrader"] = {"grade": False, "locked": grade_id == "setup",
                                     "solution": grade_id == "model", "grade_id": grade_id,
                                     "schema_version": 3}
    nbformat.write(new_notebook(cells=cells), folder / "mini.ipynb")
    return folder


def _grade_mini(tmp_path, monkeypatch, **options):
    """The programs folder and what a student's kernel saw of it, after grading the mini
    course's student (who computes what the model computed) with ``options``."""
    from traitlets.config import Config

    monkeypatch.setenv("ADCOURSE_GRADING_PROGRAMS", str(tmp_path / "programs"))
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    config = Config()
    config.CourseDirectory.root = str(tmp_path)
    folder = _mini_course(tmp_path)
    listen = ("import collections, jax.monitoring\nevents = collections.Counter()\n"
              "jax.monitoring.register_event_listener(lambda event, **_: events.update([event]))")
    student = new_notebook(cells=[new_code_cell("import adcheck\nadcheck.setup()"),
                                  new_code_cell(listen), new_code_cell(MODEL_COMPILES),
                                  new_code_cell(STUDENT_LOOKS_AT_THE_PROGRAMS)])
    resources = {"metadata": {"path": str(folder)},
                 "nbgrader": {"assignment": "99_mini", "notebook": "mini"}}
    graded, _ = ExecuteSurvivingCrashes(config=config, timeout=60, **options).preprocess(
        student, resources)
    [programs] = [p for p in (tmp_path / "programs").iterdir() if p.is_dir()]
    [seen] = [json.loads(o.text) for o in graded.cells[-1].outputs
              if o.output_type == "stream" and o.text.startswith("{")]
    return programs, seen


@needs_bwrap
def test_a_kernel_loads_the_model_solutions_programs_and_cannot_list_or_change_them(
        tmp_path, monkeypatch):
    programs, seen = _grade_mini(tmp_path, monkeypatch)
    assert programs.name.startswith("99_mini--mini--")
    assert oct(programs.stat().st_mode & 0o777) == "0o111", "the folder can be listed"
    sealed = programs.stat().st_ctime
    programs.chmod(0o700)
    entries = {e.name: e.stat() for e in os.scandir(programs)}
    assert any(name.startswith("jit_sin-") for name in entries), sorted(entries)
    assert all(name.endswith("-cache") for name in entries), sorted(entries)
    assert all(s.st_mode & 0o777 == 0o444 and s.st_uid == os.geteuid()
               and s.st_mtime <= sealed for s in entries.values())
    assert seen["hits"] >= 2, "the student's kernel compiled the model's programs again"
    assert seen["min_compile_seconds"] == float("inf"), "the student's kernel would write"
    assert seen["listed"] == "Permission denied", seen
    assert seen["written"] == "Read-only file system", seen
    assert {e.name for e in os.scandir(programs)} == set(entries), "a kernel wrote a program"
