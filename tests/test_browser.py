"""Students and instructors in a real JupyterLab with nbgrader's extensions, in headless Chromium.

The tests start the pinned JupyterLab on loopback in a copy of the course and drive Debian's
Chromium through its chromedriver (Selenium, no browser download). Screenshots of each step
are saved in ``reports/screenshots/``.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course import paths
from course.authoring import build
from course.dev import scratch_course
from tests.harness import ROOT

SCREENSHOTS = ROOT / "reports" / "screenshots"
ASSIGNMENT, NOTEBOOK = "01_forward_reverse", "forward_reverse"
ANSWER = "def vgrad(f, x): return jax.vjp(f, x)[1](jnp.ones_like(f(x)))[0]"
WRONG_VGRAD = "def vgrad(f, x):\n    return jax.vjp(f, x)[1](jnp.ones_like(x))[0]"
RUN_ALL_SECONDS = 600
# Notebooks in background tabs stay in the page, hidden; look only at the one on screen.
NOTEBOOK_ON_SCREEN = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@contextlib.contextmanager
def jupyter_lab(root, home):
    """JupyterLab serving ``root`` on a free loopback port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exchange = home / "exchange"  # formgrader warns about a missing exchange on every page
    exchange.mkdir(exist_ok=True)
    exchange.chmod(0o777)
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               NBGRADER_EXCHANGE_ROOT=str(exchange),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    env.pop("NBGRADER_EXECUTION", None)
    news = home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = open(home / "jupyter.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
         f"--port={port}", "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=",
         "--ServerApp.password=", f"--ServerApp.root_dir={root}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError((home / "jupyter.log").read_text())
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def screenshot(driver, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _wait(driver, seconds=60):
    # JupyterLab re-renders cells while it works: an element found in one poll may be gone
    # in the next, so a stale element means "not yet", never a failure.
    return WebDriverWait(driver, seconds, poll_frequency=0.5,
                         ignored_exceptions=(StaleElementReferenceException,))


def _cell(driver, text):
    """The notebook cell whose input contains ``text``, found afresh at each poll."""
    def find(d):
        for cell in d.find_elements(By.CSS_SELECTOR, f"{NOTEBOOK_ON_SCREEN} .jp-Cell"):
            if text in cell.find_element(By.CSS_SELECTOR, ".jp-InputArea").text:
                return cell
        return False
    return _wait(driver, 30).until(find, f"no cell shows {text!r}")


def _outputs(cell):
    return cell.find_element(By.CSS_SELECTOR, ".jp-Cell-outputWrapper").text


def _wait_for_output(driver, cell_text, expected, seconds=60):
    """Wait until the cell showing ``cell_text`` prints ``expected``; return that output."""
    return _wait(driver, seconds).until(
        lambda d: (out := _outputs(_cell(d, cell_text))) and expected in out and out,
        f"the cell {cell_text!r} never printed {expected!r}")


def _menu(driver, menu, command):
    _wait(driver).until(EC.element_to_be_clickable(
        (By.XPATH, f"//div[contains(@class,'lm-MenuBar-itemLabel')][text()='{menu}']"))).click()
    _wait(driver).until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, f"li.lm-Menu-item[data-command='{command}']"))).click()


def _kernel_idle(driver):
    """No cell waits to run and the status bar says Idle, read in one script so the DOM
    cannot change between the two looks."""
    return driver.execute_script("""
        const prompts = document.querySelectorAll(arguments[0] + ' .jp-InputPrompt');
        if ([...prompts].some(p => p.textContent.includes('[*]'))) return false;
        return document.evaluate(
            "boolean(//*[contains(@class,'jp-StatusBar')]//*[contains(text(),'Idle')])",
            document, null, XPathResult.BOOLEAN_TYPE, null).booleanValue;
    """, NOTEBOOK_ON_SCREEN)


def _scroll_to(driver, element):
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory):
    course = scratch_course.new_course(tmp_path_factory.mktemp("student") / "course")
    shutil.copytree(ROOT / "solutions", course / "solutions")
    home = tmp_path_factory.mktemp("student-home")
    with jupyter_lab(course, home) as url:
        yield url


def _open_notebook(driver, url, path):
    driver.get(f"{url}/lab/tree/{path}?reset")  # reset: no tabs left from earlier tests
    _wait(driver, 120).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, f"{NOTEBOOK_ON_SCREEN} .jp-Cell"))
    _wait(driver, 120).until(_kernel_idle)


def test_student_runs_fills_and_validates_a_release_notebook(browser, student_lab):
    driver = browser
    _open_notebook(driver, student_lab, f"release/{ASSIGNMENT}/{NOTEBOOK}.ipynb")
    screenshot(driver, "student-1-opened")

    # Run All stops at the first cell that raises: the visible tests of the first stub.
    _menu(driver, "Run", "runmenu:run-all")
    _wait(driver, 10).until_not(_kernel_idle)
    _wait(driver, RUN_ALL_SECONDS).until(_kernel_idle)
    failure = _wait_for_output(driver, "adcheck.check_vgrad(vgrad)",
                               "AssertionError: vgrad is not implemented yet.")
    assert "adcheck.py" not in failure and "Cell In" in failure, failure  # no checker frames
    _scroll_to(driver, _cell(driver, "adcheck.check_vgrad(vgrad)"))
    screenshot(driver, "student-2-stub-fails")

    answer = _cell(driver, "def vgrad(f, x):")
    _scroll_to(driver, answer)
    editor = answer.find_element(By.CSS_SELECTOR, ".cm-content")
    editor.click()
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.DELETE)
    editor.send_keys(ANSWER)
    editor.send_keys(Keys.SHIFT, Keys.ENTER)  # runs the answer, selects its test cell
    _wait(driver).until(_kernel_idle)
    driver.switch_to.active_element.send_keys(Keys.SHIFT, Keys.ENTER)
    _wait_for_output(driver, "adcheck.check_vgrad(vgrad)",
                     "vgrad passed 2 cases, never forms the Jacobian and uses reverse mode.")
    _scroll_to(driver, _cell(driver, "adcheck.check_vgrad(vgrad)"))
    screenshot(driver, "student-3-answer-passes")

    _wait(driver).until(EC.element_to_be_clickable(
        (By.XPATH, "//*[contains(@class,'jp-Toolbar')]//*[normalize-space(text())='Validate']"))
    ).click()
    dialog = _wait(driver, 120).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, ".jp-Dialog-content")))
    _wait(driver, RUN_ALL_SECONDS).until(lambda d: "not implemented yet" in dialog.text)
    screenshot(driver, "student-4-validate")
    assert "vmap_mjp is not implemented yet." in dialog.text
    assert "vgrad is not implemented yet." not in dialog.text, "Validate ignored the answer"


@pytest.mark.parametrize("assignment", build.assignments())
def test_math_and_plots_render_in_jupyterlab(browser, student_lab, assignment):
    driver = browser
    (name,) = [p.name for p in (ROOT / "solutions" / assignment).glob("*.ipynb")]
    _open_notebook(driver, student_lab, f"solutions/{assignment}/{name}")
    _wait(driver).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, f"{NOTEBOOK_ON_SCREEN} mjx-container"), "no math was typeset")
    _wait(driver).until(lambda d: d.execute_script("""
        const plot = document.querySelector(arguments[0] + ' .jp-RenderedImage img');
        if (!plot) return false;
        plot.scrollIntoView({block: 'center'});
        return plot.complete && plot.naturalWidth > 0;
    """, NOTEBOOK_ON_SCREEN), "no plot appeared")
    screenshot(driver, f"notebook-{assignment}-plot")


@pytest.fixture(scope="module")
def instructor_lab(tmp_path_factory):
    course = scratch_course.new_course(tmp_path_factory.mktemp("instructor") / "course")
    for assignment in build.assignments(course):
        build.build_release(assignment, root=course)
    source_nb = nbformat.read(
        course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    release_nb = nbformat.read(
        course / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    answers = scratch_course.model_answers(source_nb)
    first_two = dict(list(answers.items())[:2])
    first_two["vgrad"] = WRONG_VGRAD  # its message is longer than the page is wide
    scratch_course.submit(course, ASSIGNMENT, "ada", {NOTEBOOK: scratch_course.submission(
        release_nb, first_two)})
    scratch_course.autograde(course, ASSIGNMENT)
    paths.nbgrader("generate_feedback", ASSIGNMENT, root=course)
    home = tmp_path_factory.mktemp("instructor-home")
    with jupyter_lab(course, home) as url:
        yield url, course


def test_instructor_sees_assignments_and_a_graded_submission(browser, instructor_lab):
    driver, (url, course) = browser, instructor_lab
    driver.get(f"{url}/formgrader/manage_assignments")
    table = _wait(driver).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, "table")))
    _wait(driver).until(lambda d: ASSIGNMENT in table.text)
    for assignment in build.assignments():
        assert assignment in table.text, f"formgrader does not list {assignment}"
    screenshot(driver, "instructor-1-assignments")

    driver.get(f"{url}/formgrader/gradebook/{ASSIGNMENT}/{NOTEBOOK}")
    _wait(driver).until(lambda d: "Submission #1" in d.find_element(By.TAG_NAME, "body").text)
    driver.find_element(By.XPATH, "//button[contains(text(),'Show All Names')]").click()
    _wait(driver).until(lambda d: "ada" in d.find_element(By.TAG_NAME, "body").text)
    screenshot(driver, "instructor-2-graded-submission")
    cells = scratch_course.cell_scores(course, ASSIGNMENT)["ada"].values()
    score, top = sum(s for s, _ in cells), sum(m for _, m in cells)
    assert 0 < score < top
    row = driver.find_element(By.XPATH, "//tr[.//*[contains(text(),'ada')]]")
    assert f"{score:g} / {top:g}" in row.text, row.text


def test_student_reads_the_feedback_offline(browser, instructor_lab):
    """The feedback page, opened from disk in a browser with no network: its math is drawn
    (MathML), the long error message wraps inside the page, and the table of contents names
    the exercises."""
    driver, (_, course) = browser, instructor_lab
    page = course / "feedback" / "ada" / ASSIGNMENT / f"{NOTEBOOK}.html"
    driver.get(page.as_uri())
    _wait(driver).until(lambda d: d.find_elements(By.ID, "toc"))
    screenshot(driver, "feedback-1-top")
    toc = driver.find_element(By.ID, "toc").text
    assert "Exercise 1: vgrad (Score: 0.0 / 2.0)" in toc, toc
    assert "Test cell" not in toc and "Comment" not in toc, toc
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)")
    assert all(url.startswith("file:") for url in fetched), fetched
    drawn = driver.execute_script("""
        return [...document.querySelectorAll('math')]
            .filter(m => m.getBoundingClientRect().width > 0).length""")
    assert drawn > 50, f"only {drawn} formulas drawn"

    message = driver.find_element(
        By.XPATH, "//pre[contains(., 'AssertionError: vgrad gave a pullback')]")
    _scroll_to(driver, message)
    screenshot(driver, "feedback-2-error-wraps")
    width, shown = driver.execute_script(
        "return [arguments[0].scrollWidth, arguments[0].clientWidth]", message)
    assert width <= shown, f"the message needs {width} px and the page shows {shown}"
    assert "the output it pulls back is a float32 array of shape (2,)" in message.text
