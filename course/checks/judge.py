"""The judge: decides every test cell of a graded notebook, outside the student's kernel.

While grading, the kernel runs each test cell with the checks in "probe" mode (see the section
course/checks/evidence.py): they call the student's code on the cases and hand out what it
returned, as data, in display outputs of type ``EVIDENCE_MIME``; they compute no expected value
and decide nothing. This nbgrader preprocessor runs next, in the grader's process, which never
imports or runs anything the student wrote. For each test cell it runs the cell's trusted source
(from ``source/``) with the assignment's checks module in "judge" mode: every call of student
code is answered from the kernel's record, the oracle computes the expected values (once per
machine: the cases are the same for every student; see ``SharedOracleValues``), and the
comparisons decide. The cell's
outputs are then replaced by the judge's verdict alone, the pass message or an error with the
message that names the mistake, which nbgrader scores as usual (an error output scores zero).
Nothing the kernel printed in a test cell reaches the graded notebook or the feedback.
"""

import builtins
import contextlib
import fcntl
import hashlib
import importlib.util
import io
import json
import os
import re
import sys
import typing

import nbformat
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Unicode, default

from .guard import _compile_faster

EVIDENCE_MIME = "application/vnd.adcourse.evidence+json"
VERDICT = "verdict"  # the metadata key of a judged test cell: its Verdict's fields as data
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,59}")

_modules = {}  # path of a checks module -> (its digest, the module loaded in judge mode)
_sources = {}  # path of a source notebook -> (its mtime, {grade_id: source})


def checks_module(path):
    """The checks module at ``path`` (a trusted file of source/), loaded once per process in
    judge mode, under a name of its own so that nothing else imports it by accident."""
    with open(path, "rb") as handle:
        text = handle.read()
    digest = hashlib.sha256(text).hexdigest()
    cached = _modules.get(path)
    if cached and cached[0] == digest:
        return cached[1]
    name = f"_judged_checks_{digest[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    module._Evidence.mode = "judge"
    if getattr(module, "jax", None) is not None:  # before the oracle's first operation here
        module._judge_xla_flags = _compile_faster_here(module.jax)
    _modules[path] = (digest, module)
    return module


def _compile_faster_here(jax):
    """The grading kernels' XLA flags (``guard._compile_faster``) for the oracle in this
    process, which compiles a program for each reference and runs it once (the oracle of
    05_inside took 6.1 s with them, 9.1 s without). XLA reads them when it starts, here at
    once; the environment that later processes inherit is left as it was, since outside
    grading (nbval's kernels, the build's) the machine code is optimised. A process whose XLA
    had started already keeps its flags. Returns the flags the oracle computes with, or None
    when they are unknown here (XLA was started by someone else). (A checks module without
    JAX, as the tests' tiny assignment's, needs none.)"""
    global _xla_started_with
    from jax._src import xla_bridge

    started = getattr(xla_bridge, "backends_are_initialized", lambda: True)
    saved = os.environ.get("XLA_FLAGS")
    _compile_faster(grading=True)
    if not started():
        _xla_started_with = os.environ.get("XLA_FLAGS", "")
    try:
        jax.devices()
    finally:
        if saved is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = saved
    return _xla_started_with


_xla_started_with = None  # the XLA flags the judge started this process's XLA with, if it did


class SharedOracleValues:
    """The oracle values shared by grading processes through ``folder`` (this machine's, see
    course/grading/oracle_values.py, or one run's): each is computed by the first process that
    needs it, while the others wait for it, and read by all of them, so that the oracle is
    computed once, not once per worker or per run. The folder is written by judges only, one
    file per value (the JSON of ``_encode``, never a pickle); a value that is not plain data
    stays in its process."""

    def __init__(self, module, folder):
        self.module, self.folder = module, folder
        self._values = {}

    def value(self, key, compute):
        if key in self._values:
            return self._values[key]
        try:
            value = self._shared(key, compute)
        except OSError as error:  # the grader's disk, not the student's answer
            raise self.module._JudgeError(f"the shared oracle values: {error}") from None
        self._values[key] = value
        return value

    def _shared(self, key, compute):
        name = hashlib.sha256(json.dumps([self.module.__name__, key]).encode()).hexdigest()
        path = os.path.join(self.folder, name + ".json")
        with open(os.path.join(self.folder, name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(path) as handle:
                    value = self.module._decode(json.load(handle))
            except (FileNotFoundError, ValueError, KeyError, TypeError):  # missing or spoiled
                encoded, value = self.module._portable(compute())
                if encoded is not None:
                    with open(path + ".partial", "w") as handle:
                        json.dump(encoded, handle)
                    os.replace(path + ".partial", path)
        return value


def share_oracle_values(module, folder):
    """Make the judge's ``module`` take its oracle values from ``folder`` and leave them there
    (see :class:`SharedOracleValues`); an empty ``folder`` keeps them in this process."""
    oracles = module._Evidence.oracles
    if folder and getattr(oracles, "folder", None) != folder:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        module._Evidence.oracles = SharedOracleValues(module, folder)


def test_sources(path):
    """``{grade_id: source}`` of the test cells of the source notebook at ``path``."""
    mtime = os.stat(path).st_mtime_ns
    cached = _sources.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    nb = nbformat.read(path, as_version=4)
    found = {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in nb.cells
             if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)}
    _sources[path] = (mtime, found)
    return found


class _CellNamespace(dict):
    """The globals a test cell runs with in the judge: the checks module and the libraries it
    uses; any other name (the student's functions) is a stand-in the judge never calls."""

    def __init__(self, module):
        super().__init__(__builtins__=builtins, adcheck=module)
        for name in ("jax", "jnp", "np"):
            if hasattr(module, name):
                self[name] = getattr(module, name)
        self._module = module

    def __missing__(self, name):
        if hasattr(builtins, name):
            return getattr(builtins, name)
        return self._module._Replayed(name)


def _records(cell):
    return [output["data"][EVIDENCE_MIME] for output in cell.get("outputs", [])
            if output.get("output_type") == "display_data"
            and EVIDENCE_MIME in output.get("data", {})]


def _stopped(cell):
    """The name of the error that ended the test cell in the kernel, if it ended with one."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            name = str(output.get("ename", ""))
            return name if _IDENTIFIER.fullmatch(name) else "Error"
    return None


def _exercise(source):
    found = re.search(r"adcheck\.check_(\w+)", source)
    return found.group(1) if found else "test"


class Verdict(typing.NamedTuple):
    """What the judge decided on one test cell: the message the student reads, and the code of
    the mistake with the message's words alone, for the class's report (course/grading/
    outcome.py reads them from the cell's metadata)."""

    passed: bool
    message: str
    mistake: str = None
    said: str = ""


def _not_judged(exercise, kind, said):
    return Verdict(False, f"{said} [mistake: {exercise}/{kind}]", f"{exercise}/{kind}", said)


def verdict(module, key, source, cell):
    """The :class:`Verdict` of one test cell: its trusted ``source`` run in the judge against
    the record the kernel left in ``cell``'s outputs."""
    evidence = module._Evidence
    evidence.pending = _records(cell)
    evidence.stopped = _stopped(cell)
    evidence.cell_key = key
    evidence.calls_in_cell = 0
    printed = io.StringIO()
    exercise = _exercise(source)
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(source, f"<test cell {key[2]}>", "exec"), _CellNamespace(module))
    except AssertionError as failure:
        mistake = getattr(failure, "mistake", None)
        return Verdict(False, str(failure), mistake if isinstance(mistake, str) else
                       f"{exercise}/unnamed", str(getattr(failure, "said", failure)))
    except module._JudgeError as error:
        return _not_judged(exercise, "error:judge", f"The grader could not judge this test "
                                                    f"cell ({error}): tell your instructor.")
    except Exception as error:  # what the student's code returned broke a check
        return _not_judged(exercise, f"error:{type(error).__name__}",
                           f"The checks stopped with {type(error).__name__} on what your code "
                           f"returned: run this test cell in your notebook to see why.")
    finally:
        evidence.pending, evidence.stopped = [], None
    if evidence.calls_in_cell == 0:
        return _not_judged(exercise, "error:judge", "This test cell runs no check the judge "
                                                    "knows.")
    return Verdict(True, printed.getvalue() or "passed\n")


class JudgeTestCells(NbGraderPreprocessor):
    """Decide every test cell of the notebook from the kernel's evidence (see the module's
    docstring), and replace its outputs by the verdict."""

    enabled = Bool(True, help="judge the test cells outside the kernel (turn off only to grade "
                              "by the kernel's own reply, as stock nbgrader does)").tag(config=True)
    checks_file = Unicode(
        "adcheck.py", help="the checks module of an assignment's source folder, which the "
                           "judge loads (it is never the student's copy)").tag(config=True)
    oracle_values = Unicode(
        help="a private folder where grading processes keep the oracle's values, so that each "
             "is computed once per machine, by the first process that needs it "
             "(course/grading/oracle_values.py); empty: once per process. Default: "
             "$ADCOURSE_ORACLE_VALUES if set, else jax-autodiff-course/oracle-values in the "
             "user's cache folder").tag(config=True)

    @default("oracle_values")
    def _default_oracle_values(self):
        from course.grading import oracle_values

        return oracle_values.default_folder()

    def preprocess(self, nb, resources):
        if not self.enabled:  # no verdicts: none the student wrote either
            for cell in nb.cells:
                cell.metadata.pop(VERDICT, None)
            return nb, resources
        about = resources.get("nbgrader", {})
        coursedir = CourseDirectory(config=self.config)
        folder = coursedir.format_path(coursedir.source_directory, ".", about["assignment"])
        sources = test_sources(os.path.join(folder, about["notebook"] + ".ipynb"))
        module = checks_module(os.path.join(folder, self.checks_file))
        from course.grading import oracle_values

        share_oracle_values(module, oracle_values.folder(self.oracle_values, about["assignment"],
                                                         module, self.log))
        for cell in nb.cells:
            if not (cell.cell_type == "code" and utils.is_grade(cell)
                    and not utils.is_solution(cell)):
                continue
            grade_id = cell.metadata["nbgrader"]["grade_id"]
            judge_cell(module, (about["assignment"], about["notebook"], grade_id),
                       sources.get(grade_id), cell)
        return nb, resources


def judge_cell(module, where, source, cell):
    """Replace the outputs of the test ``cell`` (at ``where``: assignment, notebook, grade id)
    by the verdict of its trusted ``source`` (None: the source has no such cell)."""
    if source is None:
        said = "This test cell is not in the assignment's source."
        decided = Verdict(False, said, f"{where[2].removesuffix('_tests')}/error:judge", said)
    else:
        key = (*where, hashlib.sha256(source.encode()).hexdigest())
        decided = verdict(module, key, source, cell)
    message = decided.message
    cell.outputs = ([new_output("stream", name="stdout", text=message)] if decided.passed else
                    [new_output("error", ename="AssertionError", evalue=message,
                                traceback=[f"AssertionError: {message}"])])
    cell.metadata[VERDICT] = {"passed": decided.passed, "mistake": decided.mistake,
                              "said": decided.said}
    return decided
