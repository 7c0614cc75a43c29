"""nbgrader configuration of the course; nbgrader commands read it when run from this folder."""

import os
import sys
import warnings

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    ClearOutput,
    GetGrades,
    IgnorePattern,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from course.checks.judge import JudgeTestCells  # noqa: E402
from course.grading.preprocessors import (  # noqa: E402
    DeduplicateIdsCompletely,
    ExecuteSurvivingCrashes,
    HideTestTracebacks,
    LimitOutputSize,
    NoteRefusedFiles,
    RepairCellMetadata,
    SetupCellFirst,
)
from course.grading.submission_files import install_autograde_guard  # noqa: E402

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

# nbgrader's Gradebook.add_submission links a new submission to its student and assignment
# before adding it to the session; SQLAlchemy 2 warns about that on autoflush, and the objects
# are added right after. Hide that warning only, in every command run from this folder.
warnings.filterwarnings("ignore", message=r"Object of type <Submitted\w+> not in session")

c.CourseDirectory.course_id = "jax-autodiff"
c.CourseDirectory.root = HERE
# The notebooks' text sources (*.pct.py) hold the solutions: never copy them to students.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
                            "*.pct.py"]

# Where students fetch and submit: NBGRADER_EXCHANGE_ROOT if set; on a JupyterHub (its servers
# and services have a hub API token), the shared /srv/nbgrader/exchange; elsewhere exchange/ in
# this folder, so that the whole cycle can be tried on a laptop, without root.
if os.environ.get("NBGRADER_EXCHANGE_ROOT"):
    c.Exchange.root = os.environ["NBGRADER_EXCHANGE_ROOT"]
elif os.environ.get("JUPYTERHUB_API_TOKEN"):
    c.Exchange.root = "/srv/nbgrader/exchange"
else:
    c.Exchange.root = os.path.join(HERE, "exchange")
    # Every student of this exchange is your own account: collect may not check who owns what
    # (on a shared exchange it refuses a submission whose folder is not its student's).
    c.CollectApp.check_owner = False
# Only regular files of a submission get in (course/grading/submission_files.py): collect copies
# regular files of one name only, never following a link; before autograde (and formgrader, and
# `python -m course grade`) reads a submission, links, hard links, FIFOs, devices and sockets are
# removed from it, each named in the student's grading notes (NoteRefusedFiles, below).
c.ExchangeFactory.collect = "course.grading.exchange.CollectRegularFiles"
install_autograde_guard()
# Feedback of submissions placed in submitted/ by hand is named, not a crash of the whole class.
c.ExchangeFactory.release_feedback = "course.grading.exchange.ReleaseFeedbackExplained"
# grades.csv leaves the scores empty where a student submitted nothing (nbgrader writes 0.0).
c.ExportApp.plugin_class = "course.grading.export.CsvExportBlankWhenUnsubmitted"

c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE: replace this line and the next with your solution.\n"
              "raise NotImplementedError()"
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE: replace this text with your answer."

# The gradebook: this folder's SQLite file, or a shared database (PostgreSQL) for several
# graders, e.g. NBGRADER_DB_URL=postgresql://grader@dbhost/jax_autodiff
if os.environ.get("NBGRADER_DB_URL"):
    c.CourseDirectory.db_url = os.environ["NBGRADER_DB_URL"]

# Compiling JAX programs takes seconds; a stuck cell still ends and scores zero.
c.Execute.timeout = 180
c.Execute.interrupt_on_timeout = True
c.Execute.error_on_timeout = {
    "ename": "CellTimeoutError",
    "evalue": "this cell ran past the grader's time limit and was stopped (an endless loop?)",
    "traceback": ["CellTimeoutError: this cell ran past the grader's time limit and was stopped"],
}

# Every grading kernel runs in a bubblewrap sandbox (course/grading/sandbox.py): it sees a copy of
# its own submission and nothing of the course, has no network and its own PID namespace. Without
# bubblewrap grading stops and says what to install; "none" grades without isolation (only where
# each grading worker is a container of its own). Its limits: max_processes, file_size_limit_mb,
# open_files_limit, cpu_time_limit, tmp_size_mb, connection_size_kb, importable_files (help:
# course/grading/preprocessors.py).
c.ExecuteSurvivingCrashes.sandbox = "bwrap"

# Grading one notebook, the kernel's start and every cell together, stops after this many
# seconds (the cell then running is interrupted): the cells still to run score zero, and the
# batch goes on to the next submission.
c.ExecuteSurvivingCrashes.total_timeout = 600

# A grading kernel may reserve this much memory (MiB). Past it, the allocation fails in that
# cell (MemoryError), so one student cannot push the machine into its out-of-memory killer.
# Allow for the workers: `python -m course grade --workers N` runs N kernels at once.
c.ExecuteSurvivingCrashes.memory_limit_mb = 8192

# Test cells are decided by the judge (course/judge.py), outside the student's kernel, from the
# evidence the checks report: the kernel's own reply and outputs decide nothing.
# nbgrader's autograde steps, except that a cell pasted twice no longer stops grading, that a
# dying kernel costs the cells from there on (not the whole submission), and that one huge
# output is cut by size as well as by lines (see course/grading/preprocessors.py).
# Broken nbgrader metadata of a submitted cell is repaired from the source notebook, or the cell
# graded as ordinary code, first: nbgrader would stop the whole class on an unknown schema_version.
c.Autograde.sanitize_preprocessors = [
    RepairCellMetadata, NoteRefusedFiles, ClearOutput, DeduplicateIdsCompletely,
    OverwriteKernelspec, OverwriteCells, SetupCellFirst, CheckCellMetadata]
c.Autograde.autograde_preprocessors = [
    ExecuteSurvivingCrashes, JudgeTestCells, IgnorePattern, ClearMetadataPreprocessor,
    LimitOutputSize,
    SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]

# A test cell deleted from a submission is put back (and so graded); an emptied or edited one is
# overwritten with the original, since test cells are locked.
c.OverwriteCells.add_missing_cells = True

# Feedback shows neither hidden tests nor the tracebacks that would quote them.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, HideTestTracebacks,
                                    CSSHTMLHeaderPreprocessor]
# The feedback page renders its math without a CDN (MathML), wraps long error messages, and names
# its table of contents' entries after the exercises (course/grading/feedback.py).
c.GenerateFeedback.exporter_class = "course.grading.feedback.FeedbackExporter"

# `nbgrader zip_collect`: files of an LMS download are named like Canvas's, e.g.
# lovelaceada_12345_67890_forward_reverse.ipynb (student id, LMS ids, the file's own name).
# nbgrader matches the pattern against the file's whole path. Other LMSs name files otherwise:
# set the pattern to match.
c.FileNameCollectorPlugin.named_regexp = (
    r"(?i).*/(?P<student_id>[^_/]+)(?:_late)?_\d+_\d+_(?P<file_id>[^/]+)$")
