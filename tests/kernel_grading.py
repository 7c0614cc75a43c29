"""Grade many answers of one notebook in one kernel, as ``nbgrader autograde`` would grade each.

Executing a whole notebook per wrong answer costs a kernel start, ``import jax`` and every other
exercise's tests again. Here the source notebook (hidden tests included, in grading mode) runs
once, in order, in one kernel; when it reaches an exercise's answer cell it first runs each
answer to try in its place, followed by the exercise's test cell, and scores that test cell with
nbgrader's own rule (``nbgrader.utils.determine_grade``: an error or any stderr output scores
zero) after the judge (course/checks/judge.py) has decided it from the evidence the kernel
reported, as nbgrader's autograde does. Then the model answer runs and the notebook goes on.
Cells tagged demo are skipped, as the grader skips them.

So each answer meets the state a submission would give it (the model's answers to the earlier
exercises, the notebook's cells up to its own), without the sandbox: only the libraries' wrong
answers and alternatives are graded this way, never a tampering or hostile submission. The test
suite grades a representative set of them with the real nbgrader too, and checks that both
agree.
"""

import os
import shutil
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell
from nbgrader import utils

from course.authoring import demo_cells, notebooks
from course.checks import judge

CELL_TIMEOUT = 180  # as nbgrader_config.py's Execute.timeout

# Python reports a warning once per place in a kernel's life; a submission's kernel is new, so
# forget which warnings were already shown before each answer.
_FORGET_SHOWN_WARNINGS = "import warnings as _w\n_w._filters_mutated()\ndel _w"


def grade_in_one_kernel(source_nb, assignment_dir, answers):
    """``{key: (score, max_score, message, verdict)}`` of each answer in ``answers``, a list of
    ``(key, exercise grade_id, code)``, on the test cell that follows its exercise; the message
    is the last line of the test cell's error (what the feedback shows), or empty, and the
    verdict the judge's (``judge.Verdict``: its mistake code and words as data)."""
    nb = nbformat.from_dict(source_nb)
    for cell in nb.cells:
        cell.source = notebooks.SOLUTION_MARKERS.sub("", cell.source)
    by_exercise = {}
    for key, grade_id, code in answers:
        by_exercise.setdefault(grade_id, []).append((key, code))
    test_after = notebooks.test_cells(nb)
    missing = set(by_exercise) - set(test_after)
    if missing:
        raise ValueError(f"no answer cell followed by a test cell: {sorted(missing)}")

    results = {}
    checks = judge.checks_module(str(Path(assignment_dir) / "adcheck.py"))
    with tempfile.TemporaryDirectory(prefix="kernel-grading-") as cwd:
        for path in Path(assignment_dir).iterdir():
            if path.suffix == ".py" and not path.name.endswith(notebooks.TEXT_SUFFIX):
                shutil.copyfile(path, Path(cwd) / path.name)
        client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                allow_errors=True, resources={"metadata": {"path": cwd}})
        with client.setup_kernel(env={**os.environ, "NBGRADER_EXECUTION": "autograde"}):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or demo_cells.is_demo(cell):
                    continue
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                for key, code in by_exercise.get(grade_id, []):
                    client.execute_cell(new_code_cell(_FORGET_SHOWN_WARNINGS), index)
                    client.execute_cell(new_code_cell(code), index)
                    test = nbformat.from_dict(test_after[grade_id])
                    client.execute_cell(test, index)
                    verdict = judge.judge_cell(
                        checks, ("kernel-grading", str(assignment_dir), grade_id),
                        test_after[grade_id].source, test)
                    errors = [o for o in test.outputs if o.output_type == "error"]
                    message = f"{errors[0].ename}: {errors[0].evalue}" if errors else ""
                    results[key] = (*utils.determine_grade(test), message, verdict)
                client.execute_cell(cell, index)
    return results

