"""Result files: every one records config, seed, versions and timings, and is written atomically."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from spikenas.errors import SpikeNASError


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that shape a result."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("spikenas", "torch", "spikingjelly", "numpy", "numba", "triton"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _clean(value: object) -> object:
    """JSON has no infinities: write them (and NaN) as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; it replaces ``path`` only when the block ends normally.

    The temporary name is unique to this call and keeps ``path``'s suffix (writers such as matplotlib pick the
    format from it). When the block raises, the temporary file is removed and ``path`` is left as it was, so a
    crash or an error never leaves half a file nor destroys the previous one. The file is flushed to disk
    before the rename (``os.replace``, atomic on POSIX and Windows for a path on the same file system).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name[:48]}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix[:16]}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def save_figure(figure: object, path: str | Path, **kwargs: object) -> Path:
    """``figure.savefig(path, **kwargs)`` atomically; the format follows ``path``'s suffix as usual."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, **kwargs)
    return path


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` to ``path`` as indented JSON, atomically (see :func:`atomic_path`)."""
    return write_text(path, json.dumps(_clean(payload), indent=2) + "\n")


def read_results_json(path: str | Path, *, what: str, checkpoint_hint: str, json_hint: str = "") -> object:
    """The JSON a command's results file holds, read for another command.

    :param what: how the file is named in errors (``search results``, ``training results``).
    :param checkpoint_hint: what the error says when ``path`` is a torch checkpoint (a zip file) instead.
    :param json_hint: what the error adds when the file is not JSON.
    :raises SpikeNASError: one line naming the file: unreadable, a checkpoint, or not JSON.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SpikeNASError(f"cannot read {what} {path}: {err.strerror or err}") from err
    if raw[:2] == b"PK":
        raise SpikeNASError(f"{path} is a torch checkpoint, not {checkpoint_hint}")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise SpikeNASError(f"cannot read {what} {path}: not JSON ({err}){json_hint}") from err
