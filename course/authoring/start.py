"""``python -m course start [ASSIGNMENT ...]``: a student's own copy of the release, in work/.

The build regenerates release/ from source/, so answers written there would be lost; work/ is
the student's (git ignores it, and nothing of the course writes there but this command). A
notebook already in work/ is never replaced; the support files (the checks module) are
refreshed, since they are the course's and a rebuilt release may need the new ones. The student
edition's ``start.py`` does the same (course/authoring/student_start.py).
"""

import argparse
from pathlib import Path

from course import paths
from course.authoring import build, student_start


def start(assignments=None, root=paths.ROOT, log=print):
    root = Path(root)
    student_start.start(root / "release", root / build.WORK, assignments, log, shown_from=root)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", help="default: every assignment")
    start(parser.parse_args(argv).assignments)
    return 0
