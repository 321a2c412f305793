"""Shared pieces of the Triton backend: availability, launch settings and the popcount.

Triton runs on a CUDA GPU, or on the CPU under its interpreter when ``TRITON_INTERPRET=1`` is set
before triton is first imported (then every program runs serially in NumPy, so only small shapes
are practical). The interpreter has no libdevice, so the popcount there is SWAR (shift, mask,
multiply: exact for every 32-bit word) behind the ``USE_SWAR`` constexpr; on a GPU it is the
hardware ``popc`` instruction.
"""

from __future__ import annotations

import functools
import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError as _err:  # the backend then reports itself unavailable
    triton = None
    tl = None
    _IMPORT_ERROR: ImportError | None = _err
else:
    _IMPORT_ERROR = None


def interpreting() -> bool:
    """True when triton runs on the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def unavailable_reason() -> str | None:
    """Why the Triton backend cannot run here, or None when it can."""
    if _IMPORT_ERROR is not None:
        return f"triton is not importable ({_IMPORT_ERROR})"
    if interpreting():
        return None
    if not torch.cuda.is_available():
        return (
            "triton needs a CUDA device; none is visible (to run its kernels on the CPU interpreter, "
            "set TRITON_INTERPRET=1 before triton is imported)"
        )
    return None


def check_device(tensor: torch.Tensor, name: str) -> None:
    """Kernels take CUDA tensors, or CPU tensors under the interpreter; ValueError otherwise."""
    if interpreting() or tensor.device.type == "cuda":
        return
    raise ValueError(
        f"{name} must be a CUDA tensor for the triton backend (or set TRITON_INTERPRET=1), got device {tensor.device}"
    )


def use_swar() -> bool:
    """Whether kernels count bits with SWAR (the interpreter) instead of the hardware popc."""
    return interpreting()


@functools.cache
def multiprocessors(device_index: int) -> int:
    """Streaming multiprocessors of a CUDA device (1 under the interpreter)."""
    if interpreting() or not torch.cuda.is_available():
        return 1
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def device_index(tensor: torch.Tensor) -> int:
    return tensor.device.index if tensor.device.type == "cuda" and tensor.device.index is not None else 0


if triton is not None:
    try:
        from triton.language.extra import libdevice
    except ImportError:  # older layouts
        from triton.language.extra.cuda import libdevice

    @triton.jit
    def popcount32(x, USE_SWAR: tl.constexpr):
        """Set bits of each int32 element, as int32 (0..32)."""
        if USE_SWAR:
            v = x.to(tl.uint32, bitcast=True)
            v = v - ((v >> 1) & 0x55555555)
            v = (v & 0x33333333) + ((v >> 2) & 0x33333333)
            v = (v + (v >> 4)) & 0x0F0F0F0F
            return ((v * 0x01010101) >> 24).to(tl.int32)
        else:
            return libdevice.popc(x)
