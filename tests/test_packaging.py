"""Packaging: without a working C++ compiler the package still builds (with a warning) and runs on
the reference path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_build_without_compiler_warns_and_falls_back_to_torch(tmp_path):
    pytest.importorskip("pybind11")
    for item in ("setup.py", "pyproject.toml", "README.md", "csrc", "kernels", "spikenas"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, tmp_path / item, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
        else:
            shutil.copy(src, tmp_path / item)
    env = dict(os.environ, CC="/bin/false", CXX="/bin/false")
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert 'building extension "spikenas._native" failed' in build.stdout + build.stderr
    assert not list((tmp_path / "kernels").glob("_native*.so"))
    # An editable install of the checkout would answer `spikenas._native` from there: look only at the copy.
    code = (
        "import sys; "
        "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]; "
        "import kernels; print(kernels.resolve_backend()); print(kernels.diagnostics()['cpp']); print(kernels.__file__)"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "SPIKENAS_BACKEND"}, capture_output=True,
        text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    backend, reason, where = probe.stdout.splitlines()[:3]
    assert Path(where).resolve().is_relative_to(tmp_path.resolve())
    assert backend == "torch" and "not importable" in reason
