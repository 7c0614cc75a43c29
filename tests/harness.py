"""What the tests and the grader-quality report share: the course's notebooks, the answer
libraries graded by real nbgrader and in one kernel per notebook, and small readers."""

import dataclasses
import html
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from course.authoring import build, notebooks
from course.dev import scratch_course
from tests import answers, kernel_grading

ROOT = Path(__file__).resolve().parent.parent


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
        # (notebook, source notebook, its folder, [(student, grade_id, code)])
        self.kernel_jobs = []
        self.kernel_scores = {}  # student -> {test grade_id: (score, max_score)}, one kernel
        self.kernel_messages = {}  # student -> what its test cell said (empty: no error)
        self.kernel_verdicts = {}  # student -> the judge's Verdict on its test cell
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
                self.courses[assignment] = scratch_course.new_course(self.folder / assignment)
            scratch_course.submit(self.courses[assignment], assignment, student, nbs)
        jobs = [lambda a=a, c=c: scratch_course.autograde(c, a) for a, c in self.courses.items()]
        jobs += [lambda job=job: self._grade_in_one_kernel(*job) for job in self.kernel_jobs]
        with ThreadPoolExecutor(max_workers=len(self.courses) or 1) as pool:
            list(pool.map(lambda job: job(), jobs))
        for assignment, course in self.courses.items():
            self.scores.update(scratch_course.cell_scores(course, assignment))
        self.seconds = time.perf_counter() - start

    def _grade_in_one_kernel(self, name, source_nb, folder, items):
        for student, (score, max_score, message, verdict) in kernel_grading.grade_in_one_kernel(
                source_nb, folder, items).items():
            grade_id = next(g for s, g, _ in items if s == student)
            self.kernel_scores[student] = {self.tests_of[name][grade_id]: (score, max_score)}
            self.kernel_messages[student] = message
            self.kernel_verdicts[student] = verdict

    def said(self, student, grade_id):
        """What the grader wrote in ``student``'s test cell ``grade_id``: the verdict of the
        autograded notebook (or of the one-kernel run), for a failing test's message."""
        if student in self.kernel_messages:
            return self.kernel_messages[student] or "passed"
        for (assignment, who), nbs in self.submissions.items():
            if who != student:
                continue
            for name in nbs:
                path = (self.courses[assignment] / "autograded" / student / assignment
                        / f"{name}.ipynb")
                if not path.exists():
                    return f"(no autograded notebook at {path})"
                for cell in nbformat.read(path, as_version=4).cells:
                    if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                        return " | ".join(str(o.get("evalue") or o.get("text") or o.get("ename"))
                                          for o in cell.get("outputs", [])) or "(no output)"
        return "(not found)"

    def all_scores(self):
        """Scores of the nbgrader submissions and of the answers graded in one kernel."""
        return {**self.scores, **self.kernel_scores}


def _model_and_release(assignment, text_path):
    name = notebook_name(text_path)
    source_nb = nbformat.read(notebooks.notebook_path(text_path), as_version=4)
    release_nb = nbformat.read(ROOT / "release" / assignment / f"{name}.ipynb", as_version=4)
    return name, scratch_course.model_answers(source_nb), release_nb


def _packed(library):
    """Split answers into groups with at most one answer per exercise."""
    groups = []
    for answer in library:
        group = next((g for g in groups if answer.grade_id not in {a.grade_id for a in g}), None)
        if group is None:
            groups.append(group := [])
        group.append(answer)
    return groups


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
                       nb or scratch_course.submission(release_nb, answers_), losing, reason)

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
            nb = scratch_course.submission(release_nb, dict(model, **{wrong.grade_id: wrong.code}))
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
