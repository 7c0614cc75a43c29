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

from course import build, grading
from tests.conftest import ROOT

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "reports" / "screenshots"
ASSIGNMENT, NOTEBOOK = "01_forward_reverse", "forward_reverse"
ANSWER = "def vgrad(f, x): return jax.vjp(f, x)[1](jnp.ones_like(f(x)))[0]"
RUN_ALL_SECONDS = 600

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _require_browser():
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed; .ci/run installs Debian's chromium-driver")
    pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require_browser()
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


@contextlib.contextmanager
def jupyter_lab(root, home):
    """JupyterLab serving ``root`` on a free loopback port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
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
    return WebDriverWait(driver, seconds, poll_frequency=0.5)


def _cell(driver, text):
    """The notebook cell whose input contains ``text``."""
    for cell in driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"):
        if text in cell.find_element(By.CSS_SELECTOR, ".jp-InputArea").text:
            return cell
    raise AssertionError(f"no cell shows {text!r}")


def _outputs(cell):
    return cell.find_element(By.CSS_SELECTOR, ".jp-Cell-outputWrapper").text


def _menu(driver, menu, command):
    _wait(driver).until(EC.element_to_be_clickable(
        (By.XPATH, f"//div[contains(@class,'lm-MenuBar-itemLabel')][text()='{menu}']"))).click()
    _wait(driver).until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, f"li.lm-Menu-item[data-command='{command}']"))).click()


def _kernel_idle(driver):
    busy = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-InputPrompt")
    return not any("[*]" in prompt.text for prompt in busy) and driver.find_elements(
        By.XPATH, "//*[contains(@class,'jp-StatusBar')]//*[contains(text(),'Idle')]")


def _scroll_to(driver, element):
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory):
    course = grading.new_course(tmp_path_factory.mktemp("student") / "course")
    shutil.copytree(ROOT / "solutions", course / "solutions")
    home = tmp_path_factory.mktemp("student-home")
    with jupyter_lab(course, home) as url:
        yield url


def _open_notebook(driver, url, path):
    driver.get(f"{url}/lab/tree/{path}")
    _wait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"))
    _wait(driver, 120).until(_kernel_idle)


def test_student_runs_fills_and_validates_a_release_notebook(browser, student_lab):
    driver = browser
    _open_notebook(driver, student_lab, f"release/{ASSIGNMENT}/{NOTEBOOK}.ipynb")
    screenshot(driver, "student-1-opened")

    # Run All stops at the first cell that raises: the visible tests of the first stub.
    _menu(driver, "Run", "runmenu:run-all")
    _wait(driver, 10).until_not(_kernel_idle)
    _wait(driver, RUN_ALL_SECONDS).until(_kernel_idle)
    tests = _cell(driver, "adcheck.check_vgrad(vgrad)")
    _scroll_to(driver, tests)
    assert "AssertionError: vgrad is not implemented yet." in _outputs(tests)
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
    _wait(driver).until(lambda d: "passed" in _outputs(_cell(d, "adcheck.check_vgrad(vgrad)")))
    tests = _cell(driver, "adcheck.check_vgrad(vgrad)")
    assert "vgrad passed 2 cases." in _outputs(tests)
    _scroll_to(driver, tests)
    screenshot(driver, "student-3-answer-passes")

    _wait(driver).until(EC.element_to_be_clickable(
        (By.XPATH, "//*[contains(@class,'jp-Toolbar')]//*[normalize-space(text())='Validate']"))
    ).click()
    dialog = _wait(driver, 30).until(EC.visibility_of_element_located(
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
    _wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook mjx-container"))
    plots = _wait(driver).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, ".jp-Notebook .jp-RenderedImage img"))
    _scroll_to(driver, plots[0])
    _wait(driver).until(lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", plots[0]))
    screenshot(driver, f"notebook-{assignment}-plot")


@pytest.fixture(scope="module")
def instructor_lab(tmp_path_factory):
    course = grading.new_course(tmp_path_factory.mktemp("instructor") / "course")
    for assignment in build.assignments(course):
        build.build_release(assignment, root=course)
    source_nb = nbformat.read(
        course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    release_nb = nbformat.read(
        course / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    answers = grading.model_answers(source_nb)
    first_two = dict(list(answers.items())[:2])
    grading.submit(course, ASSIGNMENT, "ada", {NOTEBOOK: grading.submission(
        release_nb, first_two)})
    grading.autograde(course, ASSIGNMENT)
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
    cells = grading.cell_scores(course, ASSIGNMENT)["ada"].values()
    score, top = sum(s for s, _ in cells), sum(m for _, m in cells)
    assert 0 < score < top
    row = driver.find_element(By.XPATH, "//tr[.//*[contains(text(),'ada')]]")
    assert f"{score:g} / {top:g}" in row.text, row.text
