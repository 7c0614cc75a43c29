"""Command line: ``python -m course build [ASSIGNMENT ...]``, ``python -m course demo``,
``python -m course start [ASSIGNMENT ...]``, ``python -m course grade ASSIGNMENT [...]``,
``python -m course benchmark`` and ``python -m course benchmark-grading``."""

import argparse
import sys

from . import build, demo


def main():
    try:
        return _dispatch()
    except build.ReleaseHoldsWork as error:
        print(f"python -m course: {error}", file=sys.stderr)
        return 1


def _dispatch():
    if sys.argv[1:2] == ["start"]:
        from . import start
        sys.exit(start.main(sys.argv[2:]))
    if sys.argv[1:2] == ["grade"]:
        from . import classgrade
        sys.exit(classgrade.main(sys.argv[2:]))
    if sys.argv[1:2] == ["demo"]:
        sys.exit(demo.main(sys.argv[2:]))
    if sys.argv[1:2] == ["benchmark"]:
        from . import benchmark
        sys.exit(benchmark.main(sys.argv[2:]))
    if sys.argv[1:2] == ["benchmark-grading"]:
        from . import benchmark_grading
        sys.exit(benchmark_grading.main(sys.argv[2:]))
    parser = argparse.ArgumentParser(prog="python -m course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="regenerate source notebooks, release/ and "
                                                  "solutions/ from the text sources")
    build_cmd.add_argument("assignments", nargs="*", help="default: all of source/")
    commands.add_parser("demo", help="build, then grade a demo class and print its grades")
    commands.add_parser("start", help="copy assignments from release/ into work/, the "
                                      "student's own folder (see `start --help`)")
    commands.add_parser("grade", help="grade a class: collect, inspect, autograde in parallel, "
                                      "feedback, export, plot (see `grade --help`)")
    commands.add_parser("benchmark", help="time every notebook (cold and warm compilation "
                                          "cache), grading against its floor, and the demo")
    commands.add_parser("benchmark-grading", help="time serial nbgrader autograde against "
                                                  "`grade` on a synthetic class")
    args = parser.parse_args()
    if args.command == "build":
        build.build(args.assignments)
    else:
        demo.main()
    return 0


sys.exit(main())
