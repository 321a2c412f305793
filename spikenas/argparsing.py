"""Shared pieces of the command-line tools: one-line errors, number parsing, output paths checked up front."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from spikenas.errors import SpikeNASError

_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


class Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line and exits with status 2.

    ``parse_args`` also checks every output argument (:func:`check_output_arguments`), so a command
    refuses a path it cannot write before it starts any work.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        check_output_arguments(self, parsed)
        return parsed


def quantity(text: str) -> float:
    """Parse a positive count such as ``1200000``, ``1.2M`` or ``500k``."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([kmg]?)\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (examples: 1200000, 1.2M, 500k)")
    value = float(match.group(1)) * _SUFFIX[match.group(2)]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of the absolute ``path`` that exists."""
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor)


def _check_creatable_in(directory: Path, target: Path) -> None:
    """Raise unless files can be created in the existing ``directory`` (tried, not inferred from modes)."""
    if not directory.is_dir():
        raise SpikeNASError(f"cannot write {target}: {directory} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise SpikeNASError(f"cannot write {target}: cannot create files in {directory} ({reason})") from err


def check_output_path(path: str | Path, *, directory: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written; return it as a :class:`Path`.

    A file (``directory=False``) must not be a directory, an existing one must be writable, and the
    folder it goes in must take new files (results are written through a temporary file beside
    them) or be creatable under its nearest existing ancestor. A directory (``directory=True``) must
    be an existing directory that takes new files, or be creatable in the same way. The check
    creates and changes nothing (it creates and deletes one anonymous temporary file).

    :raises SpikeNASError: one line naming the path and why it cannot be written.
    """
    if str(path).strip() == "":
        raise SpikeNASError("an output path must not be empty")
    target = Path(path).expanduser()
    full = target.absolute()
    if full.exists():
        if directory and not full.is_dir():
            raise SpikeNASError(f"cannot write into {target}: it exists and is not a directory")
        if not directory and full.is_dir():
            raise SpikeNASError(f"cannot write {target}: it is a directory; give a file name")
        if not directory and not os.access(full, os.W_OK):
            raise SpikeNASError(f"cannot write {target}: the file exists and is read-only")
        _check_creatable_in(full if directory else full.parent, target)
        return target
    _check_creatable_in(_existing_ancestor(full), target)
    return target


def output_file(text: str) -> Path:
    """argparse ``type`` of a file the command writes: checked when the arguments are parsed."""
    try:
        return check_output_path(text)
    except SpikeNASError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def output_dir(text: str) -> Path:
    """argparse ``type`` of a directory the command writes into: checked when the arguments are parsed."""
    try:
        return check_output_path(text, directory=True)
    except SpikeNASError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


#: argument names (argparse ``dest``) that name what a command writes: directories, then files
OUTPUT_DIR_ARGUMENTS = ("output_dir", "out_dir", "cache_dir", "checkpoint_dir")
OUTPUT_FILE_ARGUMENTS = ("output", "out", "output_file")


def check_output_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check every output argument of parsed ``args`` (by the names above) before any work.

    :class:`Parser` calls it after parsing, so options declared as plain strings (a study's
    ``--output-dir``) are checked like those typed :func:`output_file` / :func:`output_dir`. A path that
    cannot be written is reported through ``parser.error``: one line, exit status 2.
    """
    for names, directory in ((OUTPUT_DIR_ARGUMENTS, True), (OUTPUT_FILE_ARGUMENTS, False)):
        for name in names:
            value = getattr(args, name, None)
            if value is None:
                continue
            try:
                check_output_path(value, directory=directory)
            except SpikeNASError as err:
                parser.error(f"argument --{name.replace('_', '-')}: {err}")


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
