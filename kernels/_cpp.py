"""Loader of the C++ extension ``spikenas._native`` and the tensor -> NumPy views it consumes.

The extension takes C-contiguous NumPy buffers: CPU tensors pass as zero-copy ``.numpy()`` views
and outputs are preallocated torch tensors, so no data is copied on the way in or out. A missing,
stale or mis-configured build makes :func:`unavailable_reason` say what happened and how to fix it;
the backend is then unavailable (never a stub that fails later).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import torch

#: Must equal ``kAbiVersion`` in csrc/module.cpp.
ABI_VERSION = 2
REBUILD = "build it with `pip install -e . --no-build-isolation` (or `python setup.py build_ext --inplace`)"

_native: ModuleType | None = None
_reason: str | None = None


def _load() -> None:
    global _native, _reason
    if _native is not None or _reason is not None:
        return
    try:
        module = importlib.import_module("spikenas._native")
    except ImportError as err:
        _reason = f"the C++ extension spikenas._native is not importable ({err}); {REBUILD}"
        return
    found = getattr(module, "ABI_VERSION", None)
    if found != ABI_VERSION:
        _reason = f"spikenas._native is stale (ABI {found}, this package needs {ABI_VERSION}); re{REBUILD}"
        return
    _native = module


def unavailable_reason() -> str | None:
    """Why the C++ backend cannot run here, or None when it can."""
    _load()
    return _reason


def native() -> ModuleType:
    """The loaded extension; raises ImportError with the reason when there is none."""
    _load()
    if _native is None:
        raise ImportError(_reason)
    return _native


def threads() -> int:
    """OpenMP threads per call: torch's intra-op setting, so ``torch.set_num_threads`` applies."""
    return max(1, torch.get_num_threads())


def require_cpu(tensor: torch.Tensor, name: str) -> None:
    """The C++ backend reads host memory; raise ValueError naming ``name`` for other devices."""
    if tensor.device.type != "cpu":
        raise ValueError(f"{name} must be a CPU tensor for the cpp backend, got device {tensor.device}")


def array(tensor: torch.Tensor) -> np.ndarray:
    """Zero-copy NumPy view of a contiguous CPU tensor of a NumPy-representable dtype."""
    return tensor.detach().numpy()


_INT_OF_WIDTH = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def spike_bits(spikes: torch.Tensor) -> tuple[np.ndarray, int]:
    """Integer view of ``spikes`` and the mask under which an element is a spike (nonzero).

    Floats are viewed as integers of their width with the sign bit masked off, so that -0.0 counts
    as zero and NaN as a spike, exactly like ``spikes != 0``; bool and integers use every bit.
    Non-contiguous inputs are made contiguous (the one copy this path can make).

    :param spikes: CPU tensor ``[..., N]`` of any real dtype.
    :returns: (C-contiguous 1/2/4/8-byte integer array of the same elements, mask).
    """
    t = spikes.detach().contiguous()
    if t.dtype.is_complex:
        t = t != 0
    width = t.element_size()
    view = t.view(_INT_OF_WIDTH[width])
    mask = (1 << (8 * width - 1)) - 1 if t.is_floating_point() else (1 << (8 * width)) - 1
    return view.numpy(), mask
