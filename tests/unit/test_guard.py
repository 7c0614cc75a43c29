"""course/checks/guard.py: setup() chooses XLA's faster-compiling CPU emitters, which only
works if nothing before it has started XLA, and keeps compiled programs in an unbounded cache."""

import os
import subprocess
import sys
import textwrap

import jaxlib

from course import paths
from course.authoring import build
from course.checks import guard


def test_no_checks_module_starts_xla_when_imported():
    script = textwrap.dedent("""
        import importlib.util, sys
        from jax._src import xla_bridge
        for index, path in enumerate(sys.argv[1:]):
            spec = importlib.util.spec_from_file_location(f"adcheck_{index}", path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            if xla_bridge.backends_are_initialized():
                sys.exit(f"importing {path} started XLA")
    """)
    bundles = [str(paths.ROOT / "source" / a / "adcheck.py") for a in build.assignments()]
    run = subprocess.run([sys.executable, "-c", script, *bundles], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_faster_emitters_are_asked_for_unless_xla_flags_choose(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    guard._compile_faster()
    assert guard._COMPILE_FASTER in os.environ["XLA_FLAGS"].split()
    assert "--xla_force_host_platform_device_count=2" in os.environ["XLA_FLAGS"]

    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    guard._compile_faster()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_use_fusion_emitters=true"


def test_only_a_grading_kernel_asks_for_unoptimised_machine_code(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    guard._compile_faster()
    assert guard._GRADING_COMPILES_FASTER not in os.environ["XLA_FLAGS"].split()

    monkeypatch.delenv("XLA_FLAGS")
    guard._compile_faster(grading=True)
    assert os.environ["XLA_FLAGS"].split() == [guard._COMPILE_FASTER,
                                               guard._GRADING_COMPILES_FASTER]

    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=2")
    guard._compile_faster(grading=True)
    assert os.environ["XLA_FLAGS"].split() == ["--xla_backend_optimization_level=2",
                                               guard._COMPILE_FASTER]


def test_another_jaxlib_gets_no_flag_it_might_not_know(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(jaxlib, "__version__", "0.0.1")
    guard._compile_faster()
    assert "XLA_FLAGS" not in os.environ


def test_the_compilation_cache_is_unbounded_and_a_torn_entry_is_a_quiet_miss(tmp_path):
    """JAX's bounded cache reads every entry's access time at each write (n * N file reads for
    n programs into N entries); the unbounded one writes each entry once and keeps no access
    times. An entry another kernel is still writing reads as a miss: the program is compiled
    again and the student sees no warning."""
    script = textwrap.dedent("""
        import os, sys, warnings
        import jax, jax.numpy as jnp, numpy as np
        from course.checks import guard
        guard._keep_compiled_programs()
        programs = [jax.jit(lambda x, k=k: jnp.sin(x) * k) for k in range(3)]
        first = [float(np.asarray(f(np.arange(4.0)))[1]) for f in programs]
        names = sorted(os.listdir(sys.argv[1]))
        assert len(names) == 3 and all(n.endswith("-cache") for n in names), names
        for name in names:
            with open(os.path.join(sys.argv[1], name), "r+b") as entry:
                entry.truncate(10)
        jax.clear_caches()
        with warnings.catch_warnings(record=True) as shown:  # the filters as they are
            values = [float(np.asarray(f(np.arange(4.0)))[1]) for f in programs]
        assert values == first and first[1] > 0.8, (values, first)
        assert not shown, [str(w.message) for w in shown]
    """)
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                         text=True, timeout=120, cwd=paths.ROOT,
                         env={**os.environ, "ADCOURSE_JAX_CACHE": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
