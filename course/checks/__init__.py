"""The checks of the course's exercises, split by trust.

Students and grading kernels receive one module per assignment, ``adcheck.py``, which
:mod:`course.checks.bundle` builds from the shipped parts below, in this order:

- ``evidence``: the kernel observes, the judge decides; the record a check hands out.
- ``guard``: tamper resistance inside the kernel, and ``setup()``.
- ``calls``: calling student code, and comparing what it returned.
- ``mechanisms``: what a program is made of, which mode it differentiates in.
- ``exercise``: the ``Exercise`` runner.
- one module of declarations per assignment (``forward_reverse`` for 01_forward_reverse, ...):
  ``check_<name> = Exercise(...)``, each with its cases, oracle, form, mechanisms and named
  mistakes. An assignment's students receive its own declarations only.

Never shipped: ``bundle`` (builds ``adcheck.py``) and ``judge``, which decides every test cell
of a graded notebook in the grader's process, from the kernel's evidence, with the same
``adcheck.py`` the kernel ran, loaded in judge mode.
"""
