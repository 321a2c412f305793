"""Result files: every one records config, seed, versions and timings, and is written atomically."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path


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


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` to ``path`` through a temporary file, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_clean(payload), indent=2) + "\n")
    os.replace(tmp, path)
    return path
