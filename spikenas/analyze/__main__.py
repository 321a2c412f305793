"""``python -m spikenas.analyze <study>``: the paper's studies and score-fidelity measurements."""

from __future__ import annotations

import importlib
import sys

from spikenas.analyze import STUDIES
from spikenas.argparsing import Parser, main_guard


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m spikenas.analyze STUDY ARGS``; returns the exit status (bad arguments exit with 2)."""
    parser = Parser(prog="python -m spikenas.analyze", description=__doc__)
    sub = parser.add_subparsers(dest="study", required=True, parser_class=Parser)
    modules = {}
    for name in STUDIES:
        try:
            module = importlib.import_module(f"spikenas.analyze.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"spikenas.analyze.{name}":
                raise
            continue
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    args = parser.parse_args(argv)
    return main_guard(lambda: modules[args.study].run(args))


if __name__ == "__main__":
    sys.exit(main())
