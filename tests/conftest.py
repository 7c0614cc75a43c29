"""Shared fixtures: the course rebuilt from source/, a class graded by real nbgrader, the tiny
course; and the hooks that print the grader-quality report at the end of a run."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from course.authoring import build
from tests.harness import ROOT, SHOW_DEPRECATIONS, grade_answer_libraries
from tests.tiny_assignment import make_tiny_course


@pytest.fixture(scope="session")
def rebuilt(tmp_path_factory):
    """A copy of the course's inputs, built from scratch with the build command (its kernels
    showing every deprecation warning: see test_build)."""
    root = tmp_path_factory.mktemp("rebuilt")
    for name in ("nbgrader_config.py", "course", "source"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, symlinks=True,
                            ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
        else:
            shutil.copy(src, root / name)
    build.build(root=root, log=lambda *_: None, env=SHOW_DEPRECATIONS)
    return root


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _require_browser():
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed; .ci/run installs Debian's chromium-driver")
    pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require_browser()
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)),
                              options=options)
    yield driver
    driver.quit()


_graded_classes = []  # the graded_class fixture's value, for the report at the end of the run


def _notebooks_wanted(items):
    """The notebooks whose answer libraries the selected tests need: each test of one answer
    names its notebook (``pytest -k our_jacfwd`` grades forward_reverse's library only); any
    other test of the graded class needs them all (None)."""
    wanted = set()
    for item in items:
        if "graded_class" not in getattr(item, "fixturenames", ()):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "notebook" not in params:
            return None
        wanted.add(params["notebook"])
    return wanted


@pytest.fixture(scope="session")
def graded_class(request, tmp_path_factory):
    """Every submission kind of the test suite, for every notebook the selected tests need,
    graded in one batch."""
    _graded_classes.append(grade_answer_libraries(tmp_path_factory.mktemp("class"),
                                                  _notebooks_wanted(request.session.items)))
    return _graded_classes[-1]


_summaries = []  # (title, text) sent by pytest-xdist's workers, printed by the controller


def _own_summaries():
    """The grader-quality report (see tests/report.py) of a class graded in this process, and
    the hostile submissions' outcomes."""
    from tests import report

    found = [("grader-quality report", report.render(report.outcomes(graded)) + "\n"
              + report.timing(graded)) for graded in _graded_classes]
    hostile = sys.modules.get("tests.test_hostile")
    if hostile is not None and hostile.reports:
        from tests import hostile_class

        found.append(("hostile submissions", "\n".join(
            hostile_class.render(how, rows) for how, rows in hostile.reports)))
    return found


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller prints the summaries
        workeroutput["summaries"] = _own_summaries()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _summaries.extend(tuple(item) for item in getattr(node, "workeroutput", {}).get(
        "summaries", []))


def pytest_terminal_summary(terminalreporter):
    for title, text in _summaries + _own_summaries():
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)


UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(items):
    """The tests of tests/unit/ are the unit tier (``pytest -m unit``, or ``pytest tests/unit``):
    no kernel, no nbgrader command, no server. The class graded by real nbgrader takes longest:
    its tests first, so that pytest-xdist starts them at once and runs the other modules beside
    them."""
    for item in items:
        if UNIT in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.unit)
    items.sort(key=lambda item: "graded_class" not in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def tiny_course(tmp_path_factory):
    """A course of the tiny assignment only (see tests/tiny_assignment.py), generated by nbgrader,
    with a short cell timeout so that an endless loop ends soon."""
    return make_tiny_course(tmp_path_factory.mktemp("tiny") / "course", ROOT)
