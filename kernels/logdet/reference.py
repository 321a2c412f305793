"""Batched sign and log|det| through torch.linalg.slogdet (LU with partial pivoting)."""

from __future__ import annotations

import torch


def slogdet(matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., B, B]`` float -> (sign ``[...]``, log|det| ``[...]``) in float64.

    A singular matrix gives sign 0 and log|det| = -inf.
    """
    sign, logabs = torch.linalg.slogdet(matrices.to(torch.float64))
    logabs = torch.where(sign == 0, torch.full_like(logabs, float("-inf")), logabs)
    return sign, logabs
