"""Backend selection behind kernels.*: auto choice, the SPIKENAS_BACKEND override, no silent
fallback, the fallback when the extension is missing, and every available backend through the
public API. Also runs the Triton tests under the CPU interpreter in a subprocess (TRITON_INTERPRET
must be set before triton is imported, so it cannot be switched on inside this process)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from spikenas.kernels import _cpp, _triton

from spikenas import kernels

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AVAILABLE = [name for name, state in kernels.diagnostics().items() if state == "available"]


def _run(code: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_auto_on_cpu_prefers_cpp_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPIKENAS_BACKEND", raising=False)
    want = "cpp" if _cpp.unavailable_reason() is None else "torch"
    assert kernels.resolve_backend(None, "cpu") == want
    assert kernels.resolve_backend("auto", "cpu") == want


def test_auto_on_cuda_prefers_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPIKENAS_BACKEND", raising=False)
    want = "triton" if _triton.unavailable_reason() is None else "torch"
    assert kernels.resolve_backend(None, "cuda") == want


def test_env_overrides_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPIKENAS_BACKEND", "torch")
    assert kernels.resolve_backend(None, "cpu") == "torch"
    assert kernels.resolve_backend("auto", "cuda") == "torch"
    # An explicit argument wins over the environment.
    if "cpp" in AVAILABLE:
        assert kernels.resolve_backend("cpp", "cpu") == "cpp"


def test_unknown_backend_is_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="backend"):
        kernels.resolve_backend("cuda_graphs")
    monkeypatch.setenv("SPIKENAS_BACKEND", "fortran")
    with pytest.raises(ValueError, match="backend"):
        kernels.pack_bits(torch.zeros(2, 3))


@pytest.mark.skipif(_triton.unavailable_reason() is None, reason="triton runs here, so forcing it succeeds")
def test_forcing_an_unavailable_backend_raises_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPIKENAS_BACKEND", "triton")
    with pytest.raises(kernels.BackendUnavailable, match="triton"):
        kernels.pack_bits(torch.zeros(2, 3))
    assert kernels.diagnostics()["triton"] != "available"


def test_missing_extension_falls_back_to_torch_under_auto_only() -> None:
    code = (
        "import sys\n"
        "sys.modules['spikenas._native'] = None  # makes `import spikenas._native` fail\n"
        "import torch\nfrom spikenas import kernels\n"
        "print('auto', kernels.resolve_backend(None, 'cpu'))\n"
        "print('diag', kernels.diagnostics()['cpp'])\n"
        "k = kernels.spike_gram(kernels.pack_bits(torch.ones(3, 4, 100)), 100)\n"
        "print('k', tuple(k.shape))\n"
        "try:\n"
        "    kernels.spike_gram(kernels.pack_bits(torch.ones(3, 4, 100)), 100, backend='cpp')\n"
        "except kernels.BackendUnavailable as err:\n"
        "    print('forced', err)\n"
    )
    done = _run(code, SPIKENAS_BACKEND="")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "auto torch" in lines
    assert "k (4, 4)" in lines
    assert any(line.startswith("diag") and "not importable" in line for line in lines)
    assert any(line.startswith("forced") and "build it with" in line for line in lines)


def test_stale_extension_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    if _cpp.unavailable_reason() is not None:
        pytest.skip(f"cpp backend not built: {_cpp.unavailable_reason()}")
    code = (
        "import spikenas._native as m\nm.ABI_VERSION = -1\n"
        "from spikenas import kernels\nprint(kernels.diagnostics()['cpp'])\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert "stale" in done.stdout and "rebuild" in done.stdout


@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_public_api_matches_torch_on_every_backend(backend: str) -> None:
    if backend not in AVAILABLE:
        pytest.skip(kernels.diagnostics()[backend])
    device = "cuda" if backend == "triton" and not _triton.interpreting() else "cpu"
    g = torch.Generator().manual_seed(4)
    spikes = (torch.rand(2, 5, 33, 300, generator=g) < 0.2).float().to(device)
    packed = kernels.pack_bits(spikes, backend=backend)
    assert torch.equal(packed, kernels.pack_bits(spikes, backend="torch"))
    hamming = kernels.hamming_gram(packed, 300, backend=backend)
    assert torch.equal(hamming, kernels.hamming_gram(packed, 300, backend="torch"))
    for kind in ("sahd", "sahd_rate", "hamming"):
        want = kernels.spike_gram(packed, 300, kind=kind, backend="torch")
        got = kernels.spike_gram(packed, 300, kind=kind, backend=backend)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * 5 * 300)
        dense = kernels.spike_gram_dense(spikes, kind=kind, backend=backend)
        torch.testing.assert_close(dense, want, rtol=1e-12, atol=1e-12 * 5 * 300)
    k = kernels.spike_gram(packed, 300, backend="torch")
    sign, logabs = kernels.slogdet(k, backend=backend)
    want_sign, want_logabs = kernels.slogdet(k, backend="torch")
    assert torch.equal(sign, want_sign)
    torch.testing.assert_close(logabs, want_logabs, rtol=1e-10, atol=1e-8)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.skipif(_triton.interpreting(), reason="already interpreting: tests/test_kernels_triton.py runs in-process")
def test_triton_kernels_under_the_cpu_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_kernels_triton.py"],
        cwd=REPO,
        env={**os.environ, "TRITON_INTERPRET": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in summary and "error" not in summary, summary
