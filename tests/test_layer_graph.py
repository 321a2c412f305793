"""One description of a cell network: the layer graph the builder, the memory model, the deployment model and
the NIR exporter all read (spikenas.layer_graph.cell_network_graph).

* the built modules are exactly the graph's layers (names, kinds, creation order, parameters);
* the Numba enumeration over every cell of an op set (the pruning fast path) equals the graph's counts;
* an op registered once (its layers) is built, counted, deployed and exported with nothing else written for it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spikenas import spikenas_bench  # noqa: F401 - registers the SpikeNAS-Bench ops (op set bench5)
from spikenas.deployment import DeploymentConfig, deployment_report
from spikenas.errors import SpikeNASError
from spikenas.layer_graph import cell_network_graph, fixed_layers
from spikenas.layers import MODULELESS, Layer, conv, module_of, pool
from spikenas.memory import Budget, enumerate_params, fixed_params, network_params
from spikenas.network import Cell, MacroConfig, build_network
from spikenas.neuron import NeuronConfig
from spikenas.ops import get_op, get_op_set, lif_conv_bn, list_op_sets, register_op, register_op_set
from spikenas.space import Genotype, num_genotypes
from tests.test_deployment import built_figures, check_equal, images_for

MACROS = [
    MacroConfig(num_cells=1, width=3, in_channels=1, input_size=8, hidden=10, num_classes=4, vote=2, timesteps=2),
    MacroConfig(num_cells=2, width=5, in_channels=3, input_size=14, hidden=16, num_classes=10, timesteps=2),
    MacroConfig(num_cells=3, width=2, in_channels=2, input_size=16, hidden=7, num_classes=3, vote=3, timesteps=2),
]
OP_SETS = ("5O", "3O", "2O", "bench5")


def random_cells(op_set: str, macro: MacroConfig, rng: np.random.Generator) -> list[Genotype]:
    return [Genotype.from_index(int(rng.integers(num_genotypes(op_set))), op_set) for _ in range(macro.num_cells)]


def check_graph_is_the_network(cells: list[Genotype], macro: MacroConfig) -> nn.Module:
    """Every built module is a layer of the graph and every layer (but sums) a built module of its kind, created
    in graph order, with the layer's parameter count; returns the network."""
    graph = cell_network_graph(cells, macro)
    model = build_network(cells, macro, seed=0)
    modules = dict(model.named_modules())
    built = [spec for spec in graph if spec.kind not in MODULELESS]
    for spec in built:
        assert spec.name in modules, spec.name
        assert type(modules[spec.name]) is type(module_of(spec)), spec.name
        assert sum(p.numel() for p in modules[spec.name].parameters()) == spec.params + spec.taus, spec.name
    names = {spec.name for spec in built}
    containers = (nn.Sequential, nn.ModuleDict, Cell)
    for name, module in modules.items():
        inside = any(name.startswith(n + ".") for n in names)  # e.g. a LIF's surrogate function
        assert name in names or inside or isinstance(module, containers) or name in ("", "vote"), name
    order = [n for n in modules if n in names]
    assert order == [spec.name for spec in built]  # the order weights are drawn in
    for spec in graph:
        if spec.kind == "sum" and spec.name.count(".") == 1:  # a cell's output is the Cell module
            assert isinstance(modules[spec.name], Cell)
    assert graph.params == network_params(cells, macro) == sum(p.numel() for p in model.parameters())
    return model


@pytest.mark.parametrize("op_set", OP_SETS)
@pytest.mark.parametrize("macro", MACROS, ids=["1cell", "2cells", "3cells"])
def test_built_network_is_the_graph(op_set, macro):
    rng = np.random.default_rng(len(op_set) * 10 + macro.num_cells)
    for _ in range(3):
        check_graph_is_the_network(random_cells(op_set, macro, rng), macro)


def test_graph_inputs_follow_the_cell():
    """Node values: one entering edge is that edge's output; two or more a sum; none, when read, an empty sum."""
    macro = MACROS[0]
    g = Genotype(("conv3x3", "skip", "zero", "avgpool3x3", "zero", "skip"))  # 01 02 03 12 13 23
    graph = cell_network_graph(g, macro)
    assert graph["cells.0.edges.12"].inputs == ("cells.0.edges.01.2",)  # node 1 = edge 01's BN
    assert graph["cells.0.nodes.2"].inputs == ("cells.0.edges.02", "cells.0.edges.12")
    assert graph["cells.0.edges.23"].inputs == ("cells.0.nodes.2",)
    assert graph["cells.0"].inputs == ("cells.0.edges.23",)
    assert graph["head.0"].inputs == ("cells.0",)
    assert graph.live() >= {"cells.0.edges.01.0", "cells.0.nodes.2", "cells.0"}
    empty = cell_network_graph(Genotype(("zero", "zero", "zero", "skip", "zero", "skip")), macro)
    assert empty["cells.0.nodes.1"].inputs == ()  # node 1 holds zeros, read by edge 12
    assert "cells.0.edges.12" not in empty.reached() and "cells.0.edges.12" in empty.reaching("head.7")
    assert empty.live() == set()  # nothing flows from the input to node 3
    with pytest.raises(SpikeNASError, match="num_cells"):
        cell_network_graph([g, g], macro)


def test_fixed_layers_are_what_every_network_shares():
    for macro in MACROS:
        fixed = {spec.name for spec in fixed_layers(macro)}
        for op_set in ("5O", "3O"):
            graph = cell_network_graph(random_cells(op_set, macro, np.random.default_rng(0)), macro)
            varying = {s.name for s in graph} - fixed
            assert all(".edges." in n or ".nodes." in n for n in varying)
        assert fixed_params(macro) == sum(s.params for s in fixed_layers(macro))


def graph_counts(op_set: str, macro: MacroConfig, indices) -> np.ndarray:
    return np.array([cell_network_graph(Genotype.from_index(int(i), op_set), macro).params for i in indices])


@pytest.mark.parametrize("macro", MACROS, ids=["1cell", "2cells", "3cells"])
def test_enumeration_equals_graph_counts(macro):
    """The pruning fast path equals the graph's counts: every cell of the small op sets, a sample of the others;
    the same with one position varying."""
    rng = np.random.default_rng(macro.num_cells)
    for op_set in OP_SETS:
        table = enumerate_params(op_set, macro)
        n = num_genotypes(op_set)
        indices = np.arange(n) if n <= 64 else rng.choice(n, size=120, replace=False)
        np.testing.assert_array_equal(table[indices], graph_counts(op_set, macro, indices))
        cells = random_cells(op_set, macro, rng)
        position = macro.num_cells - 1
        varied = enumerate_params(op_set, macro, position=position, cells=cells)
        for i in rng.choice(n, size=20, replace=False):
            mixed = list(cells)
            mixed[position] = Genotype.from_index(int(i), op_set)
            assert varied[i] == cell_network_graph(mixed, macro).params


@pytest.mark.slow
@pytest.mark.parametrize("op_set", OP_SETS)
@pytest.mark.parametrize("macro", MACROS, ids=["1cell", "2cells", "3cells"])
def test_enumeration_equals_graph_counts_for_every_cell(op_set, macro):
    indices = np.arange(num_genotypes(op_set))
    np.testing.assert_array_equal(enumerate_params(op_set, macro), graph_counts(op_set, macro, indices))


# ----------------------------------------------------------------------------------------------------------
# An op registered once flows through everything


def _lif07_conv5x5(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
    return lif_conv_bn(prefix, channels, size, 5, neuron.with_threshold(0.7), src=src)


def _conv1x1_pool(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
    """A conv1x1 on the node value (no spikes: multiply-accumulates), then a 3x3 average pool."""
    return [
        conv(f"{prefix}.0", channels, channels, size, 1, src=src),
        pool(f"{prefix}.1", "avgpool", channels, size, 3, src=(f"{prefix}.0", False), stride=1, padding=1),
    ]


@pytest.fixture(scope="module")
def user_op_set() -> str:
    if "lg_test" not in list_op_sets():
        register_op("lg_lif07_conv5x5", spiking=True)(_lif07_conv5x5)
        register_op("lg_conv1x1_pool")(_conv1x1_pool)
        register_op_set("lg_test", ("zero", "skip", "lg_lif07_conv5x5", "lg_conv1x1_pool"))
    return "lg_test"


def user_cells(op_set: str, macro: MacroConfig) -> list[Genotype]:
    ops = get_op_set(op_set)
    first = Genotype((ops[2], ops[3], ops[1], ops[2], ops[3], ops[2]))  # every op, connected
    second = Genotype((ops[3], ops[0], ops[2], ops[1], ops[2], ops[3]))
    return [first, second, first][: macro.num_cells]


@pytest.mark.parametrize("macro", MACROS[:2], ids=["1cell", "2cells"])
def test_user_op_builds_counts_deploys_and_exports(user_op_set, macro):
    cells = user_cells(user_op_set, macro)
    # build: the modules come from the op's layers, and the network runs
    model = check_graph_is_the_network(cells, macro)
    edge = model.cells[0].edges["01"]
    assert isinstance(edge[1], nn.Conv2d) and edge[1].kernel_size == (5, 5) and edge[0].v_threshold == 0.7
    images = images_for(macro)
    with torch.no_grad():
        assert model(images).shape == (images.shape[0], macro.num_classes)
    # memory: the parameter count and the enumeration over the op set
    params = sum(p.numel() for p in model.parameters())
    c = macro.width
    assert get_op("lg_lif07_conv5x5").params(c) == 25 * c * c + 2 * c and get_op("lg_conv1x1_pool").params(c) == c * c
    assert network_params(cells, macro) == params
    same = [cells[0]] * macro.num_cells
    assert enumerate_params(user_op_set, macro)[cells[0].index(user_op_set)] == network_params(same, macro)
    # deployment: every figure equals the forward-hook measurement of the built network
    target = DeploymentConfig(weight_bits=6, state_bits=12, activation_bits=8)
    report = deployment_report(cells, macro, target, model=model, images=images)
    built = built_figures(model, images, target, macro.timesteps)
    check_equal(report, cell_network_graph(cells, macro).layers, built, target, macro.timesteps)
    assert built["macs"] > 0 and built["synops"] > 0  # the conv1x1 reads node values; the conv5x5 reads spikes
    budget = Budget(1e9, 8, kind="onchip_bytes", state_bits=16, buffer_scope="all")
    index = cells[0].index(user_op_set)
    assert budget.cell_costs(user_op_set, macro)[index] == budget.network_cost(same, macro)
    # NIR export: the graph is written, with the op's nodes
    nir = pytest.importorskip("nir")
    from spikenas.export import export_nir
    from tests.test_export import run_nir, torch_outputs, trained_like

    trained = trained_like(cells, macro)
    graph = export_nir(trained)
    assert isinstance(graph.nodes["c1_e01_conv"], nir.Conv2d) and graph.nodes["c1_e01_conv"].weight.shape[-1] == 5
    assert np.all(graph.nodes["c1_e01_lif"].v_threshold == np.float32(0.7))
    assert isinstance(graph.nodes["c1_e02_pool"], nir.AvgPool2d) and ("c1_e02_conv", "c1_e02_pool") in graph.edges
    images = 2.0 * torch.randn(4, macro.in_channels, macro.input_size, macro.input_size,
                               generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(run_nir(graph, images, macro.timesteps), torch_outputs(trained, images),
                               rtol=1e-4, atol=1e-5)


def test_registration_refuses_an_op_that_is_not_one():
    def wrong_shape(prefix, channels, size, neuron, src):
        return [conv(f"{prefix}.0", channels, 2 * channels, size, 3, src=src)]

    with pytest.raises(SpikeNASError, match="keep its input's shape"):
        register_op("lg_bad_shape")(wrong_shape)
    with pytest.raises(SpikeNASError, match="named after the edge prefix"):
        register_op("lg_bad_name")(lambda prefix, c, size, neuron, src: [conv("x", c, c, size, 1, src=src)])
    with pytest.raises(SpikeNASError, match=r"\(prefix, channels, size, neuron, src\)"):
        register_op("lg_bad_signature")(lambda channels, neuron: nn.Identity())


def test_user_op_runs_in_snntorch(user_op_set, tmp_path):
    """snnTorch's NIR importer (as in tests/test_export.py) reproduces the network with the user's ops."""
    nir = pytest.importorskip("nir")
    pytest.importorskip("nirtorch", reason="snnTorch's NIR import needs nirtorch")
    pytest.importorskip("snntorch.import_nir", reason="snnTorch is not installed")
    from spikenas.export import export_nir
    from tests.test_export import snntorch_outputs, torch_outputs, trained_like

    macro = MacroConfig(num_cells=2, width=3, in_channels=1, input_size=8, hidden=6, timesteps=3, num_classes=2,
                        vote=1)
    model = trained_like(user_cells(user_op_set, macro), macro)
    path = tmp_path / "net.nir"
    nir.write(path, export_nir(model, dt=1e-4))
    images = 3.0 * torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))  # one sample: NIR flattens all
    expected = torch_outputs(model, images)[:, 0]
    assert expected.abs().sum() > 0
    torch.testing.assert_close(snntorch_outputs(path, images, macro.timesteps), expected, rtol=1e-4, atol=1e-5)
