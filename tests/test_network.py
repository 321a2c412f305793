"""Network builder: shapes, per-position genotypes, seeding, bad configurations."""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based.neuron import LIFNode

from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig, build_network
from spikenas.space import Genotype


@pytest.mark.parametrize("num_cells", [1, 2, 3])
def test_forward_shapes_and_lif_settings(num_cells):
    cfg = MacroConfig(num_cells=num_cells, width=4, in_channels=3, input_size=16, hidden=8, num_classes=7)
    cells = [Genotype.from_index(i * 100 + 5, "3O") for i in range(num_cells)]
    net = build_network(cells, cfg, seed=0)
    assert [c.genotype for c in net.cells if hasattr(c, "genotype")] == cells
    with torch.no_grad():
        out = net(torch.randn(3, 3, 16, 16))
    assert out.shape == (3, 7)
    lifs = [m for m in net.modules() if isinstance(m, LIFNode)]
    assert lifs and all(m.step_mode == "m" and m.detach_reset and m.v_reset == 0.0 for m in lifs)
    assert all(abs(m.tau - 4 / 3) < 1e-12 and m.v_threshold == 1.0 for m in lifs)


def test_seed_reproducible_and_global_rng_untouched():
    cfg = MacroConfig(width=4, in_channels=1, input_size=8, hidden=8)
    g = Genotype.from_index(100, "3O")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = build_network(g, cfg, seed=7), build_network(g, cfg, seed=7)
    assert torch.rand(1) == before
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(
    "changes,match",
    [({"num_cells": 4}, "num_cells"), ({"num_cells": 0}, "num_cells"), ({"width": 0}, "width"),
     ({"input_size": 4, "num_cells": 3}, "input_size"), ({"stem_stride": 3}, "stem_stride")],
)
def test_bad_macro_config(changes, match):
    with pytest.raises(SpikeNASError, match=match):
        MacroConfig(**changes)


def test_wrong_number_of_genotypes():
    with pytest.raises(SpikeNASError, match="genotypes"):
        build_network([Genotype.from_index(0, "2O")] * 3, MacroConfig(num_cells=2))
