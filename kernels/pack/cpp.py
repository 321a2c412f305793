"""Bit packing in C++ (``spikenas._native``): AVX2 compare-and-movemask, or a portable loop.

Same bit order as :mod:`spikenas.kernels.pack.reference`: element ``j`` -> word ``j // 64``, bit ``j % 64``;
padding bits zero. Reads bool, integer and float spikes in place (no float copy).
"""

from __future__ import annotations

import torch
from spikenas.kernels import _cpp

unavailable_reason = _cpp.unavailable_reason


def pack_bits(spikes: torch.Tensor) -> torch.Tensor:
    """Pack ``[..., B, N]`` spikes (nonzero = spike) into int64 ``[..., B, ceil(N / 64)]``.

    :param spikes: CPU tensor of any real dtype.
    :raises ValueError: for a tensor that is not on the CPU.
    """
    _cpp.require_cpu(spikes, "spikes")
    n = spikes.shape[-1]
    out = torch.empty(*spikes.shape[:-1], (n + 63) // 64, dtype=torch.int64)
    rows = out.numel() // out.shape[-1]
    if rows:
        bits, mask = _cpp.spike_bits(spikes)
        _cpp.native().pack_bits(bits, rows, n, mask, _cpp.array(out), _cpp.threads())
    return out
