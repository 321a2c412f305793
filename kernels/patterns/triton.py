"""The triton backend's distinct-pattern count: the packed-word implementation of
:mod:`spikenas.kernels.patterns.packed`, run by PyTorch on the tensors' device (no Triton kernel
for this op)."""

from __future__ import annotations

from spikenas.kernels.patterns.packed import count_distinct

__all__ = ["count_distinct"]
