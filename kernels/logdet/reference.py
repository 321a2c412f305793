"""Batched sign and log|det| through torch's LU with partial pivoting (LAPACK/cuSOLVER getrf)."""

from __future__ import annotations

import torch


def slogdet(matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., B, B]`` float -> (sign ``[...]``, log|det| ``[...]``) in float64.

    A singular matrix gives sign 0 and log|det| = -inf. Singular means numerically rank-deficient:
    some pivot of the LU (partial pivoting, float64) is within its worst-case rounding error,
    ``|u_kk| <= B**2 * eps64 * max_ij |u_ij|`` (exact zeros included). LU in floating point rarely
    leaves an exact zero even for duplicate rows (LAPACK scales by the pivot's reciprocal), so an
    exact-zero test would report a finite value around log(eps) for them instead.
    A matrix with a non-finite entry in its factor gives sign and log|det| NaN.
    """
    a = matrices.to(torch.float64)
    n = a.shape[-1]
    if n == 0:
        return a.new_ones(a.shape[:-2]), a.new_zeros(a.shape[:-2])
    lu, pivots, _ = torch.linalg.lu_factor_ex(a)
    diag = lu.diagonal(dim1=-2, dim2=-1)
    magnitude = diag.abs()
    swaps = (pivots != torch.arange(1, n + 1, device=a.device, dtype=pivots.dtype)).sum(dim=-1)
    sign = diag.sign().prod(dim=-1) * (1 - 2 * (swaps % 2)).to(torch.float64)
    logabs = magnitude.log().sum(dim=-1)
    scale = lu.triu().abs().amax(dim=(-2, -1))
    tol = n * n * torch.finfo(torch.float64).eps * scale
    singular = (magnitude <= tol.unsqueeze(-1)).any(dim=-1)
    sign = torch.where(singular, torch.zeros_like(sign), sign)
    logabs = torch.where(singular, torch.full_like(logabs, float("-inf")), logabs)
    bad = ~torch.isfinite(scale)
    nan = torch.full_like(sign, float("nan"))
    return torch.where(bad, nan, sign), torch.where(bad, nan, logabs)
