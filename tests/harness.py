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


def normalized_lines(text):
    """The lines of ``text`` long enough to be telling, blanks folded."""
    return {re.sub(r"\s+", " ", line.strip()) for line in text.splitlines()
            if len(line.strip()) > 12}


def secret_lines(*regions):
    """Lines of the regions ``regions`` of the source notebooks (``"HIDDEN TESTS"``,
    ``"SOLUTION"``) that students never see: lines not also in a release notebook."""
    secret, released = set(), set()
    for assignment, text_path in source_notebooks():
        source = text_path.read_text()
        for region in regions:
            for text in re.findall(rf"### BEGIN {region}\n(.*?)### END {region}", source,
                                   re.DOTALL):
                secret |= normalized_lines(text)
        release_nb = nbformat.read(ROOT / "release" / assignment / f"{notebook_name(text_path)}"
                                   ".ipynb", as_version=4)
        for cell in release_nb.cells:
            released |= normalized_lines(cell.source)
    return secret - released


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


@dataclasses.dataclass(eq=False)
class Graded:
    """One submission of the graded class: a notebook graded by real ``nbgrader autograde``, or
    one library answer graded in its notebook's one kernel (tests/kernel_grading.py)."""

    student: str  # its id: forward_reverse-wrong0 (nbgrader), forward_reverse-kernel-wrong3
    notebook: str
    assignment: str
    kind: str  # model, untouched, wrong, alternative, tampering, deleted-tests, emptied-tests
    reason: str  # what it does
    losing: frozenset  # the test cells (grade ids) that must lose points; all others keep them
    in_kernel: bool = False
    answers: tuple = ()  # ((kind, Answer), ...): the library answers it holds
    nb: object = None  # nbgrader: the submitted notebook
    twin: "Graded" = None  # one kernel: the nbgrader submission that holds the same answer
    scores: dict = dataclasses.field(default_factory=dict)  # test grade id -> (score, max)
    message: str = ""  # one kernel: what its test cell's error said (empty: none)
    verdict: object = None  # one kernel: the judge's Verdict on its test cell


class GradedClass:
    """Submissions made from the answer library, graded by real nbgrader autograde, and every
    wrong answer and alternative also graded in one kernel per notebook: a list of
    :class:`Graded` records.

    Each assignment gets a course folder of its own, so the assignments are graded by parallel
    ``nbgrader autograde`` processes (one per assignment, each over its whole class), beside
    the notebooks' one-kernel runs.
    """

    def __init__(self, folder):
        self.folder = folder
        self.records = []
        self.courses = {}  # assignment -> course folder
        self.tests_of = {}  # notebook -> {answer grade_id: test grade_id}
        self.kernel_jobs = []  # (notebook, source notebook, its folder, [Graded])
        self.seconds = None

    def add(self, record):
        self.records.append(record)
        return record

    def record(self, student):
        return next(r for r in self.records if r.student == student)

    def by_nbgrader(self):
        return [r for r in self.records if not r.in_kernel]

    def in_one_kernel(self):
        return [r for r in self.records if r.in_kernel]

    def grade(self):
        start = time.perf_counter()
        for record in self.by_nbgrader():
            if record.assignment not in self.courses:
                self.courses[record.assignment] = scratch_course.new_course(
                    self.folder / record.assignment)
            scratch_course.submit(self.courses[record.assignment], record.assignment,
                                  record.student, {record.notebook: record.nb})
        jobs = [lambda a=a, c=c: scratch_course.autograde(c, a) for a, c in self.courses.items()]
        jobs += [lambda job=job: self._grade_in_one_kernel(*job) for job in self.kernel_jobs]
        with ThreadPoolExecutor(max_workers=len(self.courses) or 1) as pool:
            list(pool.map(lambda job: job(), jobs))
        scores = {}
        for assignment, course in self.courses.items():
            scores.update(scratch_course.cell_scores(course, assignment))
        for record in self.by_nbgrader():
            record.scores = scores.get(record.student, {})
        self.seconds = time.perf_counter() - start

    def _grade_in_one_kernel(self, name, source_nb, folder, records):
        items = [(r.student, r.answers[0][1].grade_id, r.answers[0][1].code) for r in records]
        graded = kernel_grading.grade_in_one_kernel(source_nb, folder, items)
        for record in records:
            score, max_score, record.message, record.verdict = graded[record.student]
            record.scores = {self.tests_of[name][record.answers[0][1].grade_id]:
                             (score, max_score)}

    def said(self, record, grade_id):
        """What the grader wrote in the test cell ``grade_id`` of ``record``: the verdict of
        its autograded notebook (or of the one-kernel run), for a failing test's message."""
        if record.in_kernel:
            return record.message or "passed"
        path = (self.courses[record.assignment] / "autograded" / record.student
                / record.assignment / f"{record.notebook}.ipynb")
        if not path.exists():
            return f"(no autograded notebook at {path})"
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                return " | ".join(str(o.get("evalue") or o.get("text") or o.get("ename"))
                                  for o in cell.get("outputs", [])) or "(no output)"
        return "(not found)"


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


def _without_test_cell(nb, test_id, how):
    """``nb`` with its test cell ``test_id`` deleted or emptied."""
    def is_it(cell):
        return cell.metadata.get("nbgrader", {}).get("grade_id") == test_id

    if how == "deleted":
        nb.cells = [cell for cell in nb.cells if not is_it(cell)]
    for cell in filter(is_it, nb.cells):
        cell.source = ""
    return nb


def grade_answer_libraries(folder, names=None):
    """Grade the model, the release, and every answer of the libraries of the notebooks
    ``names`` (all by default) with real nbgrader, in ``folder``."""
    graded = GradedClass(folder)
    for assignment, text_path in source_notebooks():
        if names is not None and notebook_name(text_path) not in names:
            continue
        name, model, release_nb = _model_and_release(assignment, text_path)
        library = answers.for_notebook(name)
        tests_of = graded.tests_of[name] = answer_to_test_cell(release_nb)

        def add(student, kind, reason, held=(), nb=None, losing=None, unanswered=()):
            """An nbgrader submission: the model, with the answers ``held`` (kind, Answer)
            in place (or the notebook ``nb``), and the exercises ``unanswered`` left as
            released (they lose their points)."""
            code = dict(model, **{answer.grade_id: answer.code for _, answer in held})
            for grade_id in unanswered:
                code.pop(grade_id)
            if losing is None:
                losing = {tests_of[a.grade_id] for k, a in held if k != "alternative"}
            losing = set(losing) | {tests_of[grade_id] for grade_id in unanswered}
            return graded.add(Graded(
                f"{name}-{student}", name, assignment, kind, reason, frozenset(losing),
                answers=held, nb=nb or scratch_course.submission(release_nb, code)))

        def after(grade_ids):
            """The exercises after the last of ``grade_ids``, in the notebook's order."""
            order = list(tests_of)
            return order[max(order.index(g) for g in grade_ids) + 1:]

        add("model", "model", "the reference answers")
        graded.add(Graded(f"{name}-untouched", name, assignment, "untouched",
                          "the release as it was handed out", frozenset(tests_of.values()),
                          nb=release_nb))
        # The first group of wrong answers and of alternatives goes through nbgrader; every
        # answer of both kinds is graded in one kernel as well (the first groups both ways).
        in_kernel = []
        for kind, library_answers in (("wrong", library.WRONG),
                                      ("alternative", library.ALTERNATIVES)):
            first = _packed(library_answers)[0]
            twin = add(f"{kind}0", kind, "; ".join(a.reason for a in first),
                       held=tuple((kind, a) for a in first))
            for k, answer in enumerate(library_answers):
                in_kernel.append(graded.add(Graded(
                    f"{name}-kernel-{kind}{k}", name, assignment, kind, answer.reason,
                    frozenset({tests_of[answer.grade_id]} if kind == "wrong" else ()),
                    in_kernel=True, answers=((kind, answer),),
                    twin=twin if answer in first else None)))
        graded.kernel_jobs.append((name, nbformat.read(notebooks.notebook_path(text_path),
                                                       as_version=4), text_path.parent,
                                   in_kernel))
        # A tampering submission (and one whose test cell is gone) answers the exercises up to
        # the last one it attacks as the model does, and leaves those after it as released:
        # their test cells run after every cell of the attack, so they must lose their points
        # whatever it did, and grading the model's answers there again would only repeat the
        # model submission.
        for k, tampering in enumerate(library.TAMPERING):
            add(f"tampering{k}", "tampering", tampering.reason, held=tuple(
                ("tampering", dataclasses.replace(a, reason=tampering.reason))
                for a in tampering.answers),
                unanswered=after([a.grade_id for a in tampering.answers]))
        wrong = library.WRONG[0]
        for how in ("deleted", "emptied"):
            unanswered = after([wrong.grade_id])
            code = {g: c for g, c in model.items() if g not in unanswered}
            nb = scratch_course.submission(release_nb, dict(code, **{wrong.grade_id: wrong.code}))
            add(f"{how}-tests", f"{how}-tests", f"{how} the test cell of a wrong answer",
                nb=_without_test_cell(nb, tests_of[wrong.grade_id], how),
                losing={tests_of[wrong.grade_id]}, unanswered=unanswered)
    graded.grade()
    return graded
