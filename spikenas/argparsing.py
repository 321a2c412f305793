"""Shared pieces of the command-line tools: one-line errors, number parsing."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable

from spikenas.errors import SpikeNASError

_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


class Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line and exits with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def quantity(text: str) -> float:
    """Parse a positive count such as ``1200000``, ``1.2M`` or ``500k``."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([kmg]?)\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (examples: 1200000, 1.2M, 500k)")
    value = float(match.group(1)) * _SUFFIX[match.group(2)]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def main_guard(run: Callable[[], int]) -> int:
    """Run a CLI body; library errors become one line on stderr and exit status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run()
    except SpikeNASError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: progress so far is in the journal; rerun with --resume", file=sys.stderr)
        return 130
