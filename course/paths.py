"""Where the course is, and how nbgrader sees it: the course folder (``ROOT``), nbgrader's
command line, its configuration and gradebook as the course's ``nbgrader_config.py`` sets them
(so ``NBGRADER_DB_URL`` is honoured everywhere), and an assignment's release notebooks."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


class NbgraderFailed(RuntimeError):
    """An nbgrader command exited with an error; the message carries everything it printed."""

    def __init__(self, args, result):
        super().__init__(f"nbgrader {' '.join(map(str, args))} failed (exit status "
                         f"{result.returncode}):\n{result.stdout}{result.stderr}")
        self.result = result


def nbgrader(*args, root=ROOT, check=True):
    """Run an nbgrader command in the course at ``root`` (its nbgrader_config.py applies);
    raise :class:`NbgraderFailed` when it fails, unless ``check`` is false."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run([sys.executable, "-m", "nbgrader", *map(str, args)], cwd=root,
                            capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise NbgraderFailed(args, result)
    return result


def load_config(course):
    """The configuration ``nbgrader_config.py`` of the course at ``course`` gives."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


def db_url(course):
    """The gradebook of the course at ``course``: its SQLite file, or ``NBGRADER_DB_URL``."""
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=load_config(course)).db_url


def release_notebooks(course, assignment):
    """``{name: notebook}`` of an assignment's release, as students received it."""
    return {p.stem: nbformat.read(p, as_version=4)
            for p in sorted((Path(course) / "release" / assignment).glob("*.ipynb"))}


def graded_cells(course, assignment):
    """The grade ids of an assignment's graded cells, in the order students meet them: the
    order of every table, plot and report of the assignment."""
    from nbgrader import utils

    return [cell.metadata["nbgrader"]["grade_id"]
            for nb in release_notebooks(course, assignment).values() for cell in nb.cells
            if utils.is_grade(cell)]
