"""nbgrader preprocessors of the course, registered in nbgrader_config.py.

They make a bad submission cost its author points, never the batch: a kernel that dies is
recorded in the notebook instead of aborting the student's grading, a kernel cannot take more
than its share of memory, a kernel cannot fail to start because a parallel worker took its port,
and huge outputs are cut.
"""

import functools
import os
import shutil
import tempfile

from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_output
from traitlets import CaselessStrEnum, Integer

from nbgrader import utils
from nbgrader.preprocessors import DeduplicateIds, Execute, LimitOutput, NbGraderPreprocessor


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


class DeduplicateIdsCompletely(DeduplicateIds):
    """nbgrader's DeduplicateIds, fixed: of a cell pasted twice, the last copy is graded and
    the others become ordinary cells.

    nbgrader 0.9.6 leaves ``"nbgrader": {}`` on the other copies, on which OverwriteCells (with
    ``add_missing_cells``) fails with ``KeyError: 'grade_id'``, and the student is not graded.
    """

    def preprocess_cell(self, cell, resources, index):
        cell, resources = super().preprocess_cell(cell, resources, index)
        if cell.metadata.get("nbgrader") == {}:
            del cell.metadata["nbgrader"]
        return cell, resources


def _error(ename, evalue):
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _limit_data_memory(limit_bytes):
    """Runs in the kernel's process before it starts: cap its data memory (RLIMIT_DATA)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, limit_bytes))


class ExecuteSurvivingCrashes(Execute):
    """nbgrader's Execute, except that a kernel dying (``os._exit``, a segfault) does not abort
    the student's grading, that a kernel's memory is capped, and that on POSIX systems the
    grader talks to its kernel over private Unix sockets.

    The cell that killed the kernel gets a ``KernelDied`` error; every later code cell gets a
    ``NotRun`` error, so its tests score zero (a test cell without an error would score full
    marks). Cells that ran before keep their results. The same notebook always grades the same.

    The cap is the kernel's RLIMIT_DATA, on POSIX systems: an allocation past it fails at once
    with ``MemoryError`` (NumPy, Python) or ``RESOURCE_EXHAUSTED`` (JAX), in that cell only,
    instead of pushing the grading machine into swap or its out-of-memory killer.

    Over TCP, jupyter_client picks free ports, closes them, and the kernel binds them a moment
    later: a kernel started at the same time by another worker can take one in between, and the
    student's grading fails with ``ZMQError: Address already in use``. Unix sockets in a folder
    of the kernel's own have no such race.
    """

    memory_limit_mb = Integer(
        8192, help="memory (RLIMIT_DATA) one grading kernel may reserve, in MiB; -1: no limit. "
                   "Thread stacks count: allow about 10 MiB per core beyond what notebooks need."
    ).tag(config=True)

    kernel_transport = CaselessStrEnum(
        ["tcp", "ipc"], "ipc" if os.name == "posix" else "tcp",
        help="how the grader talks to its kernel: ipc (Unix sockets) or tcp (localhost ports)"
    ).tag(config=True)

    _ipc_dir = None

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if self.kernel_transport == "ipc":
            self._ipc_dir = tempfile.mkdtemp(prefix="nbgrader-kernel-")
            km.transport = "ipc"
            km.ip = os.path.join(self._ipc_dir, "socket")
        return km

    def start_new_kernel(self, **kwargs):
        if self.memory_limit_mb > 0 and os.name == "posix":
            kwargs.setdefault("preexec_fn", functools.partial(
                _limit_data_memory, self.memory_limit_mb * 2**20))
        return super().start_new_kernel(**kwargs)

    def preprocess(self, nb, resources=None, km=None):
        self.died_in_cell = None
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if self._ipc_dir:
                shutil.rmtree(self._ipc_dir, ignore_errors=True)
                self._ipc_dir = None

    def preprocess_cell(self, cell, resources, index):
        if self.died_in_cell is not None:
            if cell.cell_type == "code":
                cell.outputs = [_error("NotRun", f"not run: the kernel died in cell "
                                                 f"{self.died_in_cell + 1}, before this one")]
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self.died_in_cell = index
            cell.outputs.append(_error(
                "KernelDied", "the kernel died while running this cell (os._exit, a crash, "
                              "or running out of memory); the cells after it were not run"))
            return cell, resources


class LimitOutputSize(LimitOutput):
    """nbgrader's LimitOutput (which counts lines), plus a cap on the characters of any one
    output, so that a single huge line or a huge repr cannot bloat the graded notebook."""

    max_chars = Integer(
        50_000, help="maximum characters of one text output (-1: no limit)"
    ).tag(config=True)
    max_data_chars = Integer(
        2_000_000, help="maximum characters of one image or other encoded output (-1: no limit)"
    ).tag(config=True)

    def _cut(self, text):
        if self.max_chars < 0 or len(text) <= self.max_chars:
            return text
        return text[:self.max_chars] + f"\n... Output truncated: {len(text):,} characters ..."

    def preprocess_cell(self, cell, resources, index):
        cell, resources = super().preprocess_cell(cell, resources, index)
        if cell.cell_type != "code":
            return cell, resources
        for output in cell.outputs:
            if output.output_type == "stream":
                output.text = self._cut(output.text)
            elif output.output_type == "error":
                output.evalue = self._cut(output.evalue)
            elif "data" in output:
                for mime, value in list(output.data.items()):
                    if mime.startswith("text/"):
                        output.data[mime] = self._cut(value)
                    elif 0 <= self.max_data_chars < len(str(value)):
                        del output.data[mime]
                if not output.data:
                    output.data["text/plain"] = "... Output removed: it was too large ..."
        return cell, resources
