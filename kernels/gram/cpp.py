"""Hamming Gram and spike kernels in C++ (``spikenas._native``): popcounts of packed words.

Each layer call's exact Hamming counts come from one of two paths, picked per call by a cost model
measured for each instruction-set variant (bench/calibrate_gram.py): *dense*, XOR popcounts of row
pairs over 32 x 32 tiles on and above the diagonal (the lower triangle is mirrored), or *sparse*,
the rows' bits transposed into columns and, per row, a bit-sliced count of the columns at its set
bits (its zero bits for rows firing more than half the time), whose work follows the number of
spikes (csrc/gram.cpp, csrc/columns.hpp). ``spikenas._native.set_gram_path("dense" | "sparse")``
forces one (tests, benchmarks); both give the same integers. OpenMP runs over layer calls and,
for fewer calls than threads, over parts of their words. The popcount is AVX-512 VPOPCNTQ, AVX2
Harley-Seal, the popcnt instruction or SWAR, chosen at import by the CPU (``spikenas._native.popcount_impl()``).
The kernel matrix is accumulated over G in float64 with the reference's formula, in G order for
every entry. Results: Hamming counts equal the reference exactly; kernel matrices agree to ~1e-15
relative (the reference sums over G in another order).
"""

from __future__ import annotations

import math

import torch
from spikenas.kernels import _cpp

unavailable_reason = _cpp.unavailable_reason


def hamming_gram(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Hamming distances between packed rows: int64 ``[..., B, W]`` -> int32 ``[..., B, B]``.

    :param n: the unpacked row length; bits past it must be zero (they are counted).
    """
    _cpp.require_cpu(packed, "packed")
    b, words = packed.shape[-2:]
    out = torch.empty(*packed.shape[:-1], b, dtype=torch.int32)
    items = math.prod(packed.shape[:-2])
    if items == 0:
        return out
    if words == 0:
        return out.zero_()
    _cpp.native().hamming_gram(_cpp.array(packed.contiguous()), items, b, words, _cpp.array(out), _cpp.threads())
    return out


def spike_gram(
    packed: torch.Tensor, n: int, *, kind: str = "sahd", alpha: float = 0.5, eps: float = 1e-3
) -> torch.Tensor:
    """Sum over G layer calls of their kernels: int64 ``[..., G, B, W]`` -> float64 ``[..., B, B]``."""
    _cpp.require_cpu(packed, "packed")
    groups, b, words = packed.shape[-3:]
    out = torch.empty(*packed.shape[:-3], b, b, dtype=torch.float64)
    items = math.prod(packed.shape[:-3])
    if items == 0:
        return out
    _cpp.native().spike_gram(
        _cpp.array(packed.contiguous()),
        items,
        groups,
        b,
        words,
        n,
        kind,
        float(alpha),
        float(eps),
        _cpp.array(out),
        _cpp.threads(),
    )
    return out


def spike_gram_dense(
    spikes: torch.Tensor, *, kind: str = "sahd", alpha: float = 0.5, eps: float = 1e-3
) -> torch.Tensor:
    """As :func:`spike_gram` from unpacked spikes ``[..., G, B, N]`` of any real dtype.

    Packs and counts straight from the spike buffer (no float copy; the packed copy is 8x to 64x
    smaller), then accumulates the kernel as :func:`spike_gram` does.
    """
    _cpp.require_cpu(spikes, "spikes")
    groups, b, n = spikes.shape[-3:]
    out = torch.empty(*spikes.shape[:-3], b, b, dtype=torch.float64)
    items = math.prod(spikes.shape[:-3])
    if items == 0:
        return out
    bits, mask = _cpp.spike_bits(spikes)
    _cpp.native().spike_gram_dense(
        bits, mask, items, groups, b, n, kind, float(alpha), float(eps), _cpp.array(out), _cpp.threads()
    )
    return out
