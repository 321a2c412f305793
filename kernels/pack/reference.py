"""Pure-PyTorch bit packing: the source of truth for every other backend.

Bit order: element ``j`` of a row lands in word ``j // 64`` at bit ``j % 64`` (least significant bit
first); the bits past ``N`` in the last word are zero. Words are stored as int64 (two's complement
of the uint64 value), because torch has no general uint64 arithmetic.
"""

from __future__ import annotations

import torch

_SHIFTS = torch.arange(64, dtype=torch.int64)


def pack_bits(spikes: torch.Tensor) -> torch.Tensor:
    """Pack ``[..., B, N]`` spikes (nonzero = spike) into int64 ``[..., B, ceil(N / 64)]``."""
    n = spikes.shape[-1]
    words = (n + 63) // 64
    bits = (spikes != 0).to(torch.int64)
    if words * 64 != n:
        bits = torch.nn.functional.pad(bits, (0, words * 64 - n))
    bits = bits.reshape(*spikes.shape[:-1], words, 64)
    # Summing distinct powers of two cannot carry, so the int64 sum equals the bitwise OR.
    return (bits << _SHIFTS.to(spikes.device)).sum(dim=-1)


def unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: int64 ``[..., B, W]`` -> bool ``[..., B, n]``."""
    bits = (packed.unsqueeze(-1) >> _SHIFTS.to(packed.device)) & 1
    return bits.reshape(*packed.shape[:-1], -1)[..., :n].bool()
