"""The ``spikenas`` console command: ``spikenas search|train|analyze|export ...``.

Each subcommand is the ``main`` of a ``python -m spikenas.<command>`` module, given the remaining
arguments, so ``spikenas search --fast`` and ``python -m spikenas search --fast`` are the same run.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

#: subcommand -> (module whose ``main(argv)`` runs it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("spikenas.nas.__main__", "memory-aware architecture search (Alg. 1, random, evolution)"),
    "train": ("spikenas.train.__main__", "train a searched network, count spikes, quantize weights"),
    "analyze": ("spikenas.analyze.__main__", "the paper's studies, score fidelity and the selection protocol"),
    "export": ("spikenas.export", "write a trained network to an exchange format (NIR)"),
}


def usage() -> str:
    lines = ["usage: spikenas COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "`spikenas COMMAND --help` describes a command's arguments."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``spikenas COMMAND ARGS``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"spikenas {metadata.version('spikenas')}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"spikenas: error: unknown command {command!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name = COMMANDS[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        print(f"spikenas: error: command {command!r} is not available in this install ({err})", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
