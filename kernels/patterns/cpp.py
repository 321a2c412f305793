"""The cpp backend's distinct-pattern count: the packed-word implementation of
:mod:`spikenas.kernels.patterns.packed` (PyTorch sorts on the words the C++ packer wrote; there is no
native code for this op)."""

from __future__ import annotations

from spikenas.kernels.patterns.packed import count_distinct

__all__ = ["count_distinct"]
