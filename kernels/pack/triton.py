"""Bit packing in Triton: one program packs BLOCK consecutive output words of the flattened
``[rows, W]`` output, reading the spikes as integers of their width (floats with the sign bit
masked off, so -0.0 is no spike and NaN is one, as in ``spikes != 0``).

Same bit order as :mod:`spikenas.kernels.pack.reference`: element ``j`` -> word ``j // 64``, bit ``j % 64``.
"""

from __future__ import annotations

import torch
from spikenas.kernels import _triton
from spikenas.kernels._triton import tl, triton

unavailable_reason = _triton.unavailable_reason

_INT_OF_WIDTH = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
# Words per program: a [BLOCK, 64] tile of spikes.
_BLOCK_GPU = 32
_BLOCK_INTERPRETER = 256


if triton is not None:

    @triton.jit
    def _pack_kernel(src_ptr, out_ptr, total_words, words, n, MASK: tl.constexpr, BLOCK: tl.constexpr):
        flat = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        row = flat // words
        word = flat % words
        bit = tl.arange(0, 64)
        col = word[:, None] * 64 + bit[None, :]
        valid = (flat[:, None] < total_words) & (col < n)
        x = tl.load(src_ptr + row[:, None] * n + col, mask=valid, other=0)
        if MASK != 0:
            x = x & MASK
        bits = (x != 0).to(tl.int64) << bit[None, :].to(tl.int64)
        # Distinct powers of two: the wrapping int64 sum is their bitwise OR.
        tl.store(out_ptr + flat, tl.sum(bits, axis=1), mask=flat < total_words)


def spike_ints(spikes: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Contiguous integer view of ``spikes`` and the constexpr mask (0: any nonzero bit counts).

    Floats keep all bits but the sign bit; bool, integers and complex (as ``!= 0``) use every bit.
    """
    t = spikes.detach()
    if t.dtype.is_complex:
        t = t != 0
    t = t.contiguous()
    width = t.element_size()
    mask = (1 << (8 * width - 1)) - 1 if t.is_floating_point() else 0
    return t.view(_INT_OF_WIDTH[width]), mask


def pack_bits(spikes: torch.Tensor) -> torch.Tensor:
    """Pack ``[..., B, N]`` spikes (nonzero = spike) into int64 ``[..., B, ceil(N / 64)]``.

    :param spikes: CUDA tensor (CPU under the interpreter) of any real dtype.
    """
    _triton.check_device(spikes, "spikes")
    n = spikes.shape[-1]
    words = (n + 63) // 64
    out = torch.empty(*spikes.shape[:-1], words, dtype=torch.int64, device=spikes.device)
    total = out.numel()
    if total:
        ints, mask = spike_ints(spikes)
        block = _BLOCK_INTERPRETER if _triton.interpreting() else _BLOCK_GPU
        _pack_kernel[(triton.cdiv(total, block),)](ints, out, total, words, n, MASK=mask, BLOCK=block)
    return out
