"""The course website (course/authoring/site.py): built offline, read in Chromium, with math
drawn, figures loaded, launch links well formed, and no answer anywhere."""

import html
import re
import subprocess
from urllib.parse import parse_qs, urlparse

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course.authoring import build, site
from tests.harness import ROOT, normalized_lines, secret_lines

REPO = "https://github.com/example-course/adjax-student"
SCREENSHOTS = ROOT / "reports" / "screenshots"


@pytest.fixture(scope="module")
def website(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "html"
    return out, site.build_site(out, repo_url=REPO, log=lambda line: None)


def _text(path):
    """What a page holds as text: tags gone, entities decoded, lines kept."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(errors="replace")))


def test_a_page_per_notebook_and_a_home_page(website):
    out, pages = website
    assert [str(p.relative_to(out)) for p in pages] == [
        f"{a}/{p.name.removesuffix('.ipynb')}.html" for a in build.assignments()
        for p in sorted((ROOT / "release" / a).glob("*.ipynb"))]
    home = (out / "index.html").read_text()
    for page in pages:
        assert str(page.relative_to(out)) in home, page
    for assignment, topics in site._topics(ROOT).items():
        assert html.escape(topics.split(",")[0].split("`")[0]) in home, assignment


def test_the_readmes_site_command_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### The website"):]
    command = re.search(r"```bash\n(.*?)\n```", section, re.DOTALL).group(1)
    assert command.startswith(".venv/bin/python -m course site ../adjax-site --repo-url ")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", command.replace(
        "../adjax-site", str(tmp_path / "adjax-site"))], cwd=ROOT, capture_output=True,
        text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "colab.research.google.com/github/OWNER/adjax-student/blob/main/" in (
        tmp_path / "adjax-site" / "01_forward_reverse" / "forward_reverse.html").read_text()


def test_no_answer_hidden_test_or_output_of_an_answer_is_on_the_site(website):
    out, _ = website
    secrets = secret_lines("SOLUTION", "HIDDEN TESTS")
    files = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".html", ".txt", ".js",
                                                                       ".ipynb", ".json")]
    assert len(files) > 10
    for path in files:
        found = secrets & normalized_lines(_text(path))
        assert not found, f"{path.relative_to(out)} holds {sorted(found)[:3]}"
    for source in (out / "_sources").rglob("*.ipynb"):  # what the pages were made from
        outputs = [o for cell in nbformat.read(source, as_version=4).cells
                   for o in cell.get("outputs", [])]
        assert outputs, source
        assert not [o for o in outputs if o.output_type == "error"
                    or "Traceback" in str(o.get("text", ""))], f"{source.name}: an error shown"


def test_only_cells_that_need_no_answer_keep_their_outputs():
    def code(source, grade_id=None, solution=False, outputs=()):
        cell = new_code_cell(source, outputs=list(outputs))
        if grade_id:
            cell.metadata["nbgrader"] = {"grade_id": grade_id, "solution": solution,
                                         "grade": not solution, "locked": not solution}
        return cell

    printed = [nbformat.v4.new_output("stream", name="stdout", text="out\n")]
    solved = new_notebook(cells=[
        new_markdown_cell("# A"), code("x = 2", outputs=printed),
        code("def f(x):\n    return 2 * x", "f", solution=True, outputs=printed),
        code("check(f)", "f_tests", outputs=printed),
        code("y = f(x)\nprint(y)", outputs=printed), code("z = y + 1", outputs=printed),
        code("print(x)", outputs=printed), code("y = 3\nprint(y)", outputs=printed),
        code("print(y)", outputs=printed)])
    release = nbformat.from_dict(solved)
    release.cells[2].source = "def f(x):\n    raise NotImplementedError()"
    shown = site.shown_outputs(release, solved)
    kept = [bool(cell.get("outputs")) for cell in shown.cells if cell.cell_type == "code"]
    # x = 2 | answer | test | reads f | reads y (from f) | reads x | y rebound | reads new y
    assert kept == [True, False, False, False, False, True, True, True]
    assert "NotImplementedError" in shown.cells[2].source


def test_the_site_reads_in_a_browser(website, browser):
    out, pages = website
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.get((out / "index.html").as_uri())
    assert "Advanced Automatic Differentiation in JAX" in browser.title
    browser.save_screenshot(str(SCREENSHOTS / "site-home.png"))
    figures = 0
    for page in pages:
        browser.get(page.as_uri())
        drawn = browser.execute_script(
            "return Array.from(document.querySelectorAll('math')).filter("
            "m => m.getBoundingClientRect().width > 0).length")
        assert drawn > 20, f"{page.name}: {drawn} formulas drawn"
        images = browser.execute_script(
            "return Array.from(document.querySelectorAll('main img')).map("
            "i => [i.complete, i.naturalWidth])")
        assert all(done and width > 0 for done, width in images), f"{page.name}: {images}"
        source = out / "_sources" / page.parent.name / f"{page.stem}.ipynb"
        assert len(images) == sum("image/png" in o.get("data", {}) for cell in nbformat.read(
            source, as_version=4).cells for o in cell.get("outputs", [])), page.name
        figures += len(images)
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('a')).map(a => a.href).filter("
            "h => h.includes('colab.research') || h.includes('mybinder'))")
        name = f"{page.parent.name}/{page.stem}.ipynb"
        assert len(links) == 2, f"{page.name}: {links}"
        for link in links:
            url = urlparse(link)
            assert url.scheme == "https" and (link.endswith(name) or parse_qs(url.query)[
                "labpath"] == [name]), link
        if page == pages[0]:
            browser.save_screenshot(str(SCREENSHOTS / f"site-{page.stem}.png"))
    assert figures >= 3, "the figures of demo cells that need no answer are missing"
