"""Command line: ``python -m course build [ASSIGNMENT ...]`` or ``python -m course demo``."""

import argparse

from . import build, demo


def main():
    parser = argparse.ArgumentParser(prog="python -m course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="regenerate source notebooks, release/ and "
                                                  "solutions/ from the text sources")
    build_cmd.add_argument("assignments", nargs="*", help="default: all of source/")
    commands.add_parser("demo", help="build, then grade a demo class and print its grades")
    args = parser.parse_args()
    if args.command == "build":
        build.build(args.assignments)
    else:
        demo.main()


main()
