"""Rank correlations between a training-free score and trained accuracy: Kendall's tau-b and Spearman's rho.

scipy.stats computes both (``kendalltau`` with ``variant="b"``, which corrects for ties in either variable, and
``spearmanr``, the Pearson correlation of average ranks); this module adds the package's input checks. A
constant input has no defined rank correlation and gives NaN (without scipy's warning).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

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


def _constant(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a.min() == a.max() or b.min() == b.max())


def kendall_tau(x: object, y: object) -> float:
    """Kendall's tau-b of two equal-length 1-D finite sequences (at least 2 pairs; NaN when either is constant).

    :raises SpikeNASError: inputs that are not 1-D, of different lengths, shorter than 2 or not finite.
    """
    a, b = _pair(x, y)
    if _constant(a, b):
        return float("nan")
    return float(stats.kendalltau(a, b, variant="b").statistic)


def spearman_rho(x: object, y: object) -> float:
    """Spearman's rank correlation of two equal-length 1-D finite sequences (at least 2 pairs; NaN when either is
    constant).

    :raises SpikeNASError: as :func:`kendall_tau`.
    """
    a, b = _pair(x, y)
    if _constant(a, b):
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)
