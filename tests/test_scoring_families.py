"""Score families (SWAP counts, MeCo on potentials, NASWOT on cell nodes, ZiCo, Jacobian
covariance, short training): each gives a finite float on a tiny network, is deterministic for a seed, and
agrees with a direct computation where the answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from spikenas import scoring, spikenas_bench
from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig, build_network
from spikenas.scoring import ScoreConfig
from spikenas.scoring.analog_kernel import node_code_kernel
from spikenas.scoring.jacobian import input_jacobians, jacobian_score
from spikenas.scoring.pattern_count import distinct_patterns, recording_pattern_count
from spikenas.scoring.potential import min_channel_eigenvalue
from spikenas.scoring.recorder import record_values
from spikenas.scoring.short_training import ShortTraining, short_training
from spikenas.scoring.zico import zico_from_gradients
from spikenas.space import Genotype

# node 0 feeds two LIF convs (0,1) and (0,2); (1,3) conv, (2,3) skip, (0,3) zero, (1,2) zero
CELL = Genotype(("lif05_conv3x3", "lif10_conv3x3", "zero", "zero", "lif15_conv3x3", "skip"))
FAMILIES = ("swap_call", "swap_time", "swap_node", "meco_potential", "naswot_nodes", "zico", "jacob_cov")


@pytest.fixture
def macro() -> MacroConfig:
    return MacroConfig(num_cells=2, width=4, in_channels=3, input_size=8, hidden=16, timesteps=3)


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2.0


def _score(name: str, macro: MacroConfig, batch: torch.Tensor, seed: int) -> float:
    net = build_network(CELL, macro, seed=seed)
    candidate = scoring.prepare_candidate((CELL, CELL), macro, net, [batch], config=ScoreConfig(name=name), seed=seed)
    return scoring.get_score(name).fn(candidate)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_is_finite_and_deterministic(name: str, macro: MacroConfig, batch: torch.Tensor) -> None:
    assert scoring.get_score(name).doc
    value = _score(name, macro, batch, seed=3)
    assert isinstance(value, float) and math.isfinite(value)
    assert _score(name, macro, batch, seed=3) == value


def test_short_training_is_finite_and_deterministic(macro: MacroConfig, batch: torch.Tensor) -> None:
    labels = torch.arange(12) % 10
    config = ShortTraining(steps=6, batch_size=4)
    first = short_training((CELL, CELL), macro, batch, labels, seed=1, config=config)
    again = short_training((CELL, CELL), macro, batch, labels, seed=1, config=config)
    assert math.isfinite(first.train_loss) and 0 <= first.accuracy <= 1 and math.isfinite(first.loss)
    assert (first.train_loss, first.accuracy, first.loss) == (again.train_loss, again.accuracy, again.loss)
    with pytest.raises(SpikeNASError, match="steps"):
        ShortTraining(steps=0)


def test_recording_matches_the_network(macro: MacroConfig, batch: torch.Tensor) -> None:
    net = build_network(CELL, macro, seed=0)
    outputs = []
    net.cells[0].register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
    rec = record_values(net, batch, spikes=True, potentials=True, nodes=True)
    torch.testing.assert_close(rec.nodes["cells.0.node3"], outputs[0], rtol=0, atol=0)
    assert "cells.0.node2" in rec.nodes and rec.nodes_recorded
    lif = [m for m in net.modules() if hasattr(m, "store_v_seq")]
    assert not any(m.store_v_seq for m in lif)  # restored after the pass
    edge_01, edge_02 = rec.modules.index("cells.0.edges.01.0"), rec.modules.index("cells.0.edges.02.0")
    calls = {c.module: c for c in rec.calls}
    assert calls[edge_01].source == calls[edge_02].source  # both read node 0 of the first cell
    assert calls[edge_01].spikes.shape == (3, 12, 4 * 8 * 8) and calls[edge_01].potential.shape == (3, 12, 4, 8, 8)
    probe = scoring.record_probe(net, batch)
    np.testing.assert_array_equal(probe.counts[probe.call_module == edge_01],
                                  calls[edge_01].spikes.sum(dim=-1).numpy())


def test_swap_counts_equal_brute_force_sets(macro: MacroConfig, batch: torch.Tensor) -> None:
    rec = record_values(build_network(CELL, macro, seed=0), batch, spikes=True)

    def distinct(patterns: np.ndarray) -> int:  # columns of [bits, neurons]
        return len({tuple(col) for col in patterns.T.tolist()})

    per_call = sum(distinct(c.spikes[t].numpy()) for c in rec.calls for t in range(c.spikes.shape[0]))
    assert recording_pattern_count(rec, "call") == per_call
    over_time = sum(distinct(c.spikes.reshape(-1, c.spikes.shape[-1]).numpy()) for c in rec.calls)
    assert recording_pattern_count(rec, "time") == over_time
    groups: dict[int, list[np.ndarray]] = {}
    for c in rec.calls:
        if rec.kinds[c.module] == "live":
            groups.setdefault(c.source, []).append(c.spikes.reshape(-1, c.spikes.shape[-1]).numpy())
    assert recording_pattern_count(rec, "node") == sum(distinct(np.concatenate(g)) for g in groups.values())
    x = torch.tensor([[1, 1, 0], [0, 0, 1]])  # two samples, three neurons: patterns (1,0), (1,0), (0,1)
    assert int(distinct_patterns(x)) == 2


def test_meco_equals_numpy_eigenvalue() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(2, 5, 6, 3, 3)).astype(np.float32)  # [T, B, C, H, W]
    v[:, :, 5] = 0.7 * v[:, :, 0] + 0.1 * v[:, :, 5]  # a nearly redundant channel
    channels = np.moveaxis(v.astype(np.float64), 2, 0).reshape(6, -1)
    want = np.linalg.eigvalsh(np.corrcoef(channels))[0]
    assert min_channel_eigenvalue(torch.from_numpy(v)) == pytest.approx(want, rel=1e-9, abs=1e-12)
    v[:, :, 2] = 1.0  # a constant channel: its correlations are 0, a zero eigenvalue
    assert min_channel_eigenvalue(torch.from_numpy(v)) == pytest.approx(0.0, abs=1e-12)


def test_naswot_node_kernel_equals_brute_force(macro: MacroConfig, batch: torch.Tensor) -> None:
    rec = record_values(build_network(CELL, macro, seed=0), batch, nodes=True)
    want = np.zeros((12, 12))
    for value in rec.nodes.values():
        codes = (value > 0).transpose(0, 1).reshape(12, -1).numpy()
        want += codes.shape[1] - (codes[:, None, :] != codes[None, :, :]).sum(-1)
    np.testing.assert_array_equal(node_code_kernel(rec).numpy(), want)


def test_zico_reduction_equals_formula() -> None:
    g = torch.tensor([[1.0, 2.0, 5.0], [3.0, 2.0, -1.0]])  # weight 2 has std 0: left out
    want = math.log(2.0 / 1.0 + 3.0 / 3.0)
    assert zico_from_gradients([g, torch.zeros(2, 4)]) == pytest.approx(want)


def test_jacobian_of_a_linear_map_and_the_score_formula() -> None:
    lin = nn.Linear(6, 3)
    jac = input_jacobians(lin, torch.randn(4, 6))
    torch.testing.assert_close(jac, lin.weight.detach().sum(0).expand(4, 6))
    rows = torch.tensor([[1.0, 2.0, 0.0, 1.0], [0.0, 1.0, 3.0, 2.0], [2.0, 0.0, 1.0, 1.0]])
    s = np.linalg.eigvalsh(np.corrcoef(rows.numpy().astype(np.float64)))
    want = -np.sum(np.log(s + 1e-5) + 1.0 / (s + 1e-5))
    assert jacobian_score(rows) == pytest.approx(want, rel=1e-9)


def test_bench_cells_score(macro: MacroConfig, batch: torch.Tensor) -> None:
    disconnected = spikenas_bench.genotype(1)  # skip on (0,1) only: the cell output is zero
    net = build_network(disconnected, macro, seed=0)
    for name in ("naswot_nodes", "jacob_cov", "zico"):
        candidate = scoring.prepare_candidate((disconnected,) * 2, macro, net, [batch], config=ScoreConfig(name=name))
        assert not math.isnan(scoring.get_score(name).fn(candidate))
