"""The student edition (course/authoring/edition.py): what students clone holds no answer, only
the files the build lists, and a start that never overwrites their work."""

import re
import shutil
import subprocess
import sys
from urllib.parse import parse_qs, urlparse

import nbformat
import pytest

from course.authoring import build, edition
from tests.harness import ROOT, normalized_lines, secret_lines

REPO = "https://github.com/example-course/adjax-student"
HUB = "https://hub.example.edu"


@pytest.fixture(scope="module")
def student_edition(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edition") / "adjax-student"
    files = edition.edition(folder, repo_url=REPO, hub_url=HUB, git=True, rebuild=False,
                            log=lambda line: None)
    return folder, files


def _every_file(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and ".git" not in p.relative_to(folder).parts)


def test_it_holds_the_listed_files_and_nothing_else(student_edition):
    folder, files = student_edition
    expected = {".gitignore", "MANIFEST.txt", "README.md", "requirements.txt", "runtime.txt",
                "start.py"}
    for assignment in build.assignments():
        expected |= {f"{assignment}/{p.name}" for p in (ROOT / "release" / assignment).iterdir()
                     if p.is_file()}
    assert files == sorted(expected) == _every_file(folder)
    assert (folder / "MANIFEST.txt").read_text().split() == files
    for name in ("source", "solutions", "tests", "course", "autograded", "nbgrader_config.py"):
        assert not (folder / name).exists(), name
    for assignment in build.assignments():
        for path in (ROOT / "release" / assignment).iterdir():
            # the bundle the answer libraries' tamperings attack (search_the_checks) is this one
            assert (folder / assignment / path.name).read_bytes() == path.read_bytes()


def test_no_solution_or_hidden_test_is_in_it(student_edition):
    """No line of a model answer or of a hidden test that the release notebooks do not show
    appears in any file of the edition: not in a checks bundle, the README or start.py."""
    folder, files = student_edition
    secrets = secret_lines("SOLUTION", "HIDDEN TESTS")
    assert len(secrets) > 100, "the source notebooks' solutions were not found"
    statements = "\n".join(cell.source for name in files if name.endswith(".ipynb")
                           for cell in nbformat.read(folder / name, as_version=4).cells)
    for name in files:
        text = (folder / name).read_text()
        found = {line for line in secrets & normalized_lines(text)
                 if not _given_by_a_statement(line, statements)
                 and not _in_a_forbidden_oracle(line, text)}
        assert not found, f"{name} holds {sorted(found)[:3]}"


# Lines a model answer shares with a checks' oracle that takes the road its exercise forbids
# (the Autodiff Puzzles' rule: the oracle is built from what the student may not use), so
# that the oracle solves nothing: {line: the oracle's function}.
FORBIDDEN_ROAD_ORACLES = {
    'h = jnp.tanh(params["W"] @ h + params["U"] @ x)': "_rnn_loss_by_loop",  # a Python loop
    "def step(_, x):": "_root64",  # Newton differentiated through its steps, not implicitly
    "return x - value / slope": "_root64",
}


def _in_a_forbidden_oracle(line, text):
    function = FORBIDDEN_ROAD_ORACLES.get(line)
    body = re.search(rf"\ndef {function}\(.*?\n(?=\S)", text, re.DOTALL) if function else None
    return body is not None and line in normalized_lines(body.group(0))


def _given_by_a_statement(line, statements):
    """Whether ``line`` names what a statement gives verbatim: ``probes = <the call that the
    statement says to make, exactly>``."""
    _, _, value = line.partition(" = ")
    return len(value) > 12 and f"`{value}`" in statements


def test_it_is_a_git_repository_of_one_commit_ready_to_push(student_edition):
    folder, files = student_edition

    def git(*args):
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                               check=True).stdout

    assert len(git("log", "--oneline").splitlines()) == 1
    assert git("status", "--porcelain") == ""
    assert sorted(git("ls-files").split()) == files
    assert git("branch", "--show-current").strip() == "main"


def test_start_copies_the_assignments_and_never_replaces_work(student_edition, tmp_path):
    folder, _ = student_edition
    copy = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(folder), str(copy)], check=True)
    first = build.assignments()[0]
    run = [sys.executable, "start.py", first]
    assert subprocess.run(run, cwd=copy, capture_output=True, text=True).returncode == 0
    [notebook] = (copy / "work" / first).glob("*.ipynb")
    notebook.write_text(notebook.read_text().replace("raise NotImplementedError()",
                                                     "return 'my answer'", 1))
    again = subprocess.run(run, cwd=copy, capture_output=True, text=True)
    assert f"kept   work/{first}/{notebook.name}" in again.stdout
    assert "my answer" in notebook.read_text()
    assert (copy / "work" / first / "adcheck.py").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=copy, capture_output=True,
                            text=True).stdout
    assert status == "", f"work/ is not ignored: {status}"


def test_students_install_the_courses_pins_of_what_notebooks_need(student_edition):
    folder, _ = student_edition
    ours = (ROOT / "requirements.txt").read_text().splitlines()
    theirs = [line for line in (folder / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert set(theirs) <= set(ours)
    assert {line.split("==")[0] for line in theirs} == set(edition.STUDENT_PACKAGES)
    for tooling in ("pytest", "nbval", "psycopg", "selenium", "ruff"):
        assert not any(line.startswith(tooling) for line in theirs), tooling
    assert (folder / "runtime.txt").read_text() == "python-3.11\n"


def test_the_readme_launches_every_notebook(student_edition):
    folder, files = student_edition
    text = (folder / "README.md").read_text()
    notebooks = [name for name in files if name.endswith(".ipynb")]
    links = re.findall(r"\[(Colab|Binder|JupyterHub)\]\(([^)]+)\)", text)
    assert len(links) == 3 * len(notebooks)
    for service, url in links:
        parsed = urlparse(url)
        assert parsed.scheme == "https" and parsed.netloc, url
        if service == "Colab":
            assert url.startswith("https://colab.research.google.com/github/example-course/"
                                  "adjax-student/blob/main/") and url.endswith(".ipynb"), url
        elif service == "Binder":
            assert url.startswith("https://mybinder.org/v2/gh/example-course/adjax-student/"
                                  "main?"), url
            assert parse_qs(parsed.query)["labpath"][0] in notebooks
        else:
            query = parse_qs(parsed.query)
            assert url.startswith(f"{HUB}/hub/user-redirect/git-pull?")
            assert query["repo"] == [REPO] and query["branch"] == ["main"]
            assert query["urlpath"][0].removeprefix("lab/tree/adjax-student/") in notebooks
    assert edition.HOSTED_INSTALL in text and "apt-get" not in text


def test_without_an_address_the_readme_has_no_launch_links(tmp_path):
    text = edition.readme(["01_x/x.ipynb"])
    assert "| `01_x/x.ipynb` | - |" in text and "colab.research" not in text


def test_an_existing_folder_is_never_written_into(tmp_path):
    (tmp_path / "mine.txt").write_text("a student's file")
    with pytest.raises(SystemExit, match="not empty"):
        edition.edition(tmp_path, rebuild=False, log=lambda line: None)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_the_readmes_edition_command_runs_as_written(tmp_path):
    """The instructors' README command, with its folder in a temporary place."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### The student edition"):]
    command = re.search(r"```bash\n(.*?)\n```", section, re.DOTALL).group(1)
    assert command.startswith(".venv/bin/python -m course edition ../adjax-student --git")
    command = command.replace("../adjax-student", str(tmp_path / "adjax-student"))
    copy = tmp_path / "course"  # the edition builds first: never in the repository under test
    copy.mkdir()
    for name in ("nbgrader_config.py", "requirements.txt", "course", "source", "release",
                 "solutions"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, copy / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, copy / name)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=copy,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "push -u origin main" in result.stdout
    assert "https://hub.example.edu/hub/user-redirect/git-pull?" in (
        tmp_path / "adjax-student" / "README.md").read_text()


OTHER_JAX = "0.6.2"  # a JAX with CUDA plugins of its own, as a hosted GPU runtime holds


def test_the_hosted_install_line_leaves_a_cpu_jax_that_runs(tmp_path):
    """The README's Colab line (``%pip`` run as ``python -m pip``), in a virtual environment
    that already holds another JAX and its CUDA plugins: then JAX 0.10.2 imports and computes
    on the CPU, and no plugin is left. (A real GPU runtime is not tested here.)"""
    venv = tmp_path / "hosted"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")

    def pip(*args):
        result = subprocess.run([python, "-m", "pip", "--disable-pip-version-check", *args],
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    pip("install", "-q", f"jax=={OTHER_JAX}", f"jaxlib=={OTHER_JAX}")
    pip("install", "-q", "--no-deps", f"jax-cuda12-plugin=={OTHER_JAX}",
        f"jax-cuda12-pjrt=={OTHER_JAX}")
    assert "jax-cuda12-plugin" in pip("list")
    for line in edition.HOSTED_INSTALL.splitlines():
        assert line.startswith("%pip ")
        pip(*line.removeprefix("%pip ").split())
    installed = pip("list", "--format=freeze")
    assert "jax==0.10.2" in installed.split() and "jaxlib==0.10.2" in installed.split()
    assert "cuda" not in installed, installed
    ran = subprocess.run([python, "-c", "import jax, jax.numpy as jnp; "
                          "print(jax.__version__, jax.devices()[0].platform, "
                          "float(jax.grad(jnp.sin)(0.0)))"],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["0.10.2", "cpu", "1.0"]
