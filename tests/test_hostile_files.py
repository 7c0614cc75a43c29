"""Hostile submission folders (tests/answers/hostile_files.py) graded for real: links to the
solutions, to another student's notebook, to the gradebook and to /proc/self/environ, links to
devices, hard links, FIFOs, sockets, a folder that is a link, a notebook that is one; and cells
with broken nbgrader metadata. Each class is graded by plain ``nbgrader autograde`` and by
``python -m course grade``, and the hostile folders are also collected from the exchange by
``nbgrader collect``.

For each attack: only regular files got in, it gains nothing, nothing leaks to it (its
autograded notebook, its feedback and every file of its own in autograded/ and feedback/ hold
none of the texts it aimed at), every other student's grade and files and the course's files
are unchanged byte for byte, the batch finishes, and the attacker's feedback names what was
refused. Then: the kernel cannot write more than its connection folder's small tmpfs outside
its other tmpfs folders, and a notebook's grading has a total time limit.
"""

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course.grading import sandbox, submission_files
from course.grading.preprocessors import ExecuteSurvivingCrashes
from tests import hostile_files_class as hostile_run
from tests.answers.hostile_files import BROKEN_METADATA
from tests.harness import ROOT
from tests.tiny_assignment import ASSIGNMENT, answered, fresh_copy, scores, submit

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
ATTACKS = hostile_run.ATTACKS


@pytest.fixture(scope="module", params=["nbgrader autograde", "course grade"])
def graded(request, tiny_course, tmp_path_factory):
    return hostile_run.grade(tiny_course, tmp_path_factory.mktemp("files"), request.param)


def test_the_batch_finishes_and_grades_everyone(graded):
    assert graded.finished, f"{graded.how} did not finish: {graded.log[-3000:]}"
    assert graded.returncode == 0, graded.log[-5000:]
    everyone = set(hostile_run.HONEST) | {h.name for h in ATTACKS} | {
        b.name for b in BROKEN_METADATA}
    from course.dev import scratch_course

    assert set(scratch_course.cell_scores(graded.course, ASSIGNMENT)) == everyone


@pytest.mark.parametrize("hostile", ATTACKS, ids=lambda h: h.name)
def test_an_attack_gains_nothing(graded, hostile):
    assert scores(graded.course, hostile.name) == hostile.scores, hostile.reason


@pytest.mark.parametrize("hostile", ATTACKS, ids=lambda h: h.name)
def test_nothing_leaks_to_the_attacker(graded, hostile):
    texts = hostile_run.leak_texts(graded.course)
    back = hostile_run.given_back(graded, hostile.name)
    assert back, f"{hostile.name} got no feedback"
    leaked = sorted({f"{name} in {path}" for path, text in back.items()
                     for name, leak in texts.items() if leak in text})
    assert not leaked, f"{hostile.name} ({hostile.reason}) got {leaked}"


@pytest.mark.parametrize("hostile", ATTACKS, ids=lambda h: h.name)
def test_the_attacker_reads_what_was_refused(graded, hostile):
    text = hostile_run.feedback_text(graded, hostile.name)
    assert hostile.says in text, f"{hostile.name}'s feedback does not say {hostile.says!r}"


@pytest.mark.parametrize("hostile", ATTACKS, ids=lambda h: h.name)
def test_only_regular_files_were_taken_in(graded, hostile):
    for step in ("submitted", "autograded", "feedback"):
        folder = graded.course / step / hostile.name
        assert not os.path.islink(folder / ASSIGNMENT)
        assert not hostile_run.special_entries(folder), (step, hostile.name)


def test_everyone_and_everything_else_is_untouched(graded):
    assert not hostile_run.honest_problems(graded)


def test_the_grade_table_marks_the_refusals(graded):
    if graded.how != "course grade":
        pytest.skip("only course grade prints a grade table")
    table = graded.log[graded.log.index(f"{ASSIGNMENT}:\nstudent"):].split("\n\n")[0]
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    for hostile in ATTACKS:
        assert "refused" in rows[hostile.name], rows[hostile.name]
    assert "refused" not in rows["zzz-model"]


@pytest.mark.parametrize("broken", BROKEN_METADATA, ids=lambda b: b.name)
def test_broken_metadata_fails_only_its_own_cell(graded, broken):
    """nbgrader 0.9.6 stopped the whole class at a cell whose schema_version it does not know,
    and failed the student on other broken metadata: here each is graded, its cell repaired or
    graded as an ordinary cell, and the students after it are graded too (checked above)."""
    assert scores(graded.course, broken.name) == broken.scores, broken.reason
    from course.dev import scratch_course

    cells = scratch_course.cell_scores(graded.course, ASSIGNMENT)[broken.name]
    assert sum(top for _, top in cells.values()) == 3, "a cell added points"
    text = hostile_run.feedback_text(graded, broken.name)
    assert broken.says in text, f"{broken.name}'s feedback does not say {broken.says!r}"


def test_honest_students_get_no_grading_notes(graded):
    for student in hostile_run.HONEST:
        assert "Grading notes" not in hostile_run.feedback_text(graded, student)


# -- nbgrader collect ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def collected(tiny_course, tmp_path_factory):
    return hostile_run.collect(tiny_course, tmp_path_factory.mktemp("collect"))


def test_collect_finishes(collected):
    assert collected.finished, "nbgrader collect did not finish"
    assert collected.returncode == 0, collected.log[-3000:]


@pytest.mark.parametrize("hostile", [h for h in ATTACKS if h.at_collect], ids=lambda h: h.name)
def test_collect_takes_regular_files_only_and_says_what_it_refused(collected, hostile):
    folder = collected.course / "submitted" / hostile.name / ASSIGNMENT
    assert folder.is_dir() and not folder.is_symlink()
    assert not hostile_run.special_entries(folder)
    texts = hostile_run.leak_texts(collected.course)
    leaked = [name for path, text in hostile_run.texts_below(folder).items()
              for name, leak in texts.items() if leak in text]
    assert not leaked, f"collect copied {leaked} into {hostile.name}'s submission"
    notes = " ".join(submission_files.notes(folder)).replace("`", "")
    assert hostile.says in notes, notes


@pytest.mark.parametrize("record", ["record-link", "record-fifo"])
def test_collect_refuses_a_submission_that_is_not_a_folder(collected, record):
    folder = collected.course / "submitted" / record / ASSIGNMENT
    assert sorted(os.listdir(folder)) == [submission_files.REFUSED_LIST]
    notes = submission_files.notes(folder)
    assert notes and notes[0].startswith("Your submission folder is"), notes


def test_collect_leaves_everyone_else_alone(collected):
    assert not hostile_run.honest_problems(collected)


# -- the sandbox's own copy --------------------------------------------------------------------

def test_the_sandbox_copies_regular_files_only(tmp_path):
    """The sandbox's copy of a submission folder into the kernel's view
    (course/grading/sandbox.py), on a folder nothing checked before: a link to a secret, a link
    to /dev/ptmx, a FIFO and a hard link stay out, without blocking; the regular file gets in."""
    folder, secret = tmp_path / "submission", tmp_path / "secret.txt"
    folder.mkdir()
    secret.write_text("the grader's secret")
    (folder / "notes.txt").write_text("a regular file")
    os.symlink(secret, folder / "link.txt")
    os.symlink("/dev/ptmx", folder / "terminal")
    os.mkfifo(folder / "pipe")
    os.link(secret, folder / "hard.txt")
    grader = ExecuteSurvivingCrashes(timeout=60)
    nb = new_notebook(cells=[new_code_cell("import os\nprint(sorted(os.listdir('.')))")])
    start = time.monotonic()
    nb, _ = grader.preprocess(nb, {"metadata": {"path": str(folder)}})
    assert time.monotonic() - start < 60
    assert nb.cells[0].outputs[0].text.strip() == "['notes.txt']"


# -- the kernel's disk: nothing but its tmpfs folders ---------------------------------------------

FILL = """
import json, os
from ipykernel.kernelapp import IPKernelApp

connection = os.path.dirname(IPKernelApp.instance().connection_file)
written = {}
for target in (connection, "/", "/grading", "/dev", "/dev/shm"):
    for k in range(600):  # 600 MiB, in files of 1 MiB
        try:
            with open(os.path.join(target, f"fill{k}.bin"), "wb") as handle:
                handle.write(bytes(2**20))
        except OSError:
            break
    written[target] = sum(entry.stat().st_size for entry in os.scandir(target)
                          if entry.name.startswith("fill") and entry.is_file())
print(json.dumps({"connection": connection, "written": written}))
"""

MEASURE = """
import json, os, sys
from nbformat.v4 import new_code_cell, new_notebook
from course.grading.preprocessors import ExecuteSurvivingCrashes


class Measured(ExecuteSurvivingCrashes):
    host = None

    def preprocess_cell(self, cell, resources, index):
        result = super().preprocess_cell(cell, resources, index)
        self.host = sum(os.lstat(os.path.join(self._ipc_dir, name)).st_size
                        for name in os.listdir(self._ipc_dir))
        return result


grader = Measured(timeout=120)
nb = new_notebook(cells=[new_code_cell(sys.argv[1]), new_code_cell("print('still answering')")])
nb, _ = grader.preprocess(nb, {"metadata": {"path": None}})
print(json.dumps({"uid": os.getuid(), "cells": [c.outputs for c in nb.cells],
                  "host_bytes": grader.host}))
"""


def _hidden_from(uid, path):
    """The outermost folder above ``path`` that ``uid`` cannot pass through (o-x), or None."""
    for folder in reversed(Path(path).parents):
        st = os.stat(folder)
        if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
            return folder
    return None


def _as_nobody(command, folder):
    """``command`` run as nobody, from a root process. Where this Python lives below a folder
    that nobody cannot enter (a pyenv in /root), that folder is replaced, in a mount namespace
    of the command's own, by an empty one through which the Python is reachable."""
    drop = ["setpriv", "--reuid", str(sandbox.NOBODY), "--regid", str(sandbox.NOBODY),
            "--clear-groups"]
    base = Path(os.path.realpath(sys.base_prefix))
    hidden = _hidden_from(sandbox.NOBODY, base / "x")
    if hidden is None:
        return drop + command
    keep = folder / "python"
    keep.mkdir()
    script = (f"mount --bind {shlex.quote(str(base))} {shlex.quote(str(keep))} && "
              f"mount -t tmpfs -o mode=0755 none {shlex.quote(str(hidden))} && "
              f"mkdir -p {shlex.quote(str(base))} && "
              f"mount --bind {shlex.quote(str(keep))} {shlex.quote(str(base))} && "
              f"exec {shlex.join(drop + command)}")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def _measure(as_nobody, folder):
    command = [sys.executable, "-c", MEASURE, FILL]
    home = folder / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT)}
    if as_nobody:
        if shutil.which("setpriv") is None or shutil.which("unshare") is None:
            pytest.skip("needs setpriv and unshare to grade as a user that is not root")
        folder.chmod(0o755)
        command = _as_nobody(command, folder)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert (measured["uid"] == 0) == (os.geteuid() == 0 and not as_nobody), measured["uid"]
    fill, alive = measured["cells"]
    return json.loads(fill[0]["text"]), alive, measured


@pytest.mark.parametrize("grader", ["root", "user"])
def test_the_kernel_writes_nothing_outside_its_small_tmpfs_folders(grader, tmp_path):
    """A kernel tries to write 600 MiB into its connection folder (bound from the host's /tmp
    before), the sandbox's root, /grading, /dev and /dev/shm. The connection folder takes at
    most its cap (1 MiB), the others nothing; the host's side of the connection folder stays a
    few bytes; the kernel still answers. A root grader's kernel runs as nobody; a grader that
    is not root is played by nobody (setpriv)."""
    if grader == "root" and os.geteuid() != 0:
        pytest.skip("the grader is not root here")
    report, alive, measured = _measure(grader == "user" and os.geteuid() == 0, tmp_path)
    written = report["written"]
    cap = ExecuteSurvivingCrashes().connection_size_kb * 1024
    assert 0 < written.pop(report["connection"]) <= cap, report
    assert written == {"/": 0, "/grading": 0, "/dev": 0, "/dev/shm": 0}, written
    assert measured["host_bytes"] < 4096, "the kernel wrote into the host's folder"
    assert alive[0]["text"] == "still answering\n"


# -- the total time limit of a notebook ---------------------------------------------------------

def test_a_notebook_has_a_total_time_limit(tiny_course, tmp_path):
    """Each cell may run 60 s here, the notebook 12 s: a square that sleeps a minute is
    interrupted at the notebook's limit, halve is not run (zero), and the next student is
    graded."""
    course = fresh_copy(tiny_course, tmp_path / "course")
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.Execute.timeout = 60\nc.ExecuteSurvivingCrashes.total_timeout = 12\n")
    submit(course, "slow", {"tiny.ipynb": answered(
        course, square="import time\ntime.sleep(60)\ndef square(x):\n    return x * x")})
    submit(course, "zzz-model", {"tiny.ipynb": answered(course)})
    start = time.monotonic()
    result = hostile_run.run(("nbgrader", "autograde", ASSIGNMENT, "--force"), course,
                             seconds=300)
    seconds = time.monotonic() - start
    assert result is not None and result.returncode == 0, result and result.stderr[-3000:]
    assert scores(course, "slow") == (1, 0, 0)
    assert scores(course, "zzz-model") == (1, 1, 1)
    assert seconds < 60, f"grading took {seconds:.0f} s"
    nb = nbformat.read(course / "autograded" / "slow" / ASSIGNMENT / "tiny.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert any(o.ename == "NotRun" and "total time limit (12 s)" in o.evalue for o in errors)


def test_the_time_limit_counts_from_the_start(tmp_path):
    """Without nbgrader: cells after the limit are not run, each with its reason."""
    grader = ExecuteSurvivingCrashes(timeout=30, total_timeout=4, interrupt_on_timeout=True,
                                     error_on_timeout={"ename": "CellTimeoutError",
                                                       "evalue": "limit", "traceback": []})
    nb = new_notebook(cells=[new_code_cell("import time\ntime.sleep(20)"),
                             new_code_cell("print('not reached')")])
    start = time.monotonic()
    nb, _ = grader.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert time.monotonic() - start < 20
    assert nb.cells[1].outputs[0].ename == "NotRun"
