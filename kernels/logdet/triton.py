"""Batched sign and log|det| for the Triton backend: delegates to :mod:`kernels.logdet.reference`
(torch.linalg's batched LU, cuSOLVER on a GPU) with the same explicit singular rule.

A Triton LU would run one matrix per program through B dependent pivot steps; for the batches a
search produces (tens of matrices, B <= 512) that leaves most of the GPU idle, and the measured
cuSOLVER figures (see the kernels README table) left no room worth a second implementation.
"""

from __future__ import annotations

import torch

from kernels import _triton
from kernels.logdet import reference

unavailable_reason = _triton.unavailable_reason


def slogdet(matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., B, B]`` float -> (sign ``[...]``, log|det| ``[...]``) in float64; singular: 0, -inf."""
    _triton.check_device(matrices, "matrices")
    return reference.slogdet(matrices)
