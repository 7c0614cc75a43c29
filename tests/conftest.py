"""Shared fixtures: the course rebuilt from source/, and a class graded by real nbgrader."""

import dataclasses
import html
import os
import re
import shutil
import time
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course import build, grading, notebooks  # noqa: E402
from tests import answers, kernel_grading  # noqa: E402
from tests.tiny_assignment import make_tiny_course  # noqa: E402


def source_notebooks():
    """(assignment, text path) of every notebook of the course."""
    return [(a, p) for a in build.assignments() for p in notebooks.text_sources(
        ROOT / "source" / a)]


def notebook_name(text_path):
    return notebooks.notebook_path(text_path).stem


def visible_text(html_text):
    """What a reader of an HTML page sees: no tags, entities decoded, blanks folded."""
    text = html.unescape(re.sub(r"<[^>]+>", "", html_text))
    return re.sub(r"\s+", " ", text)


def answer_to_test_cell(nb):
    """``{answer grade_id: grade_id of the test cell that follows it}``."""
    return {answer: cell.metadata["nbgrader"]["grade_id"]
            for answer, cell in notebooks.test_cells(nb).items()}


# Kernels started with this shows every deprecation, whichever module it comes from (by default
# Python shows those of the notebook's own code only).
SHOW_DEPRECATIONS = {"PYTHONWARNINGS": "always::DeprecationWarning,always::FutureWarning,"
                                       "always::PendingDeprecationWarning"}
DEPRECATION = re.compile(r"\b(Pending)?DeprecationWarning\b|\bFutureWarning\b")


def deprecations(nb):
    """``[(cell index, text)]`` of the outputs of ``nb`` that report a deprecation."""
    return [(index, output.get("text", "")) for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code" for output in cell.get("outputs", [])
            if DEPRECATION.search(output.get("text", "") or "")]


@pytest.fixture(scope="session")
def rebuilt(tmp_path_factory):
    """A copy of the course's inputs, built from scratch with the build command (its kernels
    showing every deprecation warning: see test_build)."""
    root = tmp_path_factory.mktemp("rebuilt")
    for name in ("nbgrader_config.py", "course", "source"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, symlinks=True,
                            ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
        else:
            shutil.copy(src, root / name)
    saved = dict(os.environ)
    os.environ.update(SHOW_DEPRECATIONS)
    try:
        build.build(root=root, log=lambda *_: None)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return root


class GradedClass:
    """Submissions made from the answer library, graded by real nbgrader autograde, and every
    wrong answer and alternative also graded in one kernel per notebook (tests/kernel_grading.py).

    Each assignment gets a course folder of its own, so the assignments are graded by parallel
    ``nbgrader autograde`` processes (one per assignment, each over its whole class), beside
    the notebooks' one-kernel runs.
    """

    def __init__(self, folder):
        self.folder = folder
        self.courses = {}  # assignment -> course folder
        self.expected_losses = {}  # student -> answer grade_ids that must lose points
        self.reasons = {}  # student -> what the submission does
        self.submissions = {}  # (assignment, student) -> {notebook: nb}
        self.scores = {}
        self.tests_of = {}  # notebook -> {answer grade_id: test grade_id}
        self.answers = []  # (notebook, kind, student, Answer): each library answer, where it went
        self.kernel_jobs = []  # (notebook, source notebook, its folder, [(student, grade_id, code)])
        self.kernel_scores = {}  # student -> {test grade_id: (score, max_score)}, one kernel
        self.kernel_messages = {}  # student -> what its test cell said (empty: no error)
        self.kernel_answers = {}  # student -> (kind, Answer) of the answers graded in one kernel
        self.both = []  # (notebook, Answer, nbgrader student, kernel student): graded both ways

    def add(self, assignment, student, nb_name, nb, losing=(), reason=""):
        self.submissions.setdefault((assignment, student), {})[nb_name] = nb
        self.expected_losses.setdefault(student, set()).update(
            f"{nb_name}:{grade_id}" for grade_id in losing)
        self.reasons[student] = reason

    def grade(self):
        start = time.perf_counter()
        for (assignment, student), nbs in self.submissions.items():
            if assignment not in self.courses:
                self.courses[assignment] = grading.new_course(self.folder / assignment)
            grading.submit(self.courses[assignment], assignment, student, nbs)
        jobs = [lambda a=a, c=c: grading.autograde(c, a) for a, c in self.courses.items()]
        jobs += [lambda job=job: self._grade_in_one_kernel(*job) for job in self.kernel_jobs]
        with ThreadPoolExecutor(max_workers=len(self.courses) or 1) as pool:
            list(pool.map(lambda job: job(), jobs))
        for assignment, course in self.courses.items():
            self.scores.update(grading.cell_scores(course, assignment))
        self.seconds = time.perf_counter() - start

    def _grade_in_one_kernel(self, name, source_nb, folder, items):
        for student, (score, max_score, message) in kernel_grading.grade_in_one_kernel(
                source_nb, folder, items).items():
            grade_id = next(g for s, g, _ in items if s == student)
            self.kernel_scores[student] = {self.tests_of[name][grade_id]: (score, max_score)}
            self.kernel_messages[student] = message

    def all_scores(self):
        """Scores of the nbgrader submissions and of the answers graded in one kernel."""
        return {**self.scores, **self.kernel_scores}


def _model_and_release(assignment, text_path):
    name = notebook_name(text_path)
    source_nb = nbformat.read(notebooks.notebook_path(text_path), as_version=4)
    release_nb = nbformat.read(ROOT / "release" / assignment / f"{name}.ipynb", as_version=4)
    return name, grading.model_answers(source_nb), release_nb


def _packed(library):
    """Split answers into groups with at most one answer per exercise."""
    groups = []
    for answer in library:
        group = next((g for g in groups if answer.grade_id not in {a.grade_id for a in g}), None)
        if group is None:
            groups.append(group := [])
        group.append(answer)
    return groups


_graded_classes = []  # the graded_class fixture's value, for the report at the end of the run


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    """Every submission kind of the test suite, for every notebook, graded in one batch."""
    _graded_classes.append(grade_answer_libraries(tmp_path_factory.mktemp("class")))
    return _graded_classes[-1]


_summaries = []  # (title, text) sent by pytest-xdist's workers, printed by the controller


def _own_summaries():
    """The grader-quality report (see tests/report.py) of a class graded in this process, and
    the hostile submissions' outcomes."""
    from tests import report

    found = [("grader-quality report", report.render(report.outcomes(graded)) + "\n"
              + report.timing(graded)) for graded in _graded_classes]
    hostile = sys.modules.get("tests.test_hostile")
    if hostile is not None and hostile.reports:
        from tests import hostile_class

        found.append(("hostile submissions", "\n".join(
            hostile_class.render(how, rows) for how, rows in hostile.reports)))
    return found


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller prints the summaries
        workeroutput["summaries"] = _own_summaries()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _summaries.extend(tuple(item) for item in getattr(node, "workeroutput", {}).get(
        "summaries", []))


def pytest_terminal_summary(terminalreporter):
    for title, text in _summaries + _own_summaries():
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)


def pytest_collection_modifyitems(items):
    """The class graded by real nbgrader takes longest: its tests first, so that pytest-xdist
    starts them at once and runs the other modules beside them."""
    items.sort(key=lambda item: "graded_class" not in getattr(item, "fixturenames", ()))


def grade_answer_libraries(folder, names=None):
    """Grade the model, the release, and every answer of the libraries of the notebooks
    ``names`` (all by default) with real nbgrader, in ``folder``."""
    graded = GradedClass(folder)
    for assignment, text_path in source_notebooks():
        if names is not None and notebook_name(text_path) not in names:
            continue
        name, model, release_nb = _model_and_release(assignment, text_path)
        library = answers.for_notebook(name)
        tests_of = answer_to_test_cell(release_nb)

        def add(student, replaced, losing=(), reason="", nb=None):
            answers_ = dict(model, **replaced)
            graded.add(assignment, f"{name}-{student}", name,
                       nb or grading.submission(release_nb, answers_), losing, reason)

        add("model", {}, reason="the reference answers")
        graded.add(assignment, f"{name}-untouched", name, release_nb, losing=list(tests_of),
                   reason="the release as it was handed out")
        # The first group of wrong answers and of alternatives goes through nbgrader; every
        # answer of both kinds is graded in one kernel as well (the first groups both ways).
        items = []
        for kind, library_answers in (("wrong", library.WRONG),
                                      ("alternative", library.ALTERNATIVES)):
            first = _packed(library_answers)[0]
            add(f"{kind}0", {a.grade_id: a.code for a in first},
                [a.grade_id for a in first] if kind == "wrong" else [],
                "; ".join(a.reason for a in first))
            for k, answer in enumerate(library_answers):
                student = f"{name}-kernel-{kind}{k}"
                items.append((student, answer.grade_id, answer.code))
                graded.expected_losses[student] = (
                    {f"{name}:{answer.grade_id}"} if kind == "wrong" else set())
                graded.reasons[student] = answer.reason
                graded.kernel_answers[student] = (kind, answer)
                if answer in first:
                    graded.answers.append((name, kind, f"{name}-{kind}0", answer))
                    graded.both.append((name, answer, f"{name}-{kind}0", student))
                else:
                    graded.answers.append((name, kind, student, answer))
        graded.kernel_jobs.append((name, nbformat.read(notebooks.notebook_path(text_path),
                                                       as_version=4), text_path.parent, items))
        for k, tampering in enumerate(library.TAMPERING):
            add(f"tampering{k}", {a.grade_id: a.code for a in tampering.answers},
                [a.grade_id for a in tampering.answers], tampering.reason)
            graded.answers += [(name, "tampering", f"{name}-tampering{k}",
                                dataclasses.replace(a, reason=tampering.reason))
                               for a in tampering.answers]
        for how in ("deleted", "emptied"):
            wrong = library.WRONG[0]
            nb = grading.submission(release_nb, dict(model, **{wrong.grade_id: wrong.code}))
            test_id = tests_of[wrong.grade_id]
            if how == "deleted":
                nb.cells = [c for c in nb.cells
                            if c.metadata.get("nbgrader", {}).get("grade_id") != test_id]
            else:
                for cell in nb.cells:
                    if cell.metadata.get("nbgrader", {}).get("grade_id") == test_id:
                        cell.source = ""
            add(f"{how}-tests", {}, [wrong.grade_id], f"{how} the test cell of a wrong answer",
                nb=nb)
        graded.tests_of[name] = tests_of
    graded.grade()
    return graded


@pytest.fixture(scope="session")
def tiny_course(tmp_path_factory):
    """A course of the tiny assignment only (see tests/tiny_assignment.py), generated by nbgrader,
    with a short cell timeout so that an endless loop ends soon."""
    return make_tiny_course(tmp_path_factory.mktemp("tiny") / "course", ROOT)
