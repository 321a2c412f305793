"""Seed noise of the multi-fidelity stage's statistic: how far apart two trainings of one network land.

A rung ranks its candidates by their mean validation accuracy over the last ``window`` epochs it trained them to.
Two runs of the same network that differ only in their initialisation differ in that statistic too; a lead
smaller than this difference says nothing about which network is better. The rerank guard
(:func:`spikenas.nas.rerank.run_schedule`) lets a candidate replace the training-free pick only with a lead in
validation accuracy after the schedule's last epoch above a margin, by default the median of this noise for that
epoch and a window of 1 (:func:`statistic_noise`).

:data:`MEDIAN` was measured on SpikeNAS-Bench's dev half (CIFAR-10, 7,812 records, one run each): 76,400 pairs of
records whose cells hold the same op on every live edge, so that each pair is one network trained with two
initialisations (``python -m spikenas.analyze guard`` measures it, and ``tests/test_guard.py`` recomputes this
table from the data). It is a prior for other datasets and recipes; the ground truth on Fashion-MNIST measures
its own (docs/results/ground_truth/).
"""

from __future__ import annotations

import bisect

from spikenas.errors import SpikeNASError

#: Epochs of the table's columns.
EPOCHS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100)
#: MEDIAN[window][i]: median |difference| (points of validation accuracy) of the mean over the ``window`` epochs
#: ending at epoch ``EPOCHS[i]`` between two runs of one network.
MEDIAN: dict[int, tuple[float, ...]] = {
    1: (2.81, 3.00, 3.17, 2.88, 2.72, 2.42, 2.28, 1.98, 1.84, 1.61, 1.38, 1.14, 1.02, 0.79, 0.65, 0.49, 0.32, 0.30),
    2: (2.81, 2.50, 2.58, 2.54, 2.34, 2.20, 1.95, 1.75, 1.60, 1.42, 1.23, 1.01, 0.90, 0.68, 0.56, 0.41, 0.28, 0.26),
    3: (2.81, 2.50, 2.23, 2.21, 2.20, 2.05, 1.80, 1.64, 1.47, 1.29, 1.13, 0.97, 0.82, 0.65, 0.53, 0.38, 0.27, 0.25),
    4: (2.81, 2.50, 2.23, 2.01, 1.96, 1.94, 1.71, 1.53, 1.41, 1.21, 1.07, 0.89, 0.77, 0.61, 0.50, 0.36, 0.26, 0.25),
    5: (2.81, 2.50, 2.23, 2.01, 1.82, 1.76, 1.63, 1.44, 1.36, 1.18, 1.00, 0.83, 0.74, 0.57, 0.48, 0.36, 0.26, 0.24),
}


def statistic_noise(epoch: int, window: int) -> float:
    """Median seed noise (points) of the mean validation accuracy over the ``window`` epochs ending at ``epoch``.

    Between the table's epochs, the noise of the nearest tabled epoch at or below ``epoch`` (the noise falls
    as training goes on, so this errs towards a wider margin); past its last epoch or widest window, the last.

    :raises SpikeNASError: ``epoch`` or ``window`` below 1.
    """
    if epoch < 1 or window < 1:
        raise SpikeNASError(f"seed noise needs epoch >= 1 and window >= 1, got epoch {epoch}, window {window}")
    row = MEDIAN[min(window, max(MEDIAN))]
    return row[bisect.bisect_right(EPOCHS, epoch) - 1]
