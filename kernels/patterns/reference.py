"""Pure-PyTorch count of distinct binary patterns: the source of truth for every other backend.

Works on the unpacked bits: each row of ``[..., R, W]`` packed words is unpacked to its ``n`` bits
(:func:`spikenas.kernels.pack.reference.unpack_bits`) and the distinct rows of every group are
counted with ``torch.unique(dim=0)``.
"""

from __future__ import annotations

import math

import torch
from spikenas.kernels.pack.reference import unpack_bits


def count_distinct(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Distinct rows per group: int64 ``[..., R, W]`` packed patterns -> int64 ``[...]`` (0 when R = 0).

    :param n: bits per row (``64 (W - 1) < n <= 64 W``); bits past it are ignored.
    """
    lead = packed.shape[:-2]
    rows = packed.shape[-2]
    groups = math.prod(lead)
    out = torch.zeros(groups, dtype=torch.int64)
    if rows == 0 or groups == 0:
        return out.reshape(lead).to(packed.device)
    bits = unpack_bits(packed.reshape(groups, rows, packed.shape[-1]), n).to(torch.uint8)
    for g in range(groups):
        out[g] = torch.unique(bits[g], dim=0).shape[0]
    return out.reshape(lead).to(packed.device)


def count_distinct_dense(patterns: torch.Tensor) -> torch.Tensor:
    """As :func:`count_distinct` from unpacked patterns ``[..., R, n]`` (nonzero = 1) -> int64 ``[...]``."""
    lead = patterns.shape[:-2]
    rows, n = patterns.shape[-2:]
    groups = math.prod(lead)
    out = torch.zeros(groups, dtype=torch.int64)
    bits = (patterns != 0).to(torch.uint8).reshape(groups, rows, n)
    for g in range(groups if rows else 0):
        out[g] = torch.unique(bits[g], dim=0).shape[0]
    return out.reshape(lead).to(patterns.device)
