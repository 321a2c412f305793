"""Rank correlations between a training-free score and trained accuracy: Kendall's tau-b and Spearman's rho.

Both are written here in numpy (scipy is not a dependency). Ties are handled: tau-b corrects for ties
in either variable, rho is the Pearson correlation of average ranks. A constant input has no defined
rank correlation and gives NaN, the same as scipy.
"""

from __future__ import annotations

import numpy as np

from spikenas.errors import SpikeNASError


def _pair(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate two equal-length 1-D finite sequences; return them as float64 arrays."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise SpikeNASError(f"x and y must be 1-D, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise SpikeNASError(f"x and y must have the same length, got {a.size} and {b.size}")
    if a.size < 2:
        raise SpikeNASError(f"need at least 2 pairs for a rank correlation, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise SpikeNASError("x and y must be finite (drop failed candidates before correlating)")
    return a, b


def rankdata(x: object) -> np.ndarray:
    """Average ranks (1-based, ties share the mean of their positions) of a 1-D array; float64 ``[n]``."""
    a = np.asarray(x, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.concatenate(([True], sorted_a[1:] != sorted_a[:-1]))
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.concatenate((first[1:], [a.size])) - 1
    avg = (first + last) / 2.0 + 1.0
    ranks = np.empty(a.size, dtype=np.float64)
    ranks[order] = avg[group]
    return ranks


def spearman_rho(x: object, y: object) -> float:
    """Spearman's rank correlation of two equal-length 1-D sequences (NaN when either is constant)."""
    a, b = _pair(x, y)
    ra = rankdata(a) - (a.size + 1) / 2.0
    rb = rankdata(b) - (b.size + 1) / 2.0
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    if denom == 0.0:
        return float("nan")
    return float((ra * rb).sum() / denom)


def kendall_parts(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int, int]:
    """Kendall's sums of two float64 ``[n]`` arrays (unchecked): (concordant - discordant pairs, pairs, pairs
    tied in ``a``, pairs tied in ``b``). Tau-b is the first over the root of (pairs - tied) products; summing the
    parts over groups gives a pooled within-group tau."""
    n = a.size
    concordant_minus_discordant = 0.0
    tied_a = 0
    tied_b = 0
    for i in range(n - 1):
        da = np.sign(a[i + 1 :] - a[i])
        db = np.sign(b[i + 1 :] - b[i])
        concordant_minus_discordant += float((da * db).sum())
        tied_a += int((da == 0).sum())
        tied_b += int((db == 0).sum())
    return concordant_minus_discordant, n * (n - 1) // 2, tied_a, tied_b


def kendall_tau(x: object, y: object) -> float:
    """Kendall's tau-b of two equal-length 1-D sequences (NaN when either is constant).

    tau_b = (C - D) / sqrt((n0 - n1) (n0 - n2)) with n0 = n(n-1)/2 and n1, n2 the pairs tied in x, in y.
    O(n^2) in memory-free pairwise form, which is ample for the tens to thousands of architectures
    a correlation study trains.
    """
    a, b = _pair(x, y)
    concordant_minus_discordant, n0, tied_a, tied_b = kendall_parts(a, b)
    denom = np.sqrt(float(n0 - tied_a) * float(n0 - tied_b))
    if denom == 0.0:
        return float("nan")
    return float(concordant_minus_discordant / denom)
