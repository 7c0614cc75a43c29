"""The judge's oracle values, computed once per machine, not once per grading run.

The hidden cases are the same for every student and every grading run, and so are the expected
values the judge's oracle computes on them (course/checks/judge.py). Computing them is most of
the judge's time: for the checks of 05_inside, 7.4 s of a warm autograde's 21.7 s, mostly JAX
compiling the reference programs in the grader's process. So the judge keeps each value in a
folder of the grader's, ``<assignment>--<checks>--<settings>`` under
``~/.cache/jax-autodiff-course/oracle-values`` (``JudgeTestCells.oracle_values``): the first
grading process that needs a value computes it while the others wait; every later one, in this
run or the next, reads it (``judge.SharedOracleValues``: one JSON file per value, never a
pickle).

What a value depends on besides its key (the test cell's trusted source, the check call, the
case), and so what the folder's name holds: the checks module, the versions of JAX, jaxlib,
NumPy and Python, the JAX and XLA settings of the environment, the XLA flags the judge's process
compiles with, and the machine's processor. A process whose XLA started before the judge set its
flags (a test run's, say) keeps its values to itself.

Why no student's kernel can read or change a value: the folder is the grader's (mode 0700) and
outside every folder the sandbox shows a kernel (``sandbox.host_folders``), or it is not used.
An unsandboxed kernel (``ExecuteSurvivingCrashes.sandbox = "none"``) runs as the grader and is
trusted with everything, this folder included.
"""

import hashlib
import os
import sys

from course.grading import compiled_programs

KEPT = 3  # folders kept per assignment: a new version of its checks replaces the oldest


def default_folder():
    """``$ADCOURSE_ORACLE_VALUES`` if set (empty: none), else
    ``jax-autodiff-course/oracle-values`` in the user's cache folder."""
    return compiled_programs.default_folder("ADCOURSE_ORACLE_VALUES", "oracle-values")


def settings(module):
    """What the values of the checks ``module`` depend on besides their keys, as text; None
    when it cannot be known (its process's XLA started with flags the judge did not set)."""
    flags = getattr(module, "_judge_xla_flags", "")
    if flags is None:
        return None
    versions = [sys.version]
    for name in ("jax", "jaxlib", "numpy"):
        found = sys.modules.get(name)
        versions.append(f"{name} {getattr(found, '__version__', None)}")
    environment = sorted((k, v) for k, v in os.environ.items() if k.startswith(("JAX_", "XLA_")))
    return repr((module.__name__, versions, environment, flags, compiled_programs.machine()))


def folder(base, assignment, module, log):
    """The folder of ``base`` that keeps the oracle values of ``assignment``'s checks
    ``module``, made if missing; None (values kept in this process) when there is none to use."""
    if not base:
        return None
    described = settings(module)
    if described is None:
        return None
    from course.grading import sandbox

    real = os.path.realpath(base)
    seen = [shown for shown in sandbox.host_folders() if sandbox.within(real, shown)]
    if seen:
        log.warning("Oracle values kept in this process only: %s is inside %s, which grading "
                    "kernels see", base, seen[0])
        return None
    try:
        compiled_programs.private(base)
        prefix = f"{assignment}--"
        name = prefix + hashlib.sha256(described.encode()).hexdigest()[:20]
        path = os.path.join(base, name)
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o700, exist_ok=True)
            compiled_programs.keep_newest(base, prefix, KEPT)
        return path
    except OSError as error:
        log.warning("Oracle values kept in this process only: %s", error)
        return None
