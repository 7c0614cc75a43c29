"""``python -m course COMMAND [...]``: the course's commands, one module each."""

import importlib
import sys

# command -> (module of course/ whose main(argv) runs it, what it does)
COMMANDS = {
    "build": ("authoring.build", "regenerate the source notebooks, release/ and solutions/ "
                                 "from the text sources"),
    "demo": ("dev.demo", "build, then grade a demo class and print its grades"),
    "start": ("authoring.start", "copy assignments from release/ into work/, the student's own "
                                 "folder"),
    "edition": ("authoring.edition", "the student edition: release notebooks, checks bundles, "
                                     "a student README and requirements, Binder's files"),
    "site": ("authoring.site", "the course website (Sphinx, myst-nb): every notebook's prose, "
                               "math, figures and statements, with Colab and Binder links"),
    "grade": ("grading.grade_class", "grade a class: collect, inspect, autograde in parallel "
                                     "(here or on a Dask cluster), feedback, export, plot"),
    "report": ("reports", "what the class got wrong: per exercise, full marks and each named "
                          "mistake with its students (table, CSV, plot, HTML page)"),
    "benchmark": ("dev.benchmark", "time every notebook (cold and warm compilation cache), "
                                   "grading against its floor, and the demo"),
    "benchmark-grading": ("dev.benchmark_grading", "time serial nbgrader autograde against "
                                                   "`grade` on a synthetic class"),
}


def usage():
    width = max(map(len, COMMANDS))
    return ("usage: python -m course COMMAND [--help | ARGUMENTS]\n\ncommands:\n" + "\n".join(
        f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()))


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        print(usage(), file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    from course.authoring.build import ReleaseHoldsWork

    module = importlib.import_module(f"course.{COMMANDS[argv[0]][0]}")
    try:
        return module.main(argv[1:]) or 0
    except ReleaseHoldsWork as error:
        print(f"python -m course: {error}", file=sys.stderr)
        return 1


sys.exit(main(sys.argv[1:]))
