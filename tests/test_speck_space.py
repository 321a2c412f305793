"""The Speck space: IAF neurons and sum pooling equal sinabs', the plan of a network (chip layers, destinations,
memory, cores) equals what sinabs' own Speck backend makes of the exported network, and the exported sinabs
network computes what ours does.

sinabs 3.1.3 imports SynSense's samna SDK at module level only to talk to a device; PyPI's samna is a stub, so
these tests install a stand-in for that import (tests/samna_standin.py). Nothing the tests call reaches samna.
"""

from __future__ import annotations

import numpy as np
import pytest
import samna_standin
import torch

from spikenas.errors import SpikeNASError
from spikenas.hardware.speck import assign_cores, fit_matrix
from spikenas.hardware.speck_plan import plan, plans
from spikenas.layers import SumPool2d
from spikenas.network import MacroConfig, build_network, encode_events
from spikenas.neuron import NeuronConfig, make_iaf
from spikenas.space import Genotype, num_genotypes

sinabs = pytest.importorskip("sinabs", reason="sinabs is not installed (pip install --no-deps sinabs==3.1.3)")
samna_standin.install()
import sinabs.layers as sl  # noqa: E402
from sinabs.activation import MembraneSubtract, SingleSpike  # noqa: E402
from sinabs.backend.dynapcnn import DynapcnnNetwork  # noqa: E402
from sinabs.backend.dynapcnn.chips.dynapcnn import DynapcnnConfigBuilder  # noqa: E402

from spikenas.hardware.speck_export import events_for_sinabs, sinabs_network, spike_counts  # noqa: E402


def speck_macro(**changes) -> MacroConfig:
    fields = dict(num_cells=1, width=8, timesteps=4, in_channels=1, input_size=16, num_classes=10, hidden=32, vote=1,
                  family="speck")
    return MacroConfig(**{**fields, **changes})


def test_iaf_equals_sinabs_iafsqueeze_step_by_step():
    g = torch.Generator().manual_seed(11)
    t, b, shape = 7, 3, (5, 3, 9)
    for threshold in (0.5, 1.0, 1.7):
        x = torch.randn(t, b, *shape, generator=g) * 1.3
        ours = make_iaf(NeuronConfig(v_threshold=threshold))(x)
        theirs = sl.IAFSqueeze(batch_size=b, spike_threshold=threshold, spike_fn=SingleSpike,
                               reset_fn=MembraneSubtract(), min_v_mem=-threshold)
        out = theirs(x.transpose(0, 1).reshape(b * t, *shape)).reshape(b, t, *shape).transpose(0, 1)
        assert torch.equal(ours, out)
        assert ours.sum() > 0  # the comparison saw spikes


def test_sum_pool_equals_sinabs_and_the_sum_of_its_window():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 4, (3, 2, 5, 10, 14), generator=g).float()  # spike counts, [T, B, C, H, W]
    ours = SumPool2d(2, 2)(x)
    theirs = sl.SumPool2d(2)(x.flatten(0, 1)).reshape(3, 2, 5, 5, 7)
    window = x.reshape(3, 2, 5, 5, 2, 7, 2).sum(dim=(4, 6))
    assert torch.equal(ours, theirs) and torch.equal(ours, window)


def test_encoder_sends_floor_of_rate_times_t_events():
    images = torch.tensor([[[[0.0, 0.25, 0.5, 1.0, -0.7, 0.3]]]])
    events = encode_events(images, 8)
    assert set(events.unique().tolist()) <= {0.0, 1.0}
    counts = events.sum(dim=0).flatten().tolist()
    assert counts == [0.0, 2.0, 4.0, 8.0, 0.0, 2.0]


def _random_networks(seed: int, count: int) -> list[tuple[list[Genotype], MacroConfig]]:
    """Seeded candidates over widths, input sizes, hidden sizes and cell counts, the cells drawn at random."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        macro = speck_macro(width=int(rng.choice([4, 8, 16, 32])), input_size=int(rng.choice([12, 16, 28])),
                            hidden=int(rng.choice([16, 32, 64])), num_cells=int(rng.choice([1, 2])),
                            timesteps=3)
        cells = [Genotype.from_index(int(i), "speck") for i in rng.integers(0, num_genotypes("speck"), macro.num_cells)]
        out.append((cells, macro))
    return out


def _sinabs_layers(model, net) -> tuple[DynapcnnNetwork, list[str]]:
    """sinabs' Speck network of ``net`` and, per sinabs layer index, our weight layer's name (matched by weights,
    which are copied exactly)."""
    d = DynapcnnNetwork(net, input_shape=(model.config.in_channels, model.config.input_size,
                                          model.config.input_size), discretize=False)
    ours = {name: m.weight.detach().flatten() for name, m in model.named_modules()
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)}
    names = []
    for index in sorted(d.dynapcnn_layers):
        weight = d.dynapcnn_layers[index].conv_layer.weight.detach().flatten()
        match = [n for n, w in ours.items() if w.shape == weight.shape and torch.equal(w, weight)]
        assert len(match) == 1
        names.append(match[0])
    return d, names


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plan_agrees_with_sinabs_on_generated_networks(seed):
    checked = {"fits": 0, "destinations": 0, "paths": 0, "memory": 0}
    for cells, macro in _random_networks(seed, 40):
        model = build_network(cells, macro, seed=seed).eval()
        chip = plan(model.graph)
        if chip.problem == "nothing flows from the input to the output":
            with pytest.raises(SpikeNASError, match="nothing flows"):
                sinabs_network(model)
            continue
        net = sinabs_network(model)
        images = torch.rand(2, 1, macro.input_size, macro.input_size, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(model(images), spike_counts(net(events_for_sinabs(images, macro.timesteps)), 2))
        for m in net.modules():
            if hasattr(m, "reset_states"):
                m.reset_states()
        reason = chip.problem or ""
        try:
            d, names = _sinabs_layers(model, net)
        except ValueError as err:
            # sinabs cannot take a merge of one stream with itself (a stream reaching a layer along two paths)
            assert "along" in reason and "Merge" in str(err), (reason, err)
            checked["paths"] += 1
            continue
        by_name = {layer.weight: layer for layer in chip.layers}
        assert sorted(names) == sorted(by_name)  # the same chip layers
        for index, name in zip(sorted(d.dynapcnn_layers), names, strict=True):
            summary = d.dynapcnn_layers[index].memory_summary()
            layer = by_name[name]
            assert (summary["kernel"], summary["neuron"]) == (layer.kernel_words, layer.neuron_words)
            theirs = sorted(names[j] for j in d.layer_destination_map[index] if j >= 0)
            assert theirs == sorted(set(layer.destinations))
        if "along" in reason:
            # a stream reaching a layer along two paths: sinabs lists the destination once (the chip would receive
            # the spikes once where the network adds them twice), so the plan refuses it
            checked["paths"] += 1
            continue
        too_many = any(len(d.layer_destination_map[i]) > 2 for i in d.layer_destination_map)
        assert ("destinations" in reason) == too_many
        checked["destinations"] += too_many
        if too_many:
            continue
        try:
            mapping = DynapcnnConfigBuilder.map_layers_to_cores(d.dynapcnn_layers)
        except (ValueError, AssertionError) as err:
            assert not chip.fits, err
            checked["memory"] += 1
            continue
        assert chip.fits, reason
        # Same matching: with the layers in sinabs' (topological) order, assign_cores gives sinabs' cores.
        ordered = [by_name[n] for n in names]
        fits = fit_matrix(*(np.array(v) for v in zip(*[(la.kernel_words, la.neuron_words, la.bias_words)
                                                         for la in ordered], strict=True)))
        assert dict(enumerate(assign_cores(fits))) == {i: mapping[i] for i in range(len(names))}
        checked["fits"] += 1
    assert checked["fits"] >= 5 and checked["destinations"] >= 1 and sum(checked.values()) >= 20, checked


def test_memory_refusals_match_sinabs_mapping():
    """Wide layers that no core holds, and more wide layers than there are big cores: sinabs' mapper refuses
    both, and the plan names the limit."""
    cells = [Genotype(("iaf_conv3x3", "zero", "zero", "iaf_conv3x3", "zero", "iaf_conv3x3"))]
    for macro, words in ((speck_macro(width=64, input_size=28, hidden=64), "no Speck core holds"),
                         (speck_macro(width=64, input_size=12, hidden=2), "cannot take distinct cores")):
        model = build_network(cells, macro, seed=0).eval()
        chip = plan(model.graph)
        assert not chip.fits and words in chip.problem
        d, _ = _sinabs_layers(model, sinabs_network(model))
        with pytest.raises(ValueError):
            DynapcnnConfigBuilder.map_layers_to_cores(d.dynapcnn_layers)


def test_vectorised_plans_equal_one_by_one():
    macro = speck_macro(width=16, input_size=16, hidden=64, num_cells=2)
    rng = np.random.default_rng(5)
    candidates = [[Genotype.from_index(int(i), "speck") for i in rng.integers(0, 729, 2)] for _ in range(60)]
    ok, problems = plans(candidates, macro)
    for cells, fits, problem in zip(candidates, ok, problems, strict=True):
        single = plan(build_network(cells, macro, seed=0).graph)
        assert single.fits == bool(fits) and single.problem == problem
    assert 0 < ok.sum() < len(ok)


def test_plans_refuse_another_family():
    with pytest.raises(SpikeNASError, match="speck family"):
        plans([[Genotype(("skip",) * 6)]], MacroConfig(num_cells=1))
