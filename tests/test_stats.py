"""Rank correlations (scipy.stats with the package's checks) against hand-worked and published values."""

from __future__ import annotations

import math
import warnings

import pytest

from spikenas.errors import SpikeNASError
from spikenas.stats import kendall_tau, spearman_rho


def test_perfect_and_reversed_order():
    x = [0.1, 0.5, 0.7, 2.0]
    assert kendall_tau(x, [1, 2, 3, 4]) == pytest.approx(1.0)
    assert spearman_rho(x, [1, 2, 3, 4]) == pytest.approx(1.0)
    assert kendall_tau(x, [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman_rho(x, [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_known_values_with_ties():
    # scipy.stats documentation example: kendalltau -> 0.7378647873726218, spearmanr -> 0.8207826816681233
    x = [1, 2, 3, 4, 5]
    y = [5, 6, 7, 8, 7]
    assert kendall_tau(x, y) == pytest.approx(0.7378647873726218, abs=1e-12)
    assert spearman_rho(x, y) == pytest.approx(0.8207826816681233, abs=1e-12)


def test_hand_worked_tau_without_ties():
    x = [1, 2, 3, 4]
    y = [3, 4, 2, 1]
    # C: (0,1); D: (0,2),(0,3),(1,2),(1,3),(2,3) -> C=1, D=5, tau=(1-5)/6
    assert kendall_tau(x, y) == pytest.approx(-4 / 6)
    # rho = 1 - 6 sum d^2 / (n (n^2-1)); d = [-2,-2,1,3] -> sum 18 -> 1 - 108/60
    assert spearman_rho(x, y) == pytest.approx(1 - 6 * 18 / 60)


def test_tau_b_corrects_for_ties_in_both_variables():
    # pairs (0,1), (0,2), (0,3) concordant, (1,2) tied in both, (1,3), (2,3) tied in y: C - D = 3 over
    # 6 pairs, 1 tied in x, 3 tied in y: tau-b = 3 / sqrt(5 * 3) (tau-a would be 3 / 6, tau-c another value)
    x = [1, 2, 2, 3]
    y = [1, 2, 2, 2]
    assert kendall_tau(x, y) == pytest.approx(3 / math.sqrt(5 * 3), abs=1e-15)


def test_two_pairs_and_constant_input_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns on constant input; the package answers NaN quietly
        assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
        assert math.isnan(spearman_rho([1, 2, 3], [7, 7, 7]))
        assert kendall_tau([1, 2], [3, 4]) == 1.0
        assert spearman_rho([1, 2], [4, 3]) == pytest.approx(-1.0, abs=1e-15)


@pytest.mark.parametrize(
    "x, y, match",
    [([1, 2], [1, 2, 3], "same length"), ([1], [1], "at least 2"), ([1, float("nan")], [1, 2], "finite")],
)
def test_bad_input(x, y, match):
    with pytest.raises(SpikeNASError, match=match):
        kendall_tau(x, y)
    with pytest.raises(SpikeNASError, match=match):
        spearman_rho(x, y)
