"""Packaging: the wheel installs one top-level name, ``spikenas`` (kernels/ becomes ``spikenas.kernels``, the
C++ extension ``spikenas._native``), and without a working C++ compiler it still builds, with a warning, and runs
on the reference path."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Files pip and the venv put in site-packages beside what a wheel installs.
NOT_FROM_THE_WHEEL = {
    "__pycache__", "_distutils_hack", "distutils-precedence.pth", "pip", "setuptools", "pkg_resources",
}

pytestmark = pytest.mark.slow


def _build_wheel(out: Path, **env: str) -> tuple[Path, str]:
    """Build a wheel from a clean copy of the sources (no build/ folder or compiled extension to reuse)."""
    pytest.importorskip("pybind11")
    source = out.parent / "source"
    source.mkdir(parents=True)
    for item in ("setup.py", "pyproject.toml", "README.md", "csrc", "kernels", "spikenas"):
        if (ROOT / item).is_dir():
            shutil.copytree(ROOT / item, source / item, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
        else:
            shutil.copy(ROOT / item, source / item)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "-v", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "-w", str(out)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    wheels = list(out.glob("spikenas-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], done.stdout + done.stderr


def _venv_with(wheel: Path, where: Path) -> tuple[Path, Path]:
    """A fresh venv (no system site-packages) with ``wheel`` installed; returns (python, site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return python, Path(purelib)


def _probe(python: Path, code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` with the venv's interpreter; torch and the other dependencies come from this interpreter's
    site-packages, appended to the path (its .pth files, such as an editable install of the checkout, are not
    processed there), and the working directory is outside the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("SPIKENAS_BACKEND", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join(site.getsitepackages())
    return subprocess.run([str(python), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_wheel_installs_only_the_spikenas_package(tmp_path: Path) -> None:
    wheel, _ = _build_wheel(tmp_path / "dist")
    python, purelib = _venv_with(wheel, tmp_path / "venv")
    names = {p.name for p in purelib.iterdir() if not p.name.endswith(".dist-info")} - NOT_FROM_THE_WHEEL
    assert names == {"spikenas"}
    assert (purelib / "spikenas" / "kernels" / "gram" / "reference.py").is_file()
    assert list((purelib / "spikenas").glob("_native*.so"))
    done = _probe(python, "import spikenas, spikenas.kernels as k, spikenas._native as n; "
                  "print(spikenas.__file__); print(k.resolve_backend()); print(n.ABI_VERSION)", tmp_path)
    assert done.returncode == 0, done.stderr
    where, backend, _ = done.stdout.splitlines()[:3]
    assert Path(where).resolve().is_relative_to(purelib.resolve()) and backend == "cpp"


def test_build_without_compiler_warns_and_falls_back_to_torch(tmp_path: Path) -> None:
    wheel, log = _build_wheel(tmp_path / "dist", CC="/bin/false", CXX="/bin/false")
    assert 'building extension "spikenas._native" failed' in log
    python, purelib = _venv_with(wheel, tmp_path / "venv")
    assert not list((purelib / "spikenas").glob("_native*.so"))
    done = _probe(python, "from spikenas import kernels; print(kernels.resolve_backend()); "
                  "print(kernels.diagnostics()['cpp'])", tmp_path)
    assert done.returncode == 0, done.stderr
    backend, reason = done.stdout.splitlines()[:2]
    assert backend == "torch" and "not importable" in reason
