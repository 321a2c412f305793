"""The AutoSNN layer graph (spikenas.layer_graph.autosnn_graph) is the one description of an AutoSNN network:
the memory model's counts are sums over it, and the built network's modules are its layers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from torch import nn

from spikenas.autosnn.deployment import autosnn_layers
from spikenas.autosnn.macro import BLOCKS, SEARCHED, AutoSNNConfig
from spikenas.autosnn.memory import block_table, enumerate_params, fixed_params, smallest_network_params
from spikenas.autosnn.network import ResidualBlock, build_network
from spikenas.autosnn.space import arch_from_index
from spikenas.autosnn.supernet import SuperNetwork
from spikenas.deployment import DeploymentConfig, memory_figures
from spikenas.errors import SpikeNASError
from spikenas.layer_graph import autosnn_block_layers, autosnn_graph
from spikenas.layers import module_of

CONFIGS = [
    AutoSNNConfig(base_channels=3, timesteps=2, in_channels=2, input_size=12, num_classes=3, vote=2),
    AutoSNNConfig(),  # AutoSNN's own: width 16, CIFAR-10
]
SAMPLE = (0, 781, 1562, 2343, 3124, 7, 123, 1234, 2048)  # architecture indices: each block everywhere, then mixed


CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict, ResidualBlock)


def layer_modules(module: nn.Module, prefix: str = "") -> dict[str, nn.Module]:
    """The modules below ``module`` that are not containers, by qualified name (a neuron's surrogate function is
    part of the neuron)."""
    out: dict[str, nn.Module] = {}
    for name, child in module.named_children():
        full = f"{prefix}.{name}" if prefix else name
        out.update(layer_modules(child, full) if isinstance(child, CONTAINERS) else {full: child})
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=["small", "autosnn"])
def test_enumerate_params_equals_every_graphs_sum(config):
    table = enumerate_params(config)
    assert table.shape == (len(BLOCKS) ** len(SEARCHED),) and table.dtype == np.int64
    graphs = [autosnn_graph(arch_from_index(i), config) for i in range(len(table))]
    assert table.tolist() == [g.params + g.taus for g in graphs]
    assert smallest_network_params(config) == min(g.params + g.taus for g in graphs)


@pytest.mark.parametrize("config", CONFIGS, ids=["small", "autosnn"])
def test_built_modules_are_the_graphs_layers(config):
    for index in SAMPLE:
        arch = arch_from_index(index)
        graph = autosnn_graph(arch, config)
        model = build_network(arch, config, seed=index)
        assert graph.params + graph.taus == sum(p.numel() for p in model.parameters())
        leaves = layer_modules(model)
        assert set(leaves) - {"vote"} == {spec.name for spec in graph if spec.kind != "sum"}
        for spec in graph:
            if spec.kind == "sum":
                continue
            module = leaves[spec.name]
            assert type(module) is type(module_of(spec)), spec.name
            assert sum(p.numel() for p in module.parameters()) == spec.params + spec.taus, spec.name
        for i, block in zip(SEARCHED, arch, strict=True):
            residual = block.startswith("srb")
            assert isinstance(model.layers[i], ResidualBlock) == residual
            assert (f"layers.{i}.sum" in {spec.name for spec in graph}) == residual


def test_graph_is_in_forward_order_and_reads_what_the_network_computes():
    config = CONFIGS[0]
    for index in SAMPLE:
        graph = autosnn_graph(arch_from_index(index), config)
        seen: set[str] = set()
        for spec in graph:
            assert set(spec.inputs) <= seen, spec.name  # every input is computed before
            if spec.kind in ("conv", "linear") and spec.in_spikes:
                assert spec.inputs == (spec.source,)
            seen.add(spec.name)
        assert [spec.name for spec in graph][:3] == ["stem.0", "stem.1", "stem_plif"]
        assert graph.output == graph.layers[-1].name == "head.2"
        assert not graph["stem.0"].inputs and graph["head.0"].inputs == (graph.layers[-4].name,)


@pytest.mark.parametrize("scope,bits", [("timestep", 8), ("all", 4), ("all", 1)])
def test_a_sum_never_changes_the_deployment_figures(scope, bits):
    """A residual sum is the size of its body's output (same shape, not spikes) and comes after it: counting it
    as a buffer could never change the peak, so the deployed layers leave it out."""
    target = DeploymentConfig(activation_bits=bits, buffer_scope=scope)
    for config in CONFIGS:
        for index in SAMPLE:
            arch = arch_from_index(index)
            graph = autosnn_graph(arch, config)
            order = [spec.name for spec in graph]
            for spec in graph:
                if spec.kind == "sum":
                    body = graph[spec.inputs[0]]
                    assert body.name.endswith(".body.4") and order.index(body.name) < order.index(spec.name)
                    assert body.buffer_bits(bits) == spec.buffer_bits(bits) and not spec.spikes
            assert autosnn_layers(arch, config) == [spec for spec in graph if spec.kind != "sum"]
            assert memory_figures(list(graph), target, config.timesteps) == memory_figures(
                autosnn_layers(arch, config), target, config.timesteps)


def test_memory_parts_are_sums_over_the_layers():
    config = CONFIGS[0]
    table = block_table(config)
    for p, (i, (cin, cout, size)) in enumerate(zip(SEARCHED, config.block_io, strict=True)):
        for b, block in enumerate(BLOCKS):
            layers = autosnn_block_layers(block, f"layers.{i}", cin, cout, size, config.neuron, ("x", True))
            assert table[p, b] == sum(spec.params + spec.taus for spec in layers)
    graph = autosnn_graph(("skip",) * len(SEARCHED), config)
    assert fixed_params(config) == graph.params + graph.taus - int(table[:, 0].sum())
    # the fixed part by hand: stem conv + BN + PLIF, head Linear + PLIF
    c = config.base_channels
    head = config.final_channels * config.final_size**2 * config.vote * config.num_classes
    assert fixed_params(config) == 9 * config.in_channels * c + 2 * c + 1 + head + 1


def test_supernet_blocks_are_the_graphs_layers():
    config = CONFIGS[0]
    supernet = SuperNetwork(config)
    for block in BLOCKS:
        graph = autosnn_graph((block,) * len(SEARCHED), config)
        for i in SEARCHED:
            prefix = f"layers.{i}"
            module = supernet.layers[i][block]
            names = set(layer_modules(module, prefix)) if isinstance(module, CONTAINERS) else {prefix}
            assert names == {spec.name for spec in graph.below(prefix) if spec.kind != "sum"}


def test_unknown_block_is_refused():
    with pytest.raises(SpikeNASError, match="unknown AutoSNN block 'srb_k7'"):
        autosnn_block_layers("srb_k7", "layers.0", 4, 4, 8, CONFIGS[0].neuron, ("x", True))
    with pytest.raises(SpikeNASError, match="an AutoSNN architecture is 5 blocks"):
        autosnn_graph(("skip",) * 4, CONFIGS[0])


def test_every_block_at_every_position_in_some_sampled_architecture():
    """The sampled architectures cover each block at each searched position (so the module checks see all)."""
    seen = {(p, b) for index in SAMPLE for p, b in enumerate(arch_from_index(index))}
    assert seen == set(itertools.product(range(len(SEARCHED)), BLOCKS))
