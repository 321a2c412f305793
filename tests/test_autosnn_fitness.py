"""AutoSNN's spike-aware fitness and its training-free counterpart: the arithmetic."""

from __future__ import annotations

import math

import pytest

from spikenas.autosnn.fitness import LAMBDA, TARGET_SPIKES, score_fitness, spike_aware_fitness
from spikenas.errors import SpikeNASError


def test_autosnn_constants():
    assert TARGET_SPIKES == 110_000 and LAMBDA == -0.08


@pytest.mark.parametrize(
    "acc, spikes, expected",
    [
        (0.9, 110_000, 0.9),  # at the target the spike term is 1
        (0.9, 55_000, 0.9 * 0.5**-0.08),  # half the spikes: a bonus of 2 ** 0.08
        (0.5, 220_000, 0.5 * 2.0**-0.08),  # twice the spikes: a penalty
        (0.0, 12_345, 0.0),
    ],
)
def test_spike_aware_fitness_values(acc, spikes, expected):
    assert spike_aware_fitness(acc, spikes) == pytest.approx(expected, rel=1e-12)


def test_fewer_spikes_win_at_equal_accuracy_and_accuracy_dominates_small_spike_changes():
    assert spike_aware_fitness(0.8, 50_000) > spike_aware_fitness(0.8, 60_000)
    # 10% more spikes costs 0.76% of fitness: a 1-point accuracy gain outweighs it
    assert spike_aware_fitness(0.81, 110_000) > spike_aware_fitness(0.80, 100_000)


def test_target_rescales_but_never_reorders():
    pairs = [(0.7, 3_000.0), (0.72, 9_000.0), (0.69, 500.0)]
    for target in (1_000.0, 110_000.0):
        ratios = [spike_aware_fitness(a, s, target=target) / spike_aware_fitness(a, s) for a, s in pairs]
        assert ratios == pytest.approx([ratios[0]] * 3)
        assert ratios[0] == pytest.approx((target / 110_000.0) ** 0.08)


def test_zero_spikes_clamped_to_one():
    assert spike_aware_fitness(0.3, 0.0, target=100.0) == pytest.approx(0.3 * 100.0**0.08)
    assert spike_aware_fitness(0.3, 0.0) == spike_aware_fitness(0.3, 1.0)
    assert math.isfinite(score_fitness(-5.0, 0.0))


def test_custom_lambda():
    assert spike_aware_fitness(0.5, 400.0, target=100.0, lam=-0.5) == pytest.approx(0.25)
    assert spike_aware_fitness(0.5, 400.0, target=100.0, lam=0.0) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(acc=1.5, spikes=10.0), "acc"),
        (dict(acc=-0.1, spikes=10.0), "acc"),
        (dict(acc=0.5, spikes=-1.0), "spikes"),
        (dict(acc=0.5, spikes=float("nan")), "spikes"),
        (dict(acc=0.5, spikes=10.0, target=0.0), "target"),
    ],
)
def test_spike_aware_fitness_rejects_bad_values(kwargs, match):
    with pytest.raises(SpikeNASError, match=match):
        spike_aware_fitness(**kwargs)


def test_score_fitness_is_the_log_domain_product():
    score, spikes, target, scale = -12.5, 2_000.0, 8_000.0, 64.0
    expected = score + scale * LAMBDA * math.log(spikes / target)
    assert score_fitness(score, spikes, target=target, scale=scale) == pytest.approx(expected)
    # with score = scale * log(acc) it equals scale * log of AutoSNN's fitness
    acc = 0.6
    assert score_fitness(scale * math.log(acc), spikes, target=target, scale=scale) == pytest.approx(
        scale * math.log(spike_aware_fitness(acc, spikes, target=target))
    )


def test_score_fitness_handles_negative_scores_and_orders_by_spikes():
    assert score_fitness(-3.0, 110_000.0) == -3.0
    assert score_fitness(-3.0, 1_000.0) > score_fitness(-3.0, 10_000.0)
    assert score_fitness(float("-inf"), 10.0) == float("-inf")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(score=float("nan"), spikes=1.0), "score"),
        (dict(score=float("inf"), spikes=1.0), "score"),
        (dict(score=1.0, spikes=1.0, scale=0.0), "scale"),
        (dict(score=1.0, spikes=-2.0), "spikes"),
    ],
)
def test_score_fitness_rejects_bad_values(kwargs, match):
    with pytest.raises(SpikeNASError, match=match):
        score_fitness(**kwargs)
