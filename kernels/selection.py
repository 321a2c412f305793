"""Backend selection for the spike kernels.

A backend is a name (``torch``, ``cpp``, ``triton``) whose implementation of every op lives in
``kernels/<op>/<module>.py`` (ops: pack, gram, logdet, patterns; ``torch`` is the pure-PyTorch ``reference``)
with one signature. ``auto`` takes the first available name of :data:`PRIORITY` for the tensors'
device; ``SPIKENAS_BACKEND`` forces one and never falls back silently: an unavailable forced backend
raises with the reason.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType

import torch

from spikenas.errors import SpikeNASError

OPS = ("pack", "gram", "logdet", "patterns")
BACKENDS = ("torch", "cpp", "triton")
MODULE_OF = {"torch": "reference", "cpp": "cpp", "triton": "triton"}
PRIORITY = {"cuda": ("triton", "torch"), "cpu": ("cpp", "torch")}
ENV_VAR = "SPIKENAS_BACKEND"


class BackendUnavailable(SpikeNASError, RuntimeError):
    """The requested backend cannot run here; the message says why and how to fix it (a :class:`SpikeNASError`,
    so the command line reports it in one line)."""


@functools.cache
def _modules(name: str) -> dict[str, ModuleType]:
    """Import every op of backend ``name``; raise :class:`BackendUnavailable` with the reason."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS + ('auto',)}, got {name!r}")
    modules = {}
    for op in OPS:
        try:
            module = importlib.import_module(f"spikenas.kernels.{op}.{MODULE_OF[name]}")
        except ImportError as err:
            raise BackendUnavailable(f"backend {name!r}: {op} failed to import: {err}") from err
        reason = getattr(module, "unavailable_reason", lambda: None)()
        if reason:
            raise BackendUnavailable(f"backend {name!r}: {reason}")
        modules[op] = module
    return modules


def diagnostics() -> dict[str, str]:
    """For each backend, ``"available"`` or the reason it is not."""
    out = {}
    for name in BACKENDS:
        try:
            _modules(name)
            out[name] = "available"
        except BackendUnavailable as err:
            out[name] = str(err)
    return out


def resolve(name: str | None = None, device: torch.device | str = "cpu") -> str:
    """Backend name to use: ``name`` if given and not ``auto``, else ``$SPIKENAS_BACKEND``, else
    the first available of :data:`PRIORITY` for ``device``. Forced names must be available."""
    name = name or os.environ.get(ENV_VAR) or "auto"
    if name != "auto":
        _modules(name)
        return name
    kind = "cuda" if torch.device(device).type == "cuda" else "cpu"
    return _auto(kind)


@functools.cache
def _auto(kind: str) -> str:
    for candidate in PRIORITY[kind]:
        try:
            _modules(candidate)
            return candidate
        except BackendUnavailable:
            continue
    return "torch"


def module(op: str, name: str) -> ModuleType:
    """The module implementing ``op`` for backend ``name`` (already resolved)."""
    return _modules(name)[op]
