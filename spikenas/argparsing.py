"""Shared pieces of the command-line tools: one-line errors, number parsing, output paths checked up front."""

from __future__ import annotations

import argparse
import logging
import math
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
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


#: seeds are accepted by numpy (``default_rng``, ``RandomState``) and torch (``manual_seed``) alike in this range
SEED_LIMIT = 2**32
#: the largest size option accepted before the memory check (torch indexes tensors with 64-bit integers)
SIZE_LIMIT = 2**31 - 1


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """argparse ``type`` of an integer in ``low..high`` (either bound may be None: open on that side).

    A value that is not an integer or lies outside the range is reported as one line naming it and the range.
    """
    if low is not None and high is not None:
        allowed = f"an integer in {low}..{high}"
    elif low is not None:
        allowed = f"an integer >= {low}"
    elif high is not None:
        allowed = f"an integer <= {high}"
    else:
        allowed = "an integer"
    # a size limit is a sanity bound, not the range a user thinks in: name it only to a value beyond it
    plain = f"an integer >= {low}" if low is not None and high == SIZE_LIMIT else allowed

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {plain}, got {text!r}") from None
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be {plain}, got {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def finite_float(
    low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """argparse ``type`` of a finite real number within ``low``/``high`` (each bound closed unless ``*_open``).

    ``nan``, ``inf`` and numbers too large for a float are refused, as is anything outside the range.
    """
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    if low is not None and high is not None:
        allowed = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    else:
        allowed = "a finite number" + (f" {parts[0]}" if parts else "")

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = "finite_float"
    return parse


#: counts and sizes of at least one (width, hidden, timesteps, input size, epochs, samples, workers, ...)
positive_int = integer(1, SIZE_LIMIT)
#: counts where 0 means "none" (padding, warm-up steps, race rounds)
non_negative_int = integer(0, SIZE_LIMIT)
#: a batch from which a kernel matrix is built: at least two samples
kernel_batch = integer(2, SIZE_LIMIT)
#: a random seed: 0 <= seed < 2**32
random_seed = integer(0, SEED_LIMIT - 1)
#: bits per stored number
bit_width = integer(1, 64)
#: a finite number > 0 (learning rate, dt)
positive_float = finite_float(0.0, low_open=True)
#: a finite number >= 0 (weight decay, final learning rate)
non_negative_float = finite_float(0.0)
#: a fraction in [0, 1) (dropout, momentum, label smoothing)
unit_fraction = finite_float(0.0, 1.0, high_open=True)
#: a probability in (0, 1] (a share of candidates, a quantile)
share = finite_float(0.0, 1.0, low_open=True)
#: a fraction in (0, 1) (a held-out part)
open_fraction = finite_float(0.0, 1.0, low_open=True, high_open=True)


def kernel_backend(text: str) -> str:
    """argparse ``type`` of ``--backend``: a known name whose kernels can run on this machine.

    ``auto`` always can (it falls back to ``torch``); a forced name that cannot (``triton`` without CUDA and
    without ``TRITON_INTERPRET=1``, ``cpp`` without the built extension) is refused with the reason.
    """
    from spikenas import kernels

    name = text.strip()
    if name not in ("auto", *kernels.BACKENDS):
        raise argparse.ArgumentTypeError(f"must be one of auto, {', '.join(kernels.BACKENDS)}; got {text!r}")
    if name != "auto":
        try:
            kernels.resolve_backend(name)
        except Exception as err:  # noqa: BLE001 - the backend's own reason, whatever failed while importing it
            raise argparse.ArgumentTypeError(str(err)) from None
    return name


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
    _check_name_lengths(full, target)
    try:
        return _check_writable(full, target, directory=directory)
    except OSError as err:  # anything the checks above did not foresee is still one line
        raise SpikeNASError(f"cannot write {target}: {err.strerror or err}") from err


#: characters a command may add to an output's name for the files it writes beside it
#: (``.journal.jsonl``, ``.lock``, ``.previous``, temporary suffixes)
SIBLING_SUFFIX_ROOM = 32


def _check_name_lengths(full: Path, target: Path) -> None:
    """Raise when a component of ``full`` is longer than the file system allows (the last one with
    :data:`SIBLING_SUFFIX_ROOM` to spare for the files written beside it)."""
    try:
        limit = os.pathconf(_existing_ancestor(full), "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    *folders, name = full.parts
    for part in folders:
        if len(os.fsencode(part)) > limit:
            raise SpikeNASError(f"cannot write {target}: the folder name {part[:40]}... is longer than this file "
                                f"system's {limit} bytes")
    if len(os.fsencode(name)) > limit - SIBLING_SUFFIX_ROOM:
        raise SpikeNASError(f"cannot write {target}: its name has {len(os.fsencode(name))} bytes; at most "
                            f"{limit - SIBLING_SUFFIX_ROOM} are allowed ({limit} on this file system, less room for "
                            "the files written beside it)")


def _check_writable(full: Path, target: Path, *, directory: bool) -> Path:
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
    """Run a CLI body; library errors become one line on stderr and exit status 2.

    An interrupt (Ctrl-C) exits with status 130 and one line; what was saved is stated only when the
    code that held the progress said so, in the interrupt's ``saved`` attribute (a search's journal
    sets it: :meth:`spikenas.journal.Journal.saved`).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run()
    except SpikeNASError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        saved = getattr(err, "saved", None)
        print(f"interrupted: {saved}" if saved else "interrupted", file=sys.stderr)
        return 130
