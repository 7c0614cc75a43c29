"""Your own copy of the assignments, in work/: ``python start.py [ASSIGNMENT ...]``.

A notebook already in work/ is never replaced, so the answers you write there stay yours: run
this again after pulling a new version of the course to get the assignments you do not have
yet. The course's support files (the checks module, ``adcheck.py``) are refreshed, since a new
version of a notebook may need the new ones. Then open ``jupyter lab work/``.

This file has no dependency but Python's standard library: it is the student edition's
``start.py``, and ``python -m course start`` runs it on the instructors' release/.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

WORK = "work"


def assignments(folder):
    """The assignment folders of ``folder``: those holding a notebook."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.is_dir() and p.name != WORK and any(p.glob("*.ipynb")))


def start(handed_out, work, chosen=None, log=print, shown_from=None):
    """Copy the assignments ``chosen`` (default: all) of the folder ``handed_out`` into
    ``work``, never replacing a notebook there; the messages name paths from ``shown_from``
    (default: the current folder)."""

    def shown(path):
        return os.path.relpath(path, shown_from)

    handed_out, work = Path(handed_out), Path(work)
    known = assignments(handed_out)
    for assignment in chosen or known:
        if assignment not in known:
            raise SystemExit(f"There is no assignment {assignment!r}: the assignments are "
                             f"{', '.join(known)}.")
        target_dir = work / assignment
        target_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in (handed_out / assignment).iterdir() if p.is_file()):
            target = target_dir / path.name
            if path.suffix == ".ipynb":
                if target.exists():
                    log(f"kept   {shown(target)} (your work; never replaced)")
                    continue
                shutil.copyfile(path, target)
                log(f"copied {shown(target)}")
            elif not target.exists() or target.read_bytes() != path.read_bytes():
                shutil.copyfile(path, target)
    log(f"Open your notebooks with `jupyter lab {shown(work)}/`; answers you write "
        "there stay yours.")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python start.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", help="default: every assignment")
    here = Path(__file__).resolve().parent
    start(here, here / WORK, parser.parse_args(argv).assignments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
