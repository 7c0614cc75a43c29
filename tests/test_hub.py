"""The course on a real JupyterHub (deploy/jupyterhub_config.py), in headless Chromium.

The hub runs as root and starts each user's JupyterLab as a system account of its own, which
the fixture creates: an instructor, two students with nbgrader's Assignments panel, and the
grader account that owns the course folder and runs formgrader as the hub service
``jax-autodiff``, which the instructor opens through the hub. One term of the tiny assignment
(tests/tiny_assignment.py) goes through the hub's exchange: release, fetch, answer, Validate,
submit, collect, autograde in the sandbox, feedback. Then a student, through her own server,
tries to read what is not hers, and tries to reach formgrader through the hub. Screenshots of
each step are saved in ``reports/screenshots/hub-*.png``.
"""

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests import tiny_assignment
from tests.harness import ROOT
from tests.test_browser import _cell, _menu, _open_notebook, _wait, screenshot

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

DEPLOY = ROOT / "deploy"
PROXY = ROOT / ".ci/node/node_modules/.bin/configurable-http-proxy"
INSTRUCTOR, ADA, GRACE = "hub-instructor", "hub-ada", "hub-grace"
# The grader account of deploy/ (COURSE_GRADER), and its formgrader service (deploy's COURSE).
GRADER, SERVICE = "hub-grader", "jax-autodiff"
STUDENTS = (ADA, GRACE)
PASSWORD = "a shared password for the test"
ASSIGNMENT, NOTEBOOK = tiny_assignment.ASSIGNMENT, "tiny"
RIGHT = {name: f"def {name}(x): return {body}" for name, body in
         tiny_assignment.EXERCISES.items()}
ANSWERS = {ADA: RIGHT, GRACE: dict(RIGHT, square="def square(x): return 2 * x")}
SCORES = {ADA: "Score: 3.0 / 3.0", GRACE: "Score: 2.0 / 3.0"}
SPAWN_SECONDS = 180


def _require_hub():
    """Skip, or fail in CI, unless this machine can run the hub as the test needs."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the test creates system users and runs the hub as root)")
    for command in ("useradd", "userdel", "runuser", "bwrap"):
        if not shutil.which(command):
            missing.append(command)
    if not PROXY.exists():
        missing.append(f"{PROXY.relative_to(ROOT)} (npm install --prefix .ci/node "
                       "configurable-http-proxy@4, as .ci/run does)")
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        missing.append("jupyterhub (requirements.txt)")
    if missing:
        _missing(", ".join(missing))


def _missing(what):
    message = f"the hub test needs {what}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _python_for_users(folder):
    """A Python that the hub's users can run, with this environment's packages: this one, or,
    where it lives in a folder they cannot enter (a pyenv under /root), a copy of it in
    ``folder`` (its files hard-linked, its binary told to find libpython next to itself) that
    reads this environment's site-packages and shares its Jupyter data (share/, etc/)."""
    reachable = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c", ""],
                               capture_output=True)
    if reachable.returncode == 0:
        return sys.executable
    if not shutil.which("patchelf"):
        _missing(f"patchelf (apt-get install patchelf), to copy {sys.executable} where the "
                 "hub's users can run it")
    base, version = Path(sys.base_prefix), "python{}.{}".format(*sys.version_info)
    copy = folder / "python"
    (copy / "bin").mkdir(parents=True)
    shutil.copy2(base / "bin" / version, copy / "bin" / version)
    subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/../lib", str(copy / "bin" / version)],
                   check=True)
    (copy / "lib").mkdir()
    for library in (base / "lib").glob("libpython*.so*"):
        _link_or_copy(library, copy / "lib" / library.name)
    shutil.copytree(base / "lib" / version, copy / "lib" / version, copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns("site-packages", "__pycache__"))
    # Real paths: the grading sandbox shows the kernel these folders under their real path only.
    ours = [os.path.realpath(p) for p in sys.path
            if p.endswith("site-packages") and os.path.isdir(p)]
    (copy / "lib" / version / "site-packages").mkdir()
    (copy / "lib" / version / "site-packages" / "course-environment.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
    for data in ("share", "etc"):
        (copy / data).symlink_to(Path(sys.prefix).resolve() / data)
    return str(copy / "bin" / version)


def _link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


@contextlib.contextmanager
def system_users(names):
    """System accounts with home folders (mode as useradd makes them); removed at the end, with
    any process of theirs that is left."""
    created = []
    try:
        for name in names:
            if subprocess.run(["id", "-u", name], capture_output=True).returncode == 0:
                subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
            created.append(name)
        yield
    finally:
        for name in created:
            _end_processes_of(pwd.getpwnam(name).pw_uid)
            subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


def _end_processes_of(uid):
    """Stop the processes of ``uid`` (the test's accounts), found by their ids."""
    for _ in range(20):
        pids = [int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and _owner(p) == uid]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        time.sleep(0.5)


def _owner(proc):
    try:
        return proc.stat().st_uid
    except FileNotFoundError:
        return None


class Hub:
    """A running hub: its URL, an admin token (a service of the test's config) and its log."""

    def __init__(self, url, token, log):
        self.url, self.token, self.log = url, token, log

    def log_tail(self, lines=60):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def request(self, path, method="GET", body=None, token=None):
        """``(status, text)`` of a request to the hub or a user's server, with a token."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"token {token or self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def user_token(self, name):
        status, text = self.request(f"/hub/api/users/{name}/tokens", "POST",
                                    {"note": "the hub test", "expires_in": 3600})
        assert status == 201, text
        return json.loads(text)["token"]

    def wait_for_service(self, name):
        """Wait until the hub's service ``name`` answers an API request through the hub."""
        deadline = time.monotonic() + SPAWN_SECONDS
        while self.request(f"/services/{name}/api/status")[0] != 200:
            assert time.monotonic() < deadline, f"the service {name} never started\n" \
                + self.log_tail()
            time.sleep(1)

    def start_servers(self, names):
        """Start the users' servers together and wait until each answers."""
        for name in names:
            status, text = self.request(f"/hub/api/users/{name}/server", "POST", {})
            assert status in (201, 202), f"{name}: {status} {text}\n{self.log_tail()}"
        deadline = time.monotonic() + SPAWN_SECONDS
        for name in names:
            while True:
                status, text = self.request(f"/hub/api/users/{name}")
                if json.loads(text).get("servers", {}).get("", {}).get("ready"):
                    break
                assert time.monotonic() < deadline, f"{name}'s server never started\n" \
                    + self.log_tail()
                time.sleep(1)


@contextlib.contextmanager
def jupyterhub(folder, python):
    """The hub of deploy/jupyterhub_config.py on free loopback ports, with the test's users,
    a shared password, and an exchange in ``folder``; yields a :class:`Hub`."""
    state = folder / "state"
    state.mkdir(mode=0o700)
    token = uuid.uuid4().hex
    port = _free_port()
    config = state / "jupyterhub_config.py"
    config.write_text(f"""
c = get_config()
load_subconfig({str(DEPLOY / "jupyterhub_config.py")!r})
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{_free_port()}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{_free_port()}"
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/jupyterhub_cookie_secret"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {PASSWORD!r}
c.Authenticator.allowed_users = {set((INSTRUCTOR,) + STUDENTS)!r}
c.JupyterHub.load_groups = {{"instructors": {{"users": [{INSTRUCTOR!r}]}}}}
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.start_timeout = c.Spawner.http_timeout = {SPAWN_SECONDS}
(course,) = [s for s in c.JupyterHub.services if s["name"] == {SERVICE!r}]
course.update(url="http://127.0.0.1:{_free_port()}",
              command=[{python!r}, "-m", "jupyterhub.singleuser"])
c.JupyterHub.services.append({{"name": "hub-test", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{"name": "admin", "services": ["hub-test"]}})
""")
    log = state / "jupyterhub.log"
    env = dict(os.environ, NBGRADER_EXCHANGE_ROOT=str(folder / "exchange"),
               COURSE_GRADER=GRADER)
    env.pop("NBGRADER_EXECUTION", None)
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)],
                                   cwd=state, env=env, stdout=out, stderr=subprocess.STDOUT)
    hub = Hub(f"http://127.0.0.1:{port}", token, log)
    try:
        for _ in range(120):
            with contextlib.suppress(OSError):
                if hub.request("/hub/api/")[0] == 200:
                    break
            assert process.poll() is None, hub.log_tail()
            time.sleep(0.5)
        yield hub
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _grader_course(home):
    """The tiny course in the grader account's course folder (deploy's COURSE), owned by that
    account, its assignment generated and in the gradebook."""
    course = tiny_assignment.make_tiny_course(home / SERVICE, ROOT)
    account = pwd.getpwnam(home.name)
    for folder, _, names in os.walk(course):
        for path in [folder] + [os.path.join(folder, name) for name in names]:
            os.lchown(path, account.pw_uid, account.pw_gid)
    return course


@pytest.fixture(scope="module")
def hub():
    """The hub of deploy/ with its four accounts, the grader's course in place, the formgrader
    service answering and every server started; the accounts, their homes and the hub's
    folder go at the end."""
    _require_hub()
    folder = Path(tempfile.mkdtemp(prefix="course-hub-"))
    folder.chmod(0o755)  # the users reach their Python and the exchange through it
    try:
        python = _python_for_users(folder)
        with system_users((GRADER, INSTRUCTOR) + STUDENTS):
            _grader_course(Path(pwd.getpwnam(GRADER).pw_dir))
            with jupyterhub(folder, python) as running:
                running.exchange = folder / "exchange"
                running.wait_for_service(SERVICE)
                running.start_servers((INSTRUCTOR,) + STUDENTS)
                yield running
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _log_in(driver, hub, name):
    """Log ``name`` in on the hub's login page; return the URL of their server."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})  # every path's, not the page's
    driver.get(f"{hub.url}/hub/login")
    _wait(driver).until(EC.element_to_be_clickable((By.ID, "username_input"))).send_keys(name)
    driver.find_element(By.ID, "password_input").send_keys(PASSWORD)
    driver.find_element(By.ID, "login_submit").click()
    _wait(driver, SPAWN_SECONDS).until(lambda d: f"/user/{name}/lab" in d.current_url)
    return f"{hub.url}/user/{name}"


def _formgrader(driver, hub, page):
    """Open formgrader's ``page`` in the course's service, through the hub."""
    driver.get(f"{hub.url}/services/{SERVICE}/formgrader/{page}")
    return _wait(driver).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "table")))


def _formgrader_action(driver, row_text, action):
    """Click the ``action`` link (release, collect, autograde, ...) of the formgrader row that
    shows ``row_text``; return the text of the dialog that reports the result."""
    row = _wait(driver).until(EC.presence_of_element_located(
        (By.XPATH, f"//tr[.//*[contains(text(),'{row_text}')]]")))
    _wait(driver).until(lambda d: row.find_elements(By.CSS_SELECTOR, f".{action} a"))
    row.find_element(By.CSS_SELECTOR, f".{action} a").click()
    dialog = _wait(driver, 300).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, ".modal.in .modal-body, .modal.show .modal-body")))
    # The dialog fades in: its text is complete once it names the outcome.
    _wait(driver).until(lambda d: "Success" in dialog.text or "rror" in dialog.text)
    return dialog.text


def _assignments_panel(driver):
    _menu(driver, "Nbgrader", "nbgrader:open-assignment-list")
    return _wait(driver).until(EC.visibility_of_element_located(
        (By.XPATH, "//*[contains(text(),'Released assignments')]/ancestor::div[1]/..")))


def _click_button(driver, label, seconds=120):
    _wait(driver, seconds).until(EC.element_to_be_clickable(
        (By.XPATH, f"//button[normalize-space()='{label}']"))).click()


def _answer(driver, answers):
    """Replace each exercise's stub with its answer, then save the notebook."""
    for name, code in answers.items():
        cell = _cell(driver, f"def {name}(x):")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", cell)
        editor = cell.find_element(By.CSS_SELECTOR, ".cm-content")
        editor.click()
        editor.send_keys(Keys.CONTROL, "a")
        editor.send_keys(Keys.DELETE)
        editor.send_keys(code)
    editor.send_keys(Keys.CONTROL, "s")
    _wait(driver).until_not(lambda d: d.find_elements(
        By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden).jp-mod-dirty, "
        ".lm-TabBar-tab.lm-mod-current.jp-mod-dirty"))


def _validate(driver):
    _wait(driver).until(EC.element_to_be_clickable(
        (By.XPATH, "//*[contains(@class,'jp-Toolbar')]//*[normalize-space(text())='Validate']"))
    ).click()
    dialog = _wait(driver, 120).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, ".jp-Dialog-content")))
    _wait(driver, 300).until(lambda d: "Success" in dialog.text or "failed" in dialog.text)
    return dialog.text


def _student_submits(driver, hub, name, step):
    server = _log_in(driver, hub, name)
    _assignments_panel(driver)
    _click_button(driver, "Fetch")
    _wait(driver).until(EC.element_to_be_clickable(
        (By.XPATH, "//button[normalize-space()='Submit']")))
    screenshot(driver, f"hub-{step:02d}-{name}-fetched")
    _open_notebook(driver, server, f"{ASSIGNMENT}/{NOTEBOOK}.ipynb")
    _answer(driver, ANSWERS[name])
    validation = _validate(driver)
    screenshot(driver, f"hub-{step + 1:02d}-{name}-validated")
    driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-footer button").click()
    _assignments_panel(driver)
    _click_button(driver, "Submit")
    _wait(driver, 120).until(lambda d: d.find_elements(
        By.XPATH, "//*[contains(text(),'Submitted assignments')]/ancestor::div[1]/.."
        "//*[contains(@class,'list_item')]"))
    screenshot(driver, f"hub-{step + 2:02d}-{name}-submitted")
    return validation


def _feedback_page(driver, hub, name, step):
    server = _log_in(driver, hub, name)
    _assignments_panel(driver)
    _click_button(driver, "Fetch Feedback", seconds=120)
    home = Path(pwd.getpwnam(name).pw_dir)
    pattern = str(home / ASSIGNMENT / "feedback/*" / f"{NOTEBOOK}.html")
    for _ in range(240):
        if glob.glob(pattern):
            break
        time.sleep(0.5)
    screenshot(driver, f"hub-{step:02d}-{name}-feedback-fetched")
    assert glob.glob(pattern), f"no feedback for {name}\n{hub.log_tail(150)}"
    (page,) = glob.glob(pattern)
    driver.get(f"{server}/files/{Path(page).relative_to(home)}")
    _wait(driver).until(lambda d: "Score" in d.find_element(By.TAG_NAME, "body").text)
    screenshot(driver, f"hub-{step + 1:02d}-{name}-feedback")
    return driver.find_element(By.TAG_NAME, "body").text


def run_as(hub, name, code):
    """Run ``code`` in a new kernel of ``name``'s server, through the hub with a token of
    theirs; return what it printed."""
    import websocket

    token = hub.user_token(name)
    status, text = hub.request(f"/user/{name}/api/kernels", "POST", {"name": "python3"}, token)
    assert status == 201, text
    kernel = json.loads(text)["id"]
    socket_url = hub.url.replace("http", "ws") + f"/user/{name}/api/kernels/{kernel}/channels"
    connection = websocket.create_connection(socket_url, timeout=120,
                                             header=[f"Authorization: token {token}"])
    message_id = uuid.uuid4().hex
    connection.send(json.dumps({
        "header": {"msg_id": message_id, "msg_type": "execute_request", "username": name,
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False}}))
    printed = []
    try:
        while True:
            message = json.loads(connection.recv())
            if message.get("parent_header", {}).get("msg_id") != message_id:
                continue
            kind = message["msg_type"]
            if kind == "stream":
                printed.append(message["content"]["text"])
            elif kind == "error":
                printed.append("\n".join(message["content"]["traceback"]))
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                return "".join(printed)
    finally:
        connection.close()
        hub.request(f"/user/{name}/api/kernels/{kernel}", "DELETE", token=token)


FORGE_SUBMISSION = f"""
import subprocess, sys
done = subprocess.run([sys.executable, "-m", "nbgrader", "submit", {ASSIGNMENT!r},
                       "--student={GRACE}"], capture_output=True, text=True)
print(done.returncode, done.stderr[-2000:])
"""


def test_a_term_on_the_hub(browser, hub):
    """Release from formgrader (the hub's service); each student fetches, answers, validates
    and submits; Ada also submits her notebook in Grace's name; the instructor collects (Ada's
    forgery is refused), autogrades in the sandbox and releases feedback; each student reads
    their own score."""
    driver = browser
    _log_in(driver, hub, INSTRUCTOR)
    _formgrader(driver, hub, "manage_assignments")
    assert driver.current_url.startswith(f"{hub.url}/services/{SERVICE}/formgrader/")
    _wait(driver).until(EC.presence_of_element_located(
        (By.XPATH, f"//tr[.//*[contains(text(),'{ASSIGNMENT}')]]")))
    screenshot(driver, "hub-01-instructor-formgrader")
    released = _formgrader_action(driver, ASSIGNMENT, "release")
    screenshot(driver, "hub-02-instructor-released")
    assert "Successfully released" in released, released

    validations = {name: _student_submits(driver, hub, name, step)
                   for name, step in ((ADA, 3), (GRACE, 6))}
    assert "Success" in validations[ADA], validations[ADA]
    assert "square(3) should be 9" in validations[GRACE], validations[GRACE]

    forged = run_as(hub, ADA, FORGE_SUBMISSION)
    assert forged.startswith("0"), forged  # nbgrader submit takes any --student name

    _log_in(driver, hub, INSTRUCTOR)
    _formgrader(driver, hub, "manage_assignments")
    collected = _formgrader_action(driver, ASSIGNMENT, "collect")
    screenshot(driver, "hub-09-instructor-collected")
    assert f"names the student {GRACE} but {ADA} submitted it" in collected, collected
    for name in STUDENTS:
        _formgrader(driver, hub, f"manage_submissions/{ASSIGNMENT}")
        graded = _formgrader_action(driver, name, "autograde")
        assert "Successfully autograded" in graded, graded
        assert "bwrap" in graded and "--unshare-net" in graded, "graded outside the sandbox"
    table = _formgrader(driver, hub, f"manage_submissions/{ASSIGNMENT}")
    for name, score in ((ADA, "3 / 3"), (GRACE, "2 / 3")):
        _wait(driver).until(lambda d: score in table.find_element(
            By.XPATH, f".//tr[.//*[contains(text(),'{name}')]]").text)
    screenshot(driver, "hub-10-instructor-autograded")
    _formgrader(driver, hub, "manage_assignments")
    generated = _formgrader_action(driver, ASSIGNMENT, "generate-feedback")
    assert "Successfully generated" in generated, generated
    _formgrader(driver, hub, "manage_assignments")
    sent = _formgrader_action(driver, ASSIGNMENT, "release-feedback")
    assert "Successfully released" in sent, sent
    screenshot(driver, "hub-11-instructor-feedback-released")

    ada = _feedback_page(driver, hub, ADA, 12)
    assert SCORES[ADA] in ada and "square passed" in ada, ada
    grace = _feedback_page(driver, hub, GRACE, 14)
    assert SCORES[GRACE] in grace and "square(3) should be 9" in grace, grace


READ = """
import glob
for path in {paths!r}:
    try:
        with open(path) as f:
            f.read(1)
        print("READ", path)
    except OSError as error:
        print(type(error).__name__, path)
"""


def test_a_student_reads_nothing_of_the_others(hub):
    """Through Ada's own server (a kernel of hers), Grace's home, the grader account's course
    folder and gradebook, and the exchange's inbound (its listing and Grace's submission)
    are out of reach."""
    grace_home = Path(pwd.getpwnam(GRACE).pw_dir)
    secret = grace_home / "notes.txt"
    secret.write_text("Grace's own notes")
    shutil.chown(secret, GRACE, GRACE)
    course = Path(pwd.getpwnam(GRADER).pw_dir) / SERVICE
    inbound = hub.exchange / "jax-autodiff" / "inbound"
    targets = [secret, grace_home, course / "gradebook.db",
               course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", inbound]
    targets += [path for path in glob.glob(str(inbound / f"{GRACE}+*/{NOTEBOOK}.ipynb"))
                if Path(path).owner() == GRACE]  # not the one Ada submitted in her name
    printed = run_as(hub, ADA, READ.format(paths=[str(p) for p in targets]) + f"""
import os
try:
    print("LISTED", os.listdir({str(inbound)!r}))
except OSError as error:
    print(type(error).__name__, "listing inbound")
""")
    assert "READ" not in printed and "LISTED" not in printed, printed
    assert printed.count("PermissionError") >= len(targets), printed


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _hops(driver, url):
    """``[(status, url), ...]``: a GET of ``url`` with every cookie of the browser (the login
    of whoever is logged in), each redirect followed by hand and recorded."""
    cookies = driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
    header = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
    opener = urllib.request.build_opener(_NoRedirect)
    hops = []
    for _ in range(10):
        request = urllib.request.Request(url, headers={"Cookie": header})
        try:
            with opener.open(request, timeout=60) as response:
                hops.append((response.status, url))
                return hops
        except urllib.error.HTTPError as error:
            hops.append((error.code, url))
            if error.code not in (301, 302, 303, 307, 308):
                return hops
            url = urllib.parse.urljoin(url, error.headers["Location"])
    return hops


def test_a_student_cannot_reach_formgrader(browser, hub):
    """Ada's server has no formgrader, the instructor's server refuses her, and the formgrader
    service refuses her: her token there, and her login to the hub in her browser (the hub's
    OAuth refuses the service her)."""
    ada = hub.user_token(ADA)
    for path in (f"/user/{ADA}/formgrader", f"/user/{ADA}/formgrader/api/assignments"):
        assert hub.request(path, token=ada)[0] == 404, path
    service = f"/services/{SERVICE}"
    for path in (f"/user/{INSTRUCTOR}/api/contents", f"/user/{INSTRUCTOR}/api/kernels",
                 f"{service}/formgrader", f"{service}/formgrader/api/assignments",
                 f"{service}/api/contents/gradebook.db"):
        assert hub.request(path, token=ada)[0] == 403, path
    driver = browser
    server = _log_in(driver, hub, ADA)
    driver.get(f"{server}/formgrader")
    _wait(driver).until(lambda d: "404" in d.find_element(By.TAG_NAME, "body").text)
    screenshot(driver, "hub-16-student-no-formgrader")
    # Her login is good for the hub, not for the service: the service sends her to the hub's
    # OAuth, which refuses her.
    for path in (f"{service}/formgrader", f"{service}/formgrader/api/assignments"):
        hops = _hops(driver, hub.url + path)
        assert [status for status, _ in hops] == [302, 403], hops
        assert urllib.parse.urlsplit(hops[-1][1]).path == "/hub/api/oauth2/authorize", hops
    driver.get(f"{hub.url}{service}/formgrader")
    _wait(driver).until(lambda d: "403" in d.find_element(By.TAG_NAME, "body").text)
    assert "/hub/api/oauth2/authorize" in driver.current_url, driver.current_url
    assert not driver.find_elements(By.CSS_SELECTOR, "table"), "formgrader showed her a table"
    screenshot(driver, "hub-17-student-refused-formgrader-service")
    driver.get(f"{hub.url}/hub/home")
    _wait(driver).until(EC.presence_of_element_located((By.TAG_NAME, "body")))
    assert not driver.find_elements(By.CSS_SELECTOR, f"a[href*='{service}']")


def test_the_instructor_grades_in_the_service_only(browser, hub):
    """The instructor's own server has no formgrader any more (404); the hub's home page
    links the instructor to the service."""
    instructor = hub.user_token(INSTRUCTOR)
    for path in (f"/user/{INSTRUCTOR}/formgrader",
                 f"/user/{INSTRUCTOR}/formgrader/api/assignments"):
        assert hub.request(path, token=instructor)[0] == 404, path
    assert hub.request(f"/services/{SERVICE}/formgrader/api/assignments",
                       token=instructor)[0] == 200
    driver = browser
    server = _log_in(driver, hub, INSTRUCTOR)
    driver.get(f"{server}/formgrader")
    _wait(driver).until(lambda d: "404" in d.find_element(By.TAG_NAME, "body").text)
    screenshot(driver, "hub-18-instructor-no-formgrader-in-own-server")
    driver.get(f"{hub.url}/hub/home")
    _wait(driver).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, f"a[href*='/services/{SERVICE}/']")))
