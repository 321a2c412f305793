"""Score registry: probe-based kernels against the reference score and explicit computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikenas import kernels, scoring, spikenas_bench
from spikenas.errors import SpikeNASError
from spikenas.nas.engine import Evaluator
from spikenas.network import MacroConfig, build_network
from spikenas.scoring import ScoreConfig, score_network, spiking_neurons
from spikenas.scoring import registry as scores_registry
from spikenas.scoring.spike_kernel import probe_kernel_score
from spikenas.scoring.structural import conv_depth, live_parametric_edges
from spikenas.space import Genotype

# edge (0,1) conv, (1,3) conv, (2,3) conv but node 2 unreachable: (2,3) is dead
DEAD_EDGE = Genotype(("lif05_conv3x3", "zero", "skip", "zero", "lif10_conv3x3", "lif15_conv3x3"))
CHAIN = Genotype(("lif05_conv3x3", "zero", "zero", "lif10_conv3x3", "zero", "lif15_conv3x3"))


@pytest.fixture
def macro() -> MacroConfig:
    return MacroConfig(num_cells=2, width=4, in_channels=3, input_size=8, hidden=16, timesteps=3)


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2.0


def test_structure_helpers() -> None:
    assert DEAD_EDGE.live_edges() == (True, False, True, False, True, False)
    assert live_parametric_edges(DEAD_EDGE) == 2
    assert conv_depth(DEAD_EDGE) == 2
    assert conv_depth(CHAIN) == 3 and live_parametric_edges(CHAIN) == 3
    assert conv_depth(spikenas_bench.genotype(0)) == 0


def test_probe_kinds_and_hamming(macro: MacroConfig, batch: torch.Tensor) -> None:
    net = build_network(DEAD_EDGE, macro, seed=1)
    probe = scoring.record_probe(net, batch)
    kinds = dict(zip(probe.modules, probe.kinds, strict=True))
    assert kinds["cells.0.edges.01.0"] == "live" and kinds["cells.0.edges.13.0"] == "live"
    assert kinds["cells.0.edges.23.0"] == "dead"  # node 2 receives nothing: the LIF runs on zeros
    assert kinds["cells.1.1"] == "macro" and kinds["head.1"] == "macro"
    assert probe.hamming.shape == (len(probe.sizes), 12, 12)
    assert np.bincount(probe.call_module).tolist() == [macro.timesteps] * len(probe.modules)
    spikes = []
    net.cells[0].edges["01"][0].register_forward_hook(lambda m, i, o: spikes.append(o.reshape(3, 12, -1)))
    scoring.record_probe(net, batch)
    x = spikes[0][1].numpy().astype(np.int64)
    brute = np.array([[int((x[i] != x[j]).sum()) for j in range(12)] for i in range(12)])
    call = np.flatnonzero((probe.call_module == probe.modules.index("cells.0.edges.01.0")) & (probe.call_step == 1))[0]
    np.testing.assert_array_equal(probe.hamming[call], brute)
    np.testing.assert_array_equal(probe.counts[call], x.sum(axis=1))


def test_dead_edge_lif_is_tagged_dead(macro: MacroConfig, batch: torch.Tensor) -> None:
    g = Genotype(("lif05_conv3x3", "zero", "lif10_conv3x3", "lif15_conv3x3", "zero", "zero"))  # (1,2) dead
    probe = scoring.record_probe(build_network(g, macro, seed=0), batch)
    kinds = dict(zip(probe.modules, probe.kinds, strict=True))
    assert kinds["cells.0.edges.12.0"] == "dead" and kinds["cells.0.edges.01.0"] == "dead"
    assert kinds["cells.0.edges.03.0"] == "live"


@pytest.mark.parametrize("name,kind,reduce", [("sahd", "sahd", "mean"), ("sahd_sum", "sahd", "sum"),
                                            ("hamming", "hamming", "sum"), ("sahd_rate", "sahd_rate", "mean")])
def test_kernel_scores_equal_the_float_route(macro, batch, name: str, kind: str, reduce: str) -> None:
    """Probe-based kernel scores equal SNASNet's float route (spikes -> float matrix products) over every LIF call."""
    net = build_network(CHAIN, macro, seed=2)
    calls = []
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append(o.reshape(o.shape[0], o.shape[1], -1)))
             for _, m in spiking_neurons(net)]
    probe = scoring.record_probe(net, batch)
    for h in hooks:
        h.remove()
    total = sum(kernels.spike_gram_dense(c, kind=kind, backend="torch") for c in calls)
    steps = sum(c.shape[0] for c in calls)
    expected = torch.linalg.slogdet(total / steps if reduce == "mean" else total)[1].item()
    assert probe_kernel_score(probe, kind=kind, reduce=reduce) == pytest.approx(expected, rel=1e-9)
    result = score_network(net, batch, config=ScoreConfig(name=name, backend="torch"))
    assert result.score == pytest.approx(expected, rel=1e-9) and result.num_calls == steps


def test_over_time_equals_concatenated_spikes(macro, batch) -> None:
    net = build_network(CHAIN, macro, seed=3)
    outs = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o)) for n, m in spiking_neurons(net)]
    probe = scoring.record_probe(net, batch)
    for h in hooks:
        h.remove()
    total = 0.0
    for name in probe.modules:
        o = outs[name]
        x = o.permute(1, 0, *range(2, o.dim())).reshape(o.shape[1], -1).double()  # [B, T N]
        n = x.shape[1]
        r = x.mean(dim=1)
        h = (x[:, None, :] != x[None, :, :]).sum(-1).double()
        e = n * (r[:, None] * (1 - r[None, :]) + (1 - r[:, None]) * r[None, :])
        total = total + (n - 0.5 * h / (e + 1e-3))
    expected = torch.linalg.slogdet(total / len(probe.modules))[1].item()
    assert probe_kernel_score(probe, kind="sahd", over_time=True) == pytest.approx(expected, rel=1e-9)


def test_save_load_roundtrip(tmp_path, macro, batch) -> None:
    probe = scoring.record_probe(build_network(DEAD_EDGE, macro, seed=0), batch)
    scoring.save_probe(tmp_path / "p.npz", probe)
    back = scoring.load_probe(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.hamming, probe.hamming)
    np.testing.assert_array_equal(back.counts, probe.counts)
    assert back.modules == probe.modules and back.kinds == probe.kinds
    assert probe_kernel_score(back) == probe_kernel_score(probe)


@pytest.mark.parametrize("name", scoring.list_scores())
def test_every_registered_score_gives_a_number(name: str, macro, batch) -> None:
    spec = scoring.get_score(name)
    assert spec.doc
    net = build_network(CHAIN, macro, seed=0)
    candidate = scoring.prepare_candidate((CHAIN, CHAIN), macro, net, [batch], config=ScoreConfig(name=name))
    value = spec.fn(candidate)
    assert isinstance(value, float) and not math.isnan(value)


def test_live_scores_are_minus_inf_without_live_lifs(macro, batch) -> None:
    g = spikenas_bench.genotype(1)  # skip on (0,1) only: disconnected
    probe = scoring.record_probe(build_network(g, macro, seed=0), batch)
    assert probe_kernel_score(probe, kinds=("live",)) == float("-inf")
    assert probe_kernel_score(probe) == float("-inf")  # the cells output zeros: every sample looks alike


def test_registry_lookup_and_overwrite_warning() -> None:
    assert "sahd" in scoring.list_scores() and "params" in scoring.list_scores("par*")
    with pytest.raises(SpikeNASError, match="unknown score 'nope'"):
        scoring.get_score("nope")
    with pytest.raises(SpikeNASError, match="needs"):
        scoring.register_score("x", doc="x", needs=("weights",))
    scoring.register_score("_test_tmp", doc="temporary")(lambda c: 1.0)
    with pytest.warns(UserWarning, match="already registered"):
        scoring.register_score("_test_tmp", doc="temporary")(lambda c: 2.0)
    scores_registry._SCORES.pop("_test_tmp")


def test_score_candidate_routes_by_name(macro, batch) -> None:
    net = build_network(CHAIN, macro, seed=0)
    ref = score_network(net, [batch], config=ScoreConfig(name="sahd"))
    assert scoring.score_candidate((CHAIN, CHAIN), net, [batch], config=ScoreConfig(name="sahd")).score == ref.score
    live = scoring.score_candidate((CHAIN, CHAIN), net, [batch], config=ScoreConfig(name="live_convs"))
    assert live.score == 6.0 and live.status == "ok"
    with pytest.raises(SpikeNASError, match="unknown score"):
        scoring.score_candidate((CHAIN, CHAIN), net, [batch], config=ScoreConfig(name="nope"))


def test_evaluator_uses_the_named_score(macro, batch) -> None:
    evaluator = Evaluator(macro, [batch], ScoreConfig(name="conv_depth"))
    assert evaluator.evaluate((CHAIN, DEAD_EDGE)).score == 5.0
