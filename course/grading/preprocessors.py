"""nbgrader preprocessors of the course, registered in nbgrader_config.py.

They make a bad submission cost its author points, never the batch or anyone else: every grading
kernel runs in a sandbox (course/grading/sandbox.py), a kernel that dies is recorded in the notebook
instead of aborting the student's grading, a kernel cannot take more than its share of memory,
processes, disk or CPU, a kernel cannot fail to start because a parallel worker took its port,
the course's setup cell runs before any student code, huge outputs are cut, and the notebook's
demo cells (benchmarks and plots, which nothing graded reads) are not run. A cell whose nbgrader
metadata is broken is repaired from the source notebook or graded as an ordinary cell, and the
files refused in a submission folder (course/grading/submission_files.py) are named in its
grading notes.
"""

import copy
import functools
import math
import os
import shutil
import stat
import tempfile
import time
import warnings

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import DeduplicateIds, Execute, LimitOutput, NbGraderPreprocessor
from traitlets import Bool, CaselessStrEnum, Integer, List, Unicode, default

from course.authoring import demo_cells
from course.grading import compiled_programs, intake, sandbox, submission_files

# A kernel starts by fork then exec, with a preexec_fn that only sets its limits. JAX, which the
# judge loads into the grader's process, warns at every such fork that the child could
# deadlock; this child runs no JAX, and the warning would print once per graded submission.
warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)


def _source_notebook(config, resources):
    """The assignment's source notebook of the notebook being graded, or None."""
    about = (resources or {}).get("nbgrader", {})
    if "assignment" not in about or "notebook" not in about:
        return None
    coursedir = CourseDirectory(config=config)
    path = os.path.join(coursedir.format_path(coursedir.source_directory, ".",
                                              about["assignment"]),
                        about["notebook"] + ".ipynb")
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return None


class RepairCellMetadata(NbGraderPreprocessor):
    """A submitted cell's nbgrader metadata is checked against the source notebook's cell of
    the same grade id, and replaced by it when they differ; a cell whose metadata names no cell
    of the source, or cannot be read at all, becomes an ordinary cell. Either way the grading
    notes say so.

    nbgrader 0.9.6 stops the whole ``nbgrader autograde`` run, for every student after this
    one, on a cell whose ``schema_version`` it does not know (``SchemaTooNewError``,
    ``SchemaTooOldError``), and fails the student on other broken metadata (a missing key, a
    grade id of another type, metadata that is not a dict). Runs first among the sanitizing
    preprocessors, before anything else reads the metadata.
    """

    # what the release adds to the source's metadata, and OverwriteCells sets again
    IGNORED_KEYS = ("checksum", "cell_type")
    ROLES = ("grade", "solution", "locked", "task")

    def preprocess(self, nb, resources):
        source = _source_notebook(self.config, resources)
        reference = {}
        for cell in (source.cells if source is not None else []):
            meta = cell.metadata.get("nbgrader")
            if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
                reference.setdefault(meta["grade_id"], meta)
        notes = []
        for index, cell in enumerate(nb.cells):
            note = self._repair(cell, index, reference, source is not None)
            if note:
                notes.append(note)
                self.log.warning("Cell %d: %s", index + 1, note)
        if notes:
            intake.add_notes(nb, notes)
        return nb, resources

    def _repair(self, cell, index, reference, have_source):
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = nbformat.NotebookNode()
            return (f"Cell {index + 1} had metadata that is not a dictionary; it was graded as an "
                    "ordinary cell.")
        if "nbgrader" not in cell.metadata:
            return None
        meta = cell.metadata["nbgrader"]
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        shown = (f"`{submission_files.shown(grade_id)}`" if isinstance(grade_id, str)
                 else f"{index + 1}")
        if isinstance(grade_id, str) and grade_id in reference:
            original = reference[grade_id]
            kept = {k: v for k, v in meta.items()
                    if k in self.IGNORED_KEYS and isinstance(v, str)}
            if {k: v for k, v in meta.items() if k not in self.IGNORED_KEYS} == original:
                return None
            cell.metadata["nbgrader"] = nbformat.from_dict({**copy.deepcopy(original), **kept})
            return (f"The nbgrader metadata of cell {shown} was changed; the original was "
                    "restored and the cell graded as handed out.")
        if not have_source and isinstance(meta, dict):
            try:  # nothing to compare with: keep metadata that nbgrader accepts
                MetadataValidator().validate_cell(copy.deepcopy(cell))
                return None
            except Exception:
                pass
        del cell.metadata["nbgrader"]
        if isinstance(meta, dict) and not any(meta.get(k) for k in self.ROLES):
            return None  # nbgrader metadata of an ordinary cell: nothing was graded there
        return (f"Cell {shown} had nbgrader metadata that matches no cell of the assignment, or "
                "cannot be read; it was graded as an ordinary cell.")


class NoteRefusedFiles(NbGraderPreprocessor):
    """The grading notes at the top of the notebook name the files of the submission folder
    that were refused (links, hard links, FIFOs, devices, sockets: see
    course/grading/submission_files.py), so that the student reads it in the feedback."""

    def preprocess(self, nb, resources):
        folder = (resources or {}).get("metadata", {}).get("path")
        notes = submission_files.notes(folder) if folder else []
        if notes:
            intake.add_notes(nb, notes)
        return nb, resources


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


class SetupCellFirst(NbGraderPreprocessor):
    """The notebook's setup cell (locked; it calls ``adcheck.setup()``, which guards the checks)
    runs before any other code: code cells a submission moved above it are moved below it.

    Student code that ran first could change what the setup cell snapshots as the trusted state.
    """

    setup_cell_id = Unicode("setup", help="grade_id of the cell that must run first").tag(
        config=True)

    def preprocess(self, nb, resources):
        ids = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells]
        if self.setup_cell_id in ids:
            index = ids.index(self.setup_cell_id)
            before, setup = nb.cells[:index], nb.cells[index]
            code = [cell for cell in before if cell.cell_type == "code"]
            if code:
                self.log.warning("Moved %d code cell(s) below the setup cell", len(code))
            nb.cells = ([c for c in before if c.cell_type != "code"] + [setup] + code
                        + nb.cells[index + 1:])
        return nb, resources


def _error(ename, evalue):
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _limit(default, help):
    """A resource limit of a grading kernel, which ``nbgrader_config.py`` may set."""
    return Integer(default, help=help).tag(config=True)


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
    of the kernel's own have no such race, and they are the sandbox's only way out.
    """

    sandbox = CaselessStrEnum(
        ["bwrap", "none"], "bwrap",
        help="where grading kernels run: bwrap (a bubblewrap sandbox, see "
             "course/grading/sandbox.py) or none (with the grader's rights, in the course "
             "folder: only where every submission is trusted, or where each grading worker is "
             "a container of its own)"
    ).tag(config=True)

    memory_limit_mb = _limit(
        8192, "memory (RLIMIT_DATA) one grading kernel may reserve, in MiB; -1: no limit. "
              "Thread stacks count: allow about 10 MiB per core beyond what notebooks need.")

    max_processes = _limit(
        256, "processes and threads a sandboxed kernel may add (RLIMIT_NPROC, beyond what "
             "its user runs already): a fork bomb stops there")

    file_size_limit_mb = _limit(
        256, "largest file a sandboxed kernel may write, in MiB (RLIMIT_FSIZE)")

    open_files_limit = _limit(
        1024, "files and sockets a sandboxed kernel may hold open (RLIMIT_NOFILE)")

    cpu_time_limit = _limit(
        1800, "CPU seconds a sandboxed kernel may use, all threads and cells together "
              "(RLIMIT_CPU); the per-cell wall-clock limit is Execute.timeout")

    importable_files = List(
        Unicode(), ["adcheck.py"],
        help="the Python files of a submission folder that a sandboxed kernel may import (the "
             "course's own, which nbgrader restores from source/); any other .py, .so or .pth "
             "file and any folder a student submits is left out of the kernel's copy, since "
             "it could stand in for a library such as numpy"
    ).tag(config=True)

    tmp_size_mb = _limit(
        512, "size of each of a sandboxed kernel's private tmpfs folders (/tmp, and the "
             "copy of its submission that is its working directory), in MiB")

    connection_size_kb = _limit(
        1024, "size of a sandboxed kernel's connection folder, in KiB: a tmpfs of its own "
              "inside the sandbox that holds its Unix sockets, its connection file and the "
              "checks' verdict, and that the grader reaches through /proc/<pid>/root; the "
              "kernel can write nowhere else but its other tmpfs folders")

    total_timeout = _limit(
        600, "wall-clock seconds to grade one notebook of a submission: the kernel's start and "
             "every cell together (Execute.timeout bounds each cell). The cell running when it "
             "runs out is interrupted; the cells after it are not run and score zero; -1: no "
             "limit")

    skip_demo_cells = Bool(
        True, help="do not run the cells that the assignment's source notebook tags `demo` "
                   "(benchmarks, plots, examples that nothing graded reads; the build checks "
                   "that). A submission's cell is skipped only if its text is exactly that of a "
                   "demo cell of the source, so editing a cell or tagging one changes nothing."
    ).tag(config=True)

    compiled_programs = Unicode(
        help="a private folder where each machine keeps, per notebook, the programs that the "
             "model solution's graded run compiled, which grading kernels then load read-only "
             "instead of compiling them (course/grading/compiled_programs.py); the first "
             "submission of a notebook on a machine pays for that run. Empty: every grading "
             "kernel compiles all its programs. Sandboxed kernels only: JAX puts the folder's "
             "path in each program's key, and every sandbox sees it at the same path."
    ).tag(config=True)

    compile_model_programs = Bool(
        True, help="when this machine has no compiled programs of a notebook yet, run the "
                   "model solution to compile them before grading it; otherwise grade it "
                   "without them. python -m course grade turns it off for a class too small "
                   "to pay that run back."
    ).tag(config=True)

    @default("compiled_programs")
    def _default_compiled_programs(self):
        return compiled_programs.default_folder()

    kernel_transport = CaselessStrEnum(
        ["tcp", "ipc"], "ipc" if os.name == "posix" else "tcp",
        help="how the grader talks to its kernel: ipc (Unix sockets) or tcp (localhost ports)"
    ).tag(config=True)

    _ipc_dir = None
    _connection_fd = None  # the sandbox's connection folder, open (see start_new_kernel_client)
    _sandbox_pid = None
    _info_pipe = None  # (read, write) ends of bwrap's --info-fd until the kernel is launched
    _deadline = None
    _warned = False
    _programs = None  # the folder of compiled programs this kernel reads
    _write_programs = False  # the model solution's run, which fills it

    def limits(self):
        return sandbox.Limits(
            memory_mb=self.memory_limit_mb, processes=self.max_processes,
            file_size_mb=self.file_size_limit_mb, open_files=self.open_files_limit,
            cpu_seconds=self.cpu_time_limit, tmp_mb=self.tmp_size_mb,
            connection_kb=self.connection_size_kb)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if self.kernel_transport == "ipc":
            # The grader's own folder (0700): its connection file and, for a sandboxed kernel,
            # links to the sockets that the kernel binds in its sandbox's connection tmpfs.
            self._ipc_dir = tempfile.mkdtemp(prefix="nbgrader-kernel-")
            km.transport = "ipc"
            km.ip = os.path.join(self._ipc_dir, "socket")
            km.connection_file = os.path.join(self._ipc_dir, "kernel.json")
        return km

    def start_new_kernel(self, **kwargs):
        if self.sandbox == "bwrap":
            if self.kernel_transport != "ipc":
                raise sandbox.SandboxUnavailable(
                    "the grading sandbox needs ExecuteSurvivingCrashes.kernel_transport = 'ipc'")
            limits = self.limits()
            # without a path (as outside nbgrader) the kernel starts in an empty folder
            submission = kwargs.get("cwd") or self.resources.get("metadata", {}).get("path")
            connection_dir, km = self._ipc_dir, self.km
            kernel_cmd = km.format_kernel_cmd
            importable = list(self.importable_files)
            info_read, info_write = os.pipe()
            self._info_pipe = (info_read, info_write)
            uid = sandbox.kernel_uid()
            programs, write_programs = self._programs, self._write_programs
            km.format_kernel_cmd = lambda extra_arguments=None: sandbox.command(
                kernel_cmd(extra_arguments), submission, connection_dir, limits,
                importable=importable, connection_file=km.connection_file, info_fd=info_write,
                uid=uid, programs=programs, write_programs=write_programs)
            kwargs["preexec_fn"] = functools.partial(
                sandbox.prepare_child, limits, km.connection_file,
                sandbox.process_limit(limits, uid), uid)
            kwargs["pass_fds"] = (info_write,)
            launch = km._async_launch_kernel  # jupyter_client's documented override point

            async def launch_and_link(cmd, **kw):
                self._info_pipe = None  # closed here, whatever happens
                try:
                    try:
                        await launch(cmd, **kw)
                    finally:
                        os.close(info_write)
                    self._sandbox_pid = sandbox.read_child_pid(info_read)
                finally:
                    os.close(info_read)
                if self._sandbox_pid is None:
                    raise sandbox.SandboxUnavailable("bubblewrap did not start the sandbox")
                sandbox.link_sockets(km, self._sandbox_pid)

            km._async_launch_kernel = launch_and_link
        else:
            if not ExecuteSurvivingCrashes._warned:
                self.log.warning("Grading kernels run WITHOUT a sandbox "
                                 "(ExecuteSurvivingCrashes.sandbox = 'none'): a submission can "
                                 "read the course folder and change other students' files.")
                ExecuteSurvivingCrashes._warned = True
            if self.memory_limit_mb > 0 and os.name == "posix":
                kwargs.setdefault("preexec_fn", functools.partial(
                    sandbox.cap_memory, self.memory_limit_mb))
        try:
            return super().start_new_kernel(**kwargs)
        finally:
            for fd in self._info_pipe or ():  # the kernel was never launched
                os.close(fd)
            self._info_pipe = None

    def _demo_sources(self, resources):
        """The text of the demo cells of the source notebook being graded."""
        source = _source_notebook(self.config, resources) if self.skip_demo_cells else None
        if source is None:
            return frozenset()
        return frozenset(cell.source for cell in source.cells if demo_cells.is_demo(cell))

    def _compiled_programs(self, resources):
        """The folder of programs compiled for this notebook (see compiled_programs.py), after
        running the model solution to fill it if this machine has none; or None."""
        about = (resources or {}).get("nbgrader", {})
        if not (self.compiled_programs and self.sandbox == "bwrap" and "assignment" in about
                and "notebook" in about):
            return None
        coursedir = CourseDirectory(config=self.config)
        folder = coursedir.format_path(coursedir.source_directory, ".", about["assignment"])
        source = os.path.join(folder, about["notebook"] + ".ipynb")
        if not os.path.isfile(source):
            return None
        files = [source] + [path for path in (os.path.join(folder, name)
                                              for name in self.importable_files)
                            if os.path.isfile(path)]

        def warm_up(programs):
            runner = type(self)(config=self.config, log=self.log, **{
                name: getattr(self, name) for name in self.class_trait_names(config=True)})
            runner._programs, runner._write_programs = programs, True
            model = compiled_programs.model_graded_path(nbformat.read(source, as_version=4))
            runner.preprocess(model, {"metadata": {"path": folder},
                                      "nbgrader": dict(about)})

        return compiled_programs.ready(self.compiled_programs, about["assignment"],
                                       about["notebook"], files,
                                       warm_up if self.compile_model_programs else None,
                                       self.log)

    def start_new_kernel_client(self):
        kc = super().start_new_kernel_client()
        if self._sandbox_pid is not None:  # the kernel answered: its sandbox is set up
            self._connection_fd = sandbox.open_connection_folder(
                self._sandbox_pid, self._ipc_dir, self.limits())
        return kc

    def _get_timeout(self, cell):
        """A cell's time limit: Execute.timeout, or less, what is left of total_timeout."""
        timeout = super()._get_timeout(cell)
        if cell is not None and self._deadline is not None:
            left = max(1, math.ceil(self._deadline - time.monotonic()))
            timeout = left if timeout is None else min(timeout, left)
        return timeout

    def _out_of_time(self):
        return self._deadline is not None and time.monotonic() >= self._deadline

    def preprocess(self, nb, resources=None, km=None):
        if not self._write_programs:  # before this notebook's clock starts
            self._programs = self._compiled_programs(resources)
        self.died_in_cell, self.stopped_how = None, "died"
        self._deadline = (time.monotonic() + self.total_timeout if self.total_timeout > 0
                          else None)
        self._demo = self._demo_sources(resources)
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if self._connection_fd is not None:
                os.close(self._connection_fd)
                self._connection_fd = None
            self._sandbox_pid = None
            if self._ipc_dir:
                shutil.rmtree(self._ipc_dir, ignore_errors=True)
                self._ipc_dir = None

    def preprocess_cell(self, cell, resources, index):
        if self.died_in_cell is not None:
            if cell.cell_type == "code":
                cell.outputs = [_error("NotRun", f"not run: the kernel {self.stopped_how} in "
                                                 f"cell {self.died_in_cell + 1}, before this one")]
            return cell, resources
        if cell.cell_type == "code" and self._out_of_time():
            # a cell cut at the limit shows Execute.error_on_timeout; those after it this
            cell.outputs = [_error("NotRun", "not run: grading this notebook reached its total "
                                             f"time limit ({self.total_timeout} s) before this "
                                             "cell")]
            cell.execution_count = None
            return cell, resources
        if (cell.cell_type == "code" and cell.source in self._demo
                and "nbgrader" not in cell.metadata):
            cell.outputs, cell.execution_count = [], None
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except CellTimeoutError:
            # interrupted at the time limit, the kernel did not answer (stuck in compiled code):
            # nbclient would fail the whole notebook; this cell and the later ones score zero
            self.died_in_cell, self.stopped_how = index, "did not stop when interrupted"
            cell.outputs.append(_error(
                "CellTimeoutError", "this cell ran past the grader's time limit and did not stop "
                                    "when interrupted; the cells after it were not run"))
            return cell, resources
        except DeadKernelError:
            self.died_in_cell, self.stopped_how = index, "died"
            verdict = self._verdict()
            cell.outputs.append(_error(*verdict) if verdict else _error(
                "KernelDied", "the kernel died while running this cell (os._exit, a crash, "
                              "or running out of memory); the cells after it were not run"))
            return cell, resources

    def _verdict(self):
        """Why the checks stopped the kernel, if they did (adcheck's guard leaves the reason in
        the connection folder, the one place the sandbox shares with the grader)."""
        if self._connection_fd is not None:  # in the sandbox's connection tmpfs
            path, folder = "grading-verdict.txt", self._connection_fd
        elif self._ipc_dir and self.sandbox != "bwrap":
            path, folder = os.path.join(self._ipc_dir, "grading-verdict.txt"), None
        else:
            return None
        try:  # the kernel wrote it: never follow a link it may have put there instead
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
            with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                text = handle.read(2000)
        except OSError:
            return None
        name, _, reason = text.partition(": ")
        if name != "GradingStopped" or not reason:
            return None
        return "GradingStopped", reason + " (the cells after this one were not run)"


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
