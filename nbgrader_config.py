"""nbgrader configuration of the course; nbgrader commands read it when run from this folder."""

import os
import sys

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from course.nbgrader_ext import HideTestTracebacks  # noqa: E402

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "jax-autodiff"
c.CourseDirectory.root = HERE
# The notebooks' text sources (*.pct.py) hold the solutions: never copy them to students.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
                            "*.pct.py"]

# Where students fetch and submit: a shared folder on a JupyterHub, set by the deployment.
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE_ROOT", "/srv/nbgrader/exchange")

c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE: replace this line and the next with your solution.\n"
              "raise NotImplementedError()"
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE: replace this text with your answer."

# Compiling JAX programs takes seconds; a stuck cell still ends and scores zero.
c.Execute.timeout = 180
c.Execute.interrupt_on_timeout = True

# A test cell deleted from a submission is put back (and so graded); an emptied or edited one is
# overwritten with the original, since test cells are locked.
c.OverwriteCells.add_missing_cells = True

# Feedback shows neither hidden tests nor the tracebacks that would quote them.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, HideTestTracebacks,
                                    CSSHTMLHeaderPreprocessor]
