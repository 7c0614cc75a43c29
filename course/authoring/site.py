"""``python -m course site DIR [--repo-url URL]``: the course website, built from the student
edition with Sphinx, myst-nb and sphinx-book-theme.

Why these: Jupyter Book 2 (MyST) fetches its HTML theme from the web when it builds, so its
build fails offline; Sphinx with myst-nb and sphinx-book-theme builds offline. Math is written
as MathML when the site is built (as the feedback page does, course/grading/feedback.py), so no
page loads MathJax or anything else from the network.

Each notebook's page is its student edition (the release notebook: statements, answer cells
that still ``raise NotImplementedError()``, the visible tests), with the outputs of the cells
that need no answer, taken from the executed solution notebook: a cell loses its outputs when
it reads a name that an answer cell binds, or that such a cell binds, and the answer and test
cells never have any. With ``--repo-url`` (the published edition on GitHub) each page opens
with *Open in Colab* and *Binder* links.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbgrader import utils as nbgrader_utils

from course import paths
from course.authoring import build, demo_cells, edition, notebooks

CONF = '''
project = "Advanced Automatic Differentiation in JAX"
author = "the course's authors"
extensions = ["myst_nb", "site_math"]
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"
html_theme = "sphinx_book_theme"
html_math_renderer = "mathml"
html_title = project
html_theme_options = {"show_toc_level": 2}
exclude_patterns = ["_build"]
'''

MATH_EXTENSION = '''
"""Math as MathML, written when the page is built: nothing to fetch, no script."""
from docutils import nodes
from course.grading.feedback import mathml


def visit_math(self, node):
    self.body.append(mathml(node.astext(), False))
    raise nodes.SkipNode


def visit_displaymath(self, node):
    self.body.append(mathml(node.astext(), True))
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
'''


def shown_outputs(release_nb, solution_nb):
    """The release notebook with the outputs of the solution notebook's cells that need no
    answer (see the module's docstring)."""
    nb = nbformat.from_dict(release_nb)
    if len(nb.cells) != len(solution_nb.cells):
        raise ValueError("the release and solution notebooks have different cells")
    tainted = set()
    for cell, solved in zip(nb.cells, solution_nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        bound, free = demo_cells._cell_names(solved.source)
        if nbgrader_utils.is_solution(cell):
            tainted |= bound
            continue
        if nbgrader_utils.is_grade(cell) or free & tainted:
            tainted |= bound
            continue
        tainted -= bound
        cell.outputs = solved.get("outputs", [])
    return nb


def _title(nb):
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.splitlines()[0][2:].strip()
    return "Notebook"


def _topics(root):
    """``{assignment: its topics}``, from the README's table of topics."""
    text = (Path(root) / "README.md").read_text()
    section = text[text.index("## Topics"):].split("\n## ", 1)[0]
    return {match.group(1): match.group(2).strip() for match in re.finditer(
        r"^\| `(\w+)` \| (.*?) \|[^|]*\|$", section, re.MULTILINE)}


def _launch_cell(repo_url, path):
    links = [(service, url) for service, url in edition.launch_links(repo_url, None, path)]
    text = " ".join(f"[Open in {service}]({url})" if service == "Colab" else
                    f"[Launch on {service}]({url})" for service, url in links)
    return nbformat.v4.new_markdown_cell(text)


def pages(folder, root=paths.ROOT, repo_url=None):
    """Write the site's sources into ``folder``: a page per notebook and the home page."""
    folder, root = Path(folder), Path(root)
    entries = []
    for assignment in build.assignments(root):
        for text_path in notebooks.text_sources(root / "source" / assignment):
            name = notebooks.notebook_path(text_path).name
            release = nbformat.read(root / "release" / assignment / name, as_version=4)
            solved = nbformat.read(root / "solutions" / assignment / name, as_version=4)
            nb = shown_outputs(release, solved)
            if repo_url:
                nb.cells.insert(1, _launch_cell(repo_url, f"{assignment}/{name}"))
            (folder / assignment).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / assignment / name)
            entries.append((f"{assignment}/{name.removesuffix('.ipynb')}", _title(nb)))
    topics = _topics(root)
    rows = "\n".join(f"| [{title}]({path}.ipynb) | {topics.get(path.split('/')[0], '')} |"
                     for path, title in entries)
    toctree = "\n".join(path for path, _ in entries)
    (folder / "index.md").write_text(f"""# Advanced Automatic Differentiation in JAX

Jupyter notebooks that build automatic differentiation from the inside, with exercises whose
tests name your mistake. Read them here; to do the exercises, open a notebook on Colab or
Binder (the links at the top of each page) or on your laptop (the student edition's README).

| assignment | topics |
|---|---|
{rows}

```{{toctree}}
:hidden:
:maxdepth: 1

{toctree}
```
""")
    (folder / "conf.py").write_text(CONF)
    (folder / "site_math.py").write_text(MATH_EXTENSION)
    return [path for path, _ in entries]


def build_site(out, root=paths.ROOT, repo_url=None, log=print):
    """Build the website into ``out`` (HTML); return the pages' paths there."""
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="site-") as sources:
        entries = pages(sources, root, repo_url)
        env_path = f"{sources}:{root}"
        result = subprocess.run(
            [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
             sources, str(out)], capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": env_path})
        if result.returncode != 0:
            raise RuntimeError(f"sphinx-build failed:\n{result.stdout}{result.stderr}")
    log(f"The website is in {out}/ (open {out / 'index.html'}).")
    return [out / f"{path}.html" for path in entries]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course site", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="where to write the HTML (replaced if it exists)")
    parser.add_argument("--repo-url", help="the published student edition (https://github.com/"
                                           "OWNER/NAME): adds Colab and Binder links")
    args = parser.parse_args(argv)
    if Path(args.folder).exists():
        shutil.rmtree(args.folder)
    build_site(args.folder, repo_url=args.repo_url)
    return 0
