"""Look at a class's submissions before nbgrader grades them, and say what is wrong with them.

nbgrader grades a notebook it can read and that has the assignment's name. It stops a student's
grading (and leaves no grade) on a notebook that is not valid JSON, or when an assignment's only
notebook is missing or misnamed. This step makes every submission gradable, deterministically:

- a file that is not a readable notebook is set aside, and not graded;
- a notebook with another name, holding this assignment's exercises, is graded under its name;
- a notebook holding none of this assignment's exercises (another assignment's) is set aside;
- a notebook still missing is replaced by the release notebook, so it scores zero.

Before it reads anything, it refuses what is not a regular file of one name (links, hard links,
FIFOs, devices, sockets: :func:`course.submission_files.secure`), so that a link cannot make it
read or write another student's notebook or the course's. It also names what nbgrader mends
silently: deleted, duplicated, reordered or edited cells. Every finding goes into a "Grading
notes" cell at the top of the notebook, which nbgrader keeps, so the student reads it in the
feedback. Each file changed or set aside is first copied to ``originals/<assignment>/<student>/``.
"""

import collections
import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell

from course.grading import submission_files

NOTE_ID = "grading-notes"
NOTE_TITLE = "**Grading notes** (written by the grader)"
MAX_NOTEBOOK_BYTES = 200 * 2**20  # a notebook larger than this is not read


def _nbgrader(cell):
    """A cell's nbgrader metadata; {} where it is missing or broken (not a dict, no grade id)."""
    meta = cell.get("metadata")
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    return meta if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str) else {}


def _exercise_ids(nb):
    """grade ids of the cells that belong to one assignment only (answers and tests)."""
    return {m["grade_id"] for m in map(_nbgrader, nb.cells)
            if m.get("solution") or m.get("grade")}


def read_notebook(path):
    """The notebook of the regular file ``path``, never through a link, a FIFO or a device."""
    data = submission_files.read_regular(path, MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
    return nbformat.reads(data.decode("utf-8"), as_version=4)


def write_notebook(nb, path):
    """Write ``nb`` as a new file ``path``: a link there is replaced, never written through."""
    submission_files.write_replacing(path, nbformat.writes(nb))


def _read(path):
    nb = read_notebook(path)
    nbformat.validate(nb)
    return nb


def _structure_notes(nb, release_nb):
    """What differs between a student's notebook and the release, cell by cell."""
    notes = []
    release_cells = {m["grade_id"]: (cell, m) for cell in release_nb.cells
                     if (m := _nbgrader(cell)).get("grade_id")}
    ids = [m["grade_id"] for m in map(_nbgrader, nb.cells) if m.get("grade_id")]
    for grade_id, count in collections.Counter(ids).items():
        if count > 1 and grade_id in release_cells:
            notes.append(f"Cell `{grade_id}` appears {count} times; the last copy was graded "
                         "as that cell, the others as ordinary code.")
    for grade_id, (cell, meta) in release_cells.items():
        if grade_id not in ids:
            if meta.get("solution"):
                notes.append(f"The answer cell `{grade_id}` was deleted, so its exercise scores "
                             "zero.")
            elif meta.get("grade"):
                notes.append(f"The test cell `{grade_id}` was deleted; the original was put "
                             "back and graded.")
    for cell in nb.cells:
        grade_id = _nbgrader(cell).get("grade_id")
        if grade_id in release_cells:
            original, meta = release_cells[grade_id]
            if meta.get("locked") and not meta.get("solution") and cell.source != original.source:
                notes.append(f"The locked cell `{grade_id}` was edited; the original was "
                             "restored and graded.")
    release_order = [g for g in release_cells if g in ids]
    seen = list(dict.fromkeys(g for g in ids if g in release_cells))
    if seen != release_order:
        notes.append("The assignment's cells are not in their original order. They ran in your "
                     "order, so a test that runs before its answer fails.")
    return notes


def _note_cell(notes):
    text = NOTE_TITLE + "\n\n" + "\n".join(f"- {n}" for n in notes)
    return new_markdown_cell(text, id=NOTE_ID)


def add_notes(nb, notes):
    """Add ``notes`` to the grading notes at the top of ``nb`` (made if missing), each once."""
    cell = next((c for c in nb.cells if c.get("id") == NOTE_ID and c.cell_type == "markdown"),
                None)
    if cell is None:
        notes = list(dict.fromkeys(notes))
        if notes:
            nb.cells.insert(0, _note_cell(notes))
        return nb
    present = cell.source.splitlines()
    added = [f"- {n}" for n in dict.fromkeys(notes) if f"- {n}" not in present]
    if added:
        cell.source = cell.source.rstrip("\n") + "\n" + "\n".join(added)
    return nb


def _without_notes(nb):
    nb.cells = [c for c in nb.cells if c.get("id") != NOTE_ID]
    return nb


def inspect(folder, release, originals):
    """Make one student's submission folder gradable; return ``{notebook: [notes]}``.

    ``release`` maps each notebook name of the assignment to its release notebook;
    ``originals`` is where files are copied before being changed or set aside.
    """
    folder, originals = Path(folder), Path(originals)
    # submitted/<student>/<assignment>: links, hard links, FIFOs, devices, sockets removed first
    submission_files.secure(folder, parents=1)
    refused = submission_files.notes(folder)

    def keep(path):
        originals.mkdir(parents=True, exist_ok=True)
        if not (originals / path.name).exists():
            shutil.copy2(path, originals / path.name)

    def set_aside(path):
        keep(path)
        path.unlink()

    common, readable = list(refused), {}
    for path in sorted(folder.glob("*.ipynb")):
        if path.is_dir():  # secure() left folders and regular files only
            common.append(f"`{submission_files.shown(path.name)}` is a folder, not a notebook; "
                          "it was not graded.")
            originals.mkdir(parents=True, exist_ok=True)
            shutil.move(path, originals / path.name)
            continue
        try:
            readable[path] = _without_notes(_read(path))
        except Exception as error:  # any file that nbformat cannot take as a notebook
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else (
                type(error).__name__)
            common.append(f"`{submission_files.shown(path.name)}` is not a readable notebook "
                          f"({reason}); it was not graded.")
            set_aside(path)

    graded = {}  # notebook name -> notebook
    exercises = {name: _exercise_ids(nb) for name, nb in release.items()}
    for path, nb in sorted(readable.items(), key=lambda item: item[0].stem not in release):
        candidates = [name for name in release if name not in graded]
        overlap = {name: len(_exercise_ids(nb) & exercises[name]) for name in candidates}
        best = max(candidates, key=lambda name: (overlap[name], name == path.stem),
                   default=None)
        if best is None or overlap[best] == 0:
            common.append(f"`{submission_files.shown(path.name)}` holds none of this "
                          "assignment's exercises (is it another assignment's notebook?); it was "
                          "not graded.")
            set_aside(path)
            continue
        if path.stem != best:
            common.append(f"`{submission_files.shown(path.name)}` was graded as `{best}.ipynb`, "
                          "the name it should have.")
            set_aside(path)  # the notebook itself is written under its right name below
        graded[best] = nb

    notes = {}
    for name, release_nb in release.items():
        path = folder / f"{name}.ipynb"
        if name in graded:
            nb = graded[name]
            notes[name] = common + _structure_notes(nb, release_nb)
        else:
            nb = nbformat.from_dict(release_nb)
            notes[name] = common + [f"No notebook `{name}.ipynb` was found in your "
                                    "submission; it was graded as the unanswered release."]
        if notes[name]:
            if path.exists():
                keep(path)
            nb.cells.insert(0, _note_cell(notes[name]))
        if notes[name] or not path.exists():
            write_notebook(nb, path)
    return notes
