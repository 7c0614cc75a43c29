"""``python -m course start [ASSIGNMENT ...]``: a student's own copy of the release, in work/.

The build regenerates release/ from source/, so answers written there would be lost; work/ is
the student's (git ignores it, and nothing of the course writes there but this command). A
notebook already in work/ is never replaced; the support files (the checks module) are
refreshed, since they are the course's and a rebuilt release may need the new ones.
"""

import argparse
import shutil
from pathlib import Path

from course import paths
from course.authoring import build


def start(assignments=None, root=paths.ROOT, log=print):
    root = Path(root)
    for assignment in assignments or build.assignments(root):
        release_dir = root / "release" / assignment
        if not release_dir.is_dir():
            raise SystemExit(f"There is no release/{assignment}/: the assignments are "
                             f"{', '.join(build.assignments(root))}.")
        work_dir = root / build.WORK / assignment
        work_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in release_dir.iterdir() if p.is_file()):
            target = work_dir / path.name
            if path.suffix == ".ipynb":
                if target.exists():
                    log(f"kept   {target.relative_to(root)} (your work; never replaced)")
                    continue
                shutil.copyfile(path, target)
                log(f"copied {target.relative_to(root)}")
            elif not target.exists() or target.read_bytes() != path.read_bytes():
                shutil.copyfile(path, target)
    log(f"Open your notebooks with `.venv/bin/jupyter lab {build.WORK}/`; answers you write "
        "there stay yours.")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", help="default: every assignment")
    start(parser.parse_args(argv).assignments)
    return 0
