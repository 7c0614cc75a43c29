"""The checks module each assignment's students receive: course/adcheck.py with only its own
assignment's section.

``course/adcheck.py`` is written in sections, each opened by a ruled comment: the shared ones
(the guard, calling student code, mechanism checks, the student-facing wrapper) and one per
assignment (``# Assignment 01: ...``). The build writes into ``release/<assignment>/`` and
``solutions/<assignment>/`` the shared sections and that assignment's, so that students of one
assignment do not receive the checks and references of the others. Grading restores the full
module from ``source/``.
"""

import re
from pathlib import Path

RULE = "# " + "-" * 93 + "\n"
SECTION = re.compile(r"^# Assignment (\d+):", re.MULTILINE)


def sections(text):
    """``[(assignment number or None, text)]``: the module cut before each ruled comment."""
    cuts = [m.start() for m in re.finditer(re.escape(RULE), text)]
    pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    found = []
    for piece in pieces:
        number = SECTION.match(piece[len(RULE):]) if piece.startswith(RULE) else None
        found.append((number.group(1) if number else None, piece))
    return found


def section(text, title):
    """The section of ``text`` whose ruled comment starts with ``# <title>``."""
    for _, piece in sections(text):
        if piece.startswith(RULE + f"# {title}"):
            return piece
    raise ValueError(f"no section '# {title}'")


def bundle(text, assignment):
    """The module ``text`` for ``assignment`` (``"01_forward_reverse"``): the shared sections
    and the section of its number."""
    number = assignment.split("_")[0]
    if not any(owner for owner, _ in sections(text)):  # a module of one assignment's checks
        return text
    kept = [piece for owner, piece in sections(text) if owner in (None, number)]
    if not any(owner == number for owner, _ in sections(text)):
        raise ValueError(f"course/adcheck.py has no section '# Assignment {number}:'")
    return "".join(kept)


def write_bundle(source, target, assignment):
    """Write the bundle of ``source`` (the full checks module) for ``assignment`` to ``target``
    unless it is there already."""
    text = bundle(Path(source).read_text(), assignment)
    target = Path(target)
    if target.is_symlink() or not target.exists() or target.read_text() != text:
        target.unlink(missing_ok=True)
        target.write_text(text)
