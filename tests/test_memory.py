"""The analytical memory model equals the built network's parameter count."""

from __future__ import annotations

import random

import numpy as np
import pytest

from spikenas.errors import SpikeNASError
from spikenas.memory import Budget, enumerate_params, network_params, params_to_bytes
from spikenas.network import MacroConfig, build_network
from spikenas.space import Genotype, enumerate_genotypes, num_genotypes


def numel(genotypes, config) -> int:
    return sum(p.numel() for p in build_network(genotypes, config).parameters())


@pytest.mark.parametrize("num_cells", [1, 2, 3])
@pytest.mark.parametrize("width,classes", [(2, 10), (5, 3)])
def test_every_2O_genotype(num_cells, width, classes):
    cfg = MacroConfig(num_cells=num_cells, width=width, num_classes=classes, in_channels=1, input_size=16, hidden=8)
    table = enumerate_params("2O", cfg)
    for i, g in enumerate(enumerate_genotypes("2O")):
        assert network_params(g, cfg) == numel(g, cfg) == table[i]


def test_every_3O_genotype_two_cells():
    cfg = MacroConfig(num_cells=2, width=3, in_channels=3, input_size=8, hidden=5, num_classes=4, vote=2)
    table = enumerate_params("3O", cfg)
    for i, g in enumerate(enumerate_genotypes("3O")):
        assert numel(g, cfg) == table[i]


@pytest.mark.parametrize("num_cells", [1, 2, 3])
def test_random_5O_mixed_cells(num_cells):
    rng = random.Random(num_cells)
    for width, classes, hidden, stride in [(4, 10, 32, 1), (7, 100, 16, 2), (16, 10, 64, 1)]:
        cfg = MacroConfig(
            num_cells=num_cells, width=width, num_classes=classes, hidden=hidden, input_size=16, stem_stride=stride
        )
        for _ in range(6):
            cells = [Genotype.from_index(rng.randrange(num_genotypes("5O")), "5O") for _ in range(num_cells)]
            assert network_params(cells, cfg) == numel(cells, cfg)
            for pos in range(num_cells):
                table = enumerate_params("5O", cfg, position=pos, cells=cells)
                assert table[cells[pos].index("5O")] == network_params(cells, cfg)


def test_snasnet_cifar10_macro_matches_benchmark_param_counts():
    # SpikeNAS-Bench (C = 128, CIFAR-10): no conv edge 17,179,620; each conv3x3 edge adds 738,048.
    cfg = MacroConfig(width=128)
    assert network_params(Genotype(("zero",) * 6), cfg) == 17_179_620
    two_convs = Genotype(("conv3x3", "skip", "conv3x3", "zero", "zero", "zero"))
    assert network_params(two_convs, cfg) == 17_179_620 + 2 * 738_048


def test_budget_in_bytes():
    assert params_to_bytes(10, 4) == 5
    assert params_to_bytes(11, 4) == 6
    assert (params_to_bytes(np.array([10, 11]), 8) == [10, 11]).all()
    b = Budget(1000, bits=4)
    assert b.fits(2000) and not b.fits(2001)
    assert Budget(1000).fits(1000) and not Budget(1000).fits(1001)
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(SpikeNASError, match="budget"):
            Budget(bad)
    with pytest.raises(SpikeNASError, match="bits"):
        Budget(10, bits=0)
