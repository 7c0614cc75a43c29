"""``python -m course edition DIR``: the student edition, what students clone or are handed.

It holds, built from source/ through the build: each assignment's release notebook and its
checks bundle (``adcheck.py``, which solves nothing: it holds no answer and no expected value of
a hidden case), a README for students (on a laptop, on a hub, on Colab and on Binder), their
``requirements.txt`` (the course's pins of what a notebook and ``nbgrader validate`` need; no
test or grading stack), Binder's ``runtime.txt``, ``start.py`` (their own copy in work/, never
overwritten) and a ``.gitignore``. Nothing else: not source/, solutions/, tests/ or course/.
Every file it writes is listed in ``MANIFEST.txt``.

With ``--git`` the edition becomes a git repository of one commit, so that publishing it is one
``git push``; ``--repo-url`` (its address on GitHub) adds Colab and Binder links to the README,
and ``--hub-url`` nbgitpuller links for a JupyterHub. Keep the instructors' repository private
when grades matter: it holds every solution and hidden test.
"""

import argparse
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote, urlencode

from course import paths
from course.authoring import build, notebooks, student_start

# What a student's notebook and `nbgrader validate` need, pinned as the course's requirements.txt
STUDENT_PACKAGES = ("jax", "jaxlib", "numpy", "ml_dtypes", "matplotlib", "jupyterlab",
                    "notebook", "nbgrader", "ipykernel")
PYTHON = "3.11"
JAX_VERSION = "0.10.2"
# Hosted services preinstall their own JAX, and on a GPU runtime its CUDA plugin, which a
# different jaxlib cannot load: remove the plugins, then pin JAX (the course runs on the CPU).
CUDA_PLUGINS = ("jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin", "jax-cuda13-pjrt")
HOSTED_INSTALL = (f"%pip uninstall -y -q {' '.join(CUDA_PLUGINS)}\n"
                  f"%pip install -q jax=={JAX_VERSION} jaxlib=={JAX_VERSION}")
GITIGNORE = "work/\n.venv/\n.ipynb_checkpoints/\n__pycache__/\n"


def pinned(requirements, names=STUDENT_PACKAGES):
    """The lines of ``requirements`` (text of a requirements file) that pin ``names``."""
    found = {}
    for line in requirements.splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==\S+", line.strip())
        if match and match.group(1).lower() in names:
            found[match.group(1).lower()] = line.strip()
    missing = [name for name in names if name not in found]
    if missing:
        raise ValueError(f"requirements.txt pins no version of {', '.join(missing)}")
    return [found[name] for name in names]


def _github(repo_url):
    """``owner/name`` of a GitHub address, or None."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(\.git)?/?", repo_url or "")
    return match.group(1) if match else None


def launch_links(repo_url, hub_url, path, branch="main"):
    """``[(service, address)]`` that open the notebook at ``path`` (in the edition)."""
    links = []
    repo = _github(repo_url)
    if repo:
        links.append(("Colab", f"https://colab.research.google.com/github/{repo}/blob/"
                               f"{branch}/{quote(path)}"))
        links.append(("Binder", f"https://mybinder.org/v2/gh/{repo}/{branch}?"
                                + urlencode({"labpath": path})))
    if hub_url and repo_url:
        folder = repo_url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
        links.append(("JupyterHub", f"{hub_url.rstrip('/')}/hub/user-redirect/git-pull?"
                      + urlencode({"repo": repo_url, "branch": branch,
                                   "urlpath": f"lab/tree/{folder}/{path}"})))
    return links


def readme(notebook_paths, repo_url=None, hub_url=None):
    """The student edition's README."""
    rows = []
    for path in notebook_paths:
        links = " ".join(f"[{service}]({url})"
                         for service, url in launch_links(repo_url, hub_url, path))
        rows.append(f"| `{path}` | {links or '-'} |")
    return f"""# Advanced Automatic Differentiation in JAX: the student edition

Jupyter notebooks that build automatic differentiation from the inside: forward and reverse
mode, Jacobians and Hessians, custom rules, implicit differentiation, how JAX does it, and
where autodiff meets numerics (linear algebra, ODE solvers, stochastic gradients).
Each exercise has an answer cell and a test cell that names your mistake.

| notebook | open it on |
|---|---|
{chr(10).join(rows)}

## On your laptop: two commands

Python {PYTHON} (the course's pins are for it), on Linux, on macOS with Apple silicon (JAX
{JAX_VERSION} has no wheel for Intel Macs), or on Windows under WSL:

```
python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
.venv/bin/python start.py && .venv/bin/jupyter lab work/
```

`start.py` copies the assignments into `work/`, your own folder, and never replaces a notebook
that is already there: after pulling a new version of the course, run it again to get the new
assignments; your answers stay. Work in `work/`, not in the assignment folders.

## On your course's JupyterHub

Open the link your instructors give you (or *Nbgrader → Assignment List*, fetch the assignment,
and open its notebook from the list). Submit from the Assignment List.

## On Colab

Open the notebook (the table above, or *File → Upload notebook*), and upload its folder's
`adcheck.py` next to it (the *Files* panel). Then run, in a cell of its own, before anything
else:

```
{HOSTED_INSTALL}
```

and restart the session (*Runtime → Restart session*). The same line serves a CPU runtime
and a GPU runtime: it removes the service's JAX CUDA plugins (a plugin of another version than
JAX crashes it, even on the CPU), so the course then runs on the CPU, as it was written to
(nothing in it needs a GPU). The line was tested in a virtual environment holding another JAX
and its CUDA plugins, not on a real GPU runtime.

## On Binder

Open the Binder link of a notebook above: Binder builds this repository with Python {PYTHON}
(`runtime.txt`) and `requirements.txt`, then opens the notebook. Binder keeps nothing when the
session ends: download your notebook before you leave. (The course's tests check these two
files, not a real Binder build.)

## How the exercises work

1. Run the notebook from the top. The first cell imports `adcheck`, the small module the test
   cells use: keep it next to the notebook.
2. Replace `raise NotImplementedError()` in an answer cell with your code, then run the locked
   test cell after it: it prints what passed, or stops with a message that names your mistake.
3. The visible tests are a guide. The grade comes from hidden tests, on more inputs, shapes and
   dtypes, under `jax.jit`, that also check the mechanism the exercise asks for.
4. The text, outputs and tests come from JAX {JAX_VERSION}; on another JAX the first cell says
   so, and a few printed numbers may differ.
5. `nbgrader validate <notebook>` (installed with the requirements) runs the notebook as the
   grader would, with the visible tests.
"""


def edition(folder, root=paths.ROOT, repo_url=None, hub_url=None, git=False, rebuild=True,
            log=print):
    """Write the student edition into ``folder`` (new, or empty); return its files."""
    folder, root = Path(folder), Path(root)
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder} is not empty: the edition is written into a new folder.")
    if rebuild:
        build.build(root=root, log=lambda line: log("  " + line))
    written = []

    def write(name, text):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
        written.append(name)

    notebook_paths = []
    for assignment in build.assignments(root):
        release = root / "release" / assignment
        for text_path in notebooks.text_sources(root / "source" / assignment):
            name = notebooks.notebook_path(text_path).name
            notebook_paths.append(f"{assignment}/{name}")
        for path in sorted(p for p in release.iterdir() if p.is_file()):
            (folder / assignment).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / assignment / path.name)
            written.append(f"{assignment}/{path.name}")
    write("README.md", readme(notebook_paths, repo_url, hub_url))
    requirements = pinned((root / "requirements.txt").read_text())
    write("requirements.txt", "# What the notebooks need: pip install -r requirements.txt\n"
                              + "\n".join(requirements) + "\n")
    write("runtime.txt", f"python-{PYTHON}\n")
    shutil.copyfile(Path(student_start.__file__), folder / "start.py")
    written.append("start.py")
    write(".gitignore", GITIGNORE)
    written.append("MANIFEST.txt")
    (folder / "MANIFEST.txt").write_text("\n".join(sorted(written)) + "\n")
    if git:
        _commit(folder)
    return sorted(written)


def _commit(folder):
    def run(*args):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True)

    run("init", "-q", "-b", "main")
    run("add", "-A")
    run("-c", "user.name=course edition", "-c", "user.email=edition@localhost", "commit",
        "-q", "-m", "The student edition of Advanced Automatic Differentiation in JAX")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course edition", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="where to write it (a new or empty folder)")
    parser.add_argument("--git", action="store_true",
                        help="make it a git repository of one commit, ready to push")
    parser.add_argument("--repo-url", help="where it will be published (https://github.com/"
                                           "OWNER/NAME): adds Colab and Binder links")
    parser.add_argument("--hub-url", help="a JupyterHub's address: adds nbgitpuller links")
    args = parser.parse_args(argv)
    files = edition(args.folder, repo_url=args.repo_url, hub_url=args.hub_url, git=args.git)
    print(f"The student edition, {len(files)} files, is in {args.folder}/ (MANIFEST.txt)."
          + (" It is a git repository: publish it with `git -C "
             f"{args.folder} remote add origin URL && git -C {args.folder} push -u origin main`."
             if args.git else ""))
    return 0
