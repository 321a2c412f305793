"""The recorder's context manager (neuron_pass) and its three users outside scoring: spike counts
(count_spikes, AutoSNN's score fitness), deployment's spike maps and the stacked engine's per-candidate
fallback, each against a computation written out by hand in the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import functional, layer
from spikingjelly.activation_based.neuron import BaseNode
from torch import nn

from spikenas import kernels
from spikenas.autosnn.fitness import ScoreFitness
from spikenas.deployment import cell_network_layers, measure_spike_maps, spike_sources
from spikenas.errors import SpikeNASError
from spikenas.nas.space_api import CellSpace
from spikenas.nas.stacked import run_stacked, stack
from spikenas.network import MacroConfig, build_network
from spikenas.neuron import NeuronConfig, make_lif
from spikenas.scoring import ScoreConfig
from spikenas.scoring.recorder import OutputLog, SpikeTally, neuron_pass, set_bn_mode
from spikenas.space import Genotype
from spikenas.spikes import count_spikes

MACRO = MacroConfig(num_cells=1, width=4, in_channels=1, input_size=8, hidden=16, timesteps=3)


class Tiny(nn.Module):
    """Images ``[B, 3]`` -> two multi-step LIF layers over T = 4 steps (a BatchNorm between them)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = layer.Linear(3, 6, step_mode="m")
        self.lif1 = make_lif(NeuronConfig())
        self.bn = layer.BatchNorm1d(6, step_mode="m")
        self.fc2 = layer.Linear(6, 5, step_mode="m")
        self.lif2 = make_lif(NeuronConfig())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = 3.0 * x.unsqueeze(0).expand(4, *x.shape)
        return self.lif2(4.0 * self.fc2(self.bn(self.lif1(self.fc1(x)))))


def images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return 2.0 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("training", [True, False])
def test_neuron_pass_restores_mode_and_statistics_when_the_forward_raises(bn_mode, training):
    model = Tiny().train(training)
    before = modes(model)
    stats = model.bn.running_mean.clone()
    with pytest.raises(RuntimeError, match="boom"), neuron_pass(model, bn_mode=bn_mode, no_grad=True):
        assert not model.training and model.bn.training == (bn_mode == "train")
        assert not torch.is_grad_enabled()
        model(images((5, 3), 0))  # moves the running statistics under bn_mode train
        raise RuntimeError("boom")
    assert modes(model) == before
    assert torch.is_grad_enabled()
    assert torch.equal(model.bn.running_mean, stats)
    assert model.lif1.v == 0.0 and model.lif2.v == 0.0  # reset on the way out too


def test_neuron_pass_without_bn_mode_leaves_modes_and_gradients_alone():
    model = Tiny().train()
    model.fc2.eval()  # a mixed state is kept as it is
    before = modes(model)
    with neuron_pass(model):
        assert modes(model) == before and torch.is_grad_enabled()
        out = model(images((5, 3), 1))
    assert out.requires_grad and modes(model) == before


def test_neuron_pass_resets_neuron_state_on_entry_and_exit():
    model = Tiny().eval()
    x = images((5, 3), 2)

    def dirty() -> None:  # membrane potentials just under the threshold, as a previous pass could leave them
        model.lif1.v = torch.full((5, 6), 0.99)
        model.lif2.v = torch.full((5, 5), 0.99)

    with torch.no_grad():
        functional.reset_net(model)
        fresh = model(x)
        dirty()
        assert not torch.equal(model(x), fresh)  # the left-over state matters
    dirty()
    with torch.no_grad(), neuron_pass(model):
        assert model.lif1.v == 0.0 and model.lif2.v == 0.0
        assert torch.equal(model(x), fresh)
        assert isinstance(model.lif1.v, torch.Tensor)
    assert model.lif1.v == 0.0 and model.lif2.v == 0.0


def test_neuron_pass_refuses_an_unknown_bn_mode_before_touching_the_model():
    model = Tiny().train()
    with pytest.raises(SpikeNASError, match="bn_mode.*'frozen'"), neuron_pass(model, bn_mode="frozen"):
        pass
    assert all(modes(model))


def test_count_spikes_equals_the_lif_outputs_summed_by_hand():
    model = Tiny().train()
    x = images((7, 3), 3)
    batches = [x[:4], x[4:]]
    stats = count_spikes(model, batches)
    assert all(modes(model))  # back in train mode
    spikes = {"lif1": 0.0, "lif2": 0.0}
    slots = {"lif1": 0, "lif2": 0}
    model.eval()
    with torch.no_grad():
        for b in batches:
            functional.reset_net(model)
            h = 3.0 * b.unsqueeze(0).expand(4, *b.shape)
            s1 = model.lif1(model.fc1(h))
            s2 = model.lif2(4.0 * model.fc2(model.bn(s1)))
            for name, s in (("lif1", s1), ("lif2", s2)):
                spikes[name] += float(s.sum())
                slots[name] += s.numel()
    assert stats.samples == 7
    assert stats.per_layer == {n: spikes[n] / 7 for n in spikes}
    assert stats.rates == {n: spikes[n] / slots[n] for n in spikes}
    assert stats.total == spikes["lif1"] / 7 + spikes["lif2"] / 7 > 0


def test_spike_tally_counts_every_pass_while_entered_and_nothing_after():
    model = Tiny().eval()
    x = images((5, 3), 4)
    with SpikeTally(model) as tally, torch.no_grad():
        out = model(x)
        model(x)
    model(x)
    assert list(tally.spikes) == ["lif1", "lif2"]
    with torch.no_grad():
        functional.reset_net(model)
        s1 = model.lif1(model.fc1(3.0 * x.unsqueeze(0).expand(4, *x.shape)))
    assert tally.slots == {"lif1": 2 * s1.numel(), "lif2": 2 * out.numel()}
    assert tally.spikes["lif1"] >= float(s1.sum())  # the second pass starts where the first left its neurons


def test_score_fitness_spikes_equal_the_scoring_passes_summed_by_hand():
    space = CellSpace(MACRO, op_set="5O")
    batches = [images((6, 1, 8, 8), 5), images((6, 1, 8, 8), 6)]
    arch = (Genotype.from_index(1234, "5O"),)
    evaluation = ScoreFitness(space, batches, score_config=ScoreConfig(name="sahd", backend="torch"), seed=0)(arch)
    network = space.build(arch, seed=0)
    sums: dict[str, float] = {}
    neurons = [(n, m) for n, m in network.named_modules() if isinstance(m, BaseNode)]
    set_bn_mode(network, "train")  # the score's pass: BatchNorm on batch statistics
    outputs: list[tuple[str, torch.Tensor]] = []
    handles = [m.register_forward_hook(lambda _m, _i, o, n=n: outputs.append((n, o))) for n, m in neurons]
    with torch.no_grad():
        for b in batches:
            functional.reset_net(network)
            network(b)
    for h in handles:
        h.remove()
    for n, o in outputs:
        sums[n] = sums.get(n, 0.0) + float(o.sum())
    assert evaluation.spikes == float(sum(s / 12 for s in sums.values())) > 0


def test_measure_spike_maps_equals_source_outputs_summed_by_hand():
    genotypes = [Genotype.from_index(1234, "5O")]
    network = build_network(genotypes, MACRO, seed=1).train()
    layers = cell_network_layers(genotypes, MACRO)
    x = 5.0 * images((5, 1, 8, 8), 7)
    maps = measure_spike_maps(network, x, layers)
    assert all(modes(network))
    modules = dict(network.named_modules())
    expected: dict[str, np.ndarray] = {}
    handles = []
    for name in spike_sources(layers):
        def keep(_m, _i, o, name=name):
            d = o.double()
            summed = d.sum(dim=(0, 1, 2)) if d.dim() == 5 else d.sum(dim=(0, 1))
            expected[name] = expected.get(name, 0.0) + summed.numpy()
        handles.append(modules[name].register_forward_hook(keep))
    network.eval()
    with torch.no_grad():
        functional.reset_net(network)
        network(x)
    for h in handles:
        h.remove()
    assert list(maps) == list(expected) and len(maps) > 1
    for name, m in maps.items():
        assert m.dtype == np.float64 and np.array_equal(m, expected[name] / 5), name
    assert sum(float(m.sum()) for m in maps.values()) > 0


class MixesSamples(nn.Module):
    """Not per sample (subtracts the batch mean): the stacked engine runs it once per candidate."""

    def __init__(self) -> None:
        super().__init__()
        self.lif = make_lif(NeuronConfig())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(x - x.mean(dim=1, keepdim=True) + 1.0)


def test_stacked_per_candidate_kernels_equal_each_candidates_spikes_by_hand():
    torch.manual_seed(2)
    conv = layer.Conv2d(4, 4, 1, step_mode="m")
    mixes = MixesSamples()
    module = nn.Sequential(conv, mixes)
    gen = torch.Generator().manual_seed(8)
    values = [torch.randn(3, 5, 4, 3, 3, generator=gen) * (1 + k) for k in range(3)]

    def gram(s: torch.Tensor) -> torch.Tensor:
        return kernels.spike_gram_dense(s, kind="sahd", alpha=0.5, backend="torch")

    with torch.no_grad():
        result = run_stacked(module, stack(values), 3, gram)
        assert mixes.lif.v == 0.0  # left reset
        grams, outs = [], []
        for v in values:
            functional.reset_net(module)
            c = conv(v)
            spikes = mixes.lif(c - c.mean(dim=1, keepdim=True) + 1.0)
            grams.append(gram(spikes.reshape(3, 5, -1)))
            outs.append(spikes)
    assert torch.equal(result.value, stack(outs))
    assert torch.equal(result.kernel, torch.stack(grams))
    assert result.calls.tolist() == [3, 3, 3]


def test_output_log_keeps_each_call_in_order_and_unhooks():
    model = Tiny().eval()
    x = images((5, 3), 9)
    with OutputLog([model.lif2, model.lif1]) as log, torch.no_grad(), neuron_pass(model):
        out = model(x)
    assert len(log.outputs) == 2 and log.outputs[1] is out  # call order, not the order given
    with torch.no_grad():
        model(x)
    assert len(log.outputs) == 2
