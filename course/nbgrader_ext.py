"""nbgrader preprocessors of the course, registered in nbgrader_config.py."""

from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor


class HideTestTracebacks(NbGraderPreprocessor):
    """Feedback keeps only the last line of a failed test cell's traceback.

    A traceback quotes the source lines of the frames it passes through, hidden tests
    included; the last line (``AssertionError: <message>``) names the mistake and is enough.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
