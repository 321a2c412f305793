"""Hardware targets (spikenas.hardware): the registry, each target's fit on hand-built layer graphs (expected
counts computed here from the layers by brute force), refusals, and the generic target against the deployment
model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import spikenas.hardware  # noqa: F401  (registers the built-in targets)
from spikenas.deployment import DeploymentConfig, memory_figures
from spikenas.errors import SpikeNASError
from spikenas.hardware.generic import GenericTarget
from spikenas.hardware.loihi2 import Loihi2Target
from spikenas.hardware.populations import connections, populations
from spikenas.hardware.spinnaker2 import SpiNNaker2Target
from spikenas.hardware.target import Target, TargetFit, get_target, register_target, target_names, unregister_target
from spikenas.hardware.xylo import XyloTarget
from spikenas.layer_graph import LayerGraph, autosnn_graph, cell_network_graph
from spikenas.layers import Layer, bn, conv, lif, linear, pool
from spikenas.network import MacroConfig
from spikenas.neuron import NeuronConfig
from spikenas.space import Genotype

NEURON = NeuronConfig()
BUILT_IN = ("generic", "loihi2", "spinnaker2", "xylo")
SMALL = MacroConfig(num_cells=2, width=8, input_size=8, hidden=32, num_classes=4, vote=2, timesteps=3)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def conv_pairs(layer: Layer) -> int:
    """Connections of a conv counted one by one: every (input position, output position) a kernel tap joins,
    times input and output channels."""
    cin, h, w = layer.in_shape
    cout, ho, wo = layer.out_shape
    pairs = 0
    for oy in range(ho):
        for ox in range(wo):
            for ky in range(layer.kernel):
                for kx in range(layer.kernel):
                    y, x = oy * layer.stride - layer.padding + ky, ox * layer.stride - layer.padding + kx
                    pairs += 0 <= y < h and 0 <= x < w
    return pairs * cin * cout


def hand_graph(hidden: int = 10) -> LayerGraph:
    """conv A -> BN -> LIF L1; L1 -> conv B (1x1) and conv C (3x3) -> BNs -> their sum S, read by LIF L2 and
    LIF L3; L2 -> AvgPool2d(2) -> flatten -> Linear D (pool folded) -> LIF L4 -> Linear E (the readout)."""
    a = conv("A", 3, 4, 6, 3, src=("", False))
    d = linear("D", 4 * 3 * 3, hidden, src=("L2", True), in_shape=(4, 6, 6), pool=2)
    layers = [
        a, bn("Ab", 4, 6, src=("A", False)), lif("L1", (4, 6, 6), NEURON, src=("Ab", False)),
        conv("B", 4, 4, 6, 1, src=("L1", True)), bn("Bb", 4, 6, src=("B", False)),
        conv("C", 4, 4, 6, 3, src=("L1", True)), bn("Cb", 4, 6, src=("C", False)),
        Layer("S", "sum", (4, 6, 6), inputs=("Bb", "Cb")),
        lif("L2", (4, 6, 6), NEURON, src=("S", False)), lif("L3", (4, 6, 6), NEURON, src=("S", False)),
        pool("P", "avgpool", 4, 6, 2, src=("L2", True)), Layer("F", "flatten", (36,), inputs=("P",)),
        replace(d, inputs=("F",)), lif("L4", (hidden,), NEURON, src=("D", False)),
        linear("E", hidden, 3, src=("L4", True), bias=True),
    ]
    return LayerGraph(tuple(layers), "E")


def dense_graph(inputs: int, hidden: int, outputs: int) -> LayerGraph:
    """Linear(inputs -> hidden) -> LIF -> Linear(hidden -> outputs), the readout."""
    return LayerGraph((
        linear("fc1", inputs, hidden, src=("", False)), lif("lif1", (hidden,), NEURON, src=("fc1", False)),
        linear("fc2", hidden, outputs, src=("lif1", True)),
    ), "fc2")


def genotypes() -> list[Genotype]:
    return [
        Genotype(("conv3x3", "skip", "avgpool3x3", "conv1x1", "conv3x3", "skip")),
        Genotype(("conv3x3",) * 6),
        Genotype(("skip", "conv1x1", "zero", "avgpool3x3", "zero", "conv3x3")),
        Genotype.from_index(1234, "5O"),
    ]


# ----------------------------------------------------------------------------------------------------------
# Registry


def test_built_in_targets_are_registered_in_order() -> None:
    names = target_names()
    assert [n for n in names if n in BUILT_IN] == list(BUILT_IN)
    for name in BUILT_IN:
        target = get_target(name)
        assert isinstance(target, Target) and target.name == name and target.exporter == "nir"


def test_unknown_target_names_it_and_lists_the_registered_ones() -> None:
    with pytest.raises(SpikeNASError) as err:
        get_target("loihi3")
    message = str(err.value)
    assert "'loihi3'" in message and "\n" not in message
    for name in target_names():
        assert name in message


def test_registering_adds_and_reregistering_warns_and_replaces() -> None:
    first = Loihi2Target(name="test_small_loihi", cores=4)
    second = Loihi2Target(name="test_small_loihi", cores=8)
    try:
        register_target(first)
        assert "test_small_loihi" in target_names()
        assert get_target("test_small_loihi") is first
        with pytest.warns(UserWarning, match="test_small_loihi"):
            register_target(second)
        assert get_target("test_small_loihi") is second
        assert target_names().count("test_small_loihi") == 1
    finally:
        unregister_target("test_small_loihi")
    assert "test_small_loihi" not in target_names()


def test_registering_something_else_is_refused() -> None:
    with pytest.raises(SpikeNASError, match="must be a spikenas.hardware.target.Target"):
        register_target("loihi2")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_constant_has_a_source(name: str) -> None:
    target = get_target(name)
    given = [c for source in target.sources for c in source.constants]
    assert sorted(given) == sorted(target.constants())  # each constant exactly once
    for source in target.sources:
        assert source.title and source.where and source.says
    json.dumps(target.to_dict())


def test_loihi2_per_core_limits_are_the_chip_figures_over_its_cores() -> None:
    target = get_target("loihi2")
    derived = [s for s in target.sources if s.derived]
    assert {c for s in derived for c in s.constants} == {"neurons_per_core", "synapses_per_core"}
    assert target.neurons_per_core == target.neurons_per_chip // target.cores
    assert target.synapses_per_core == target.synapses_per_chip // target.cores
    assert not any(s.derived for name in ("spinnaker2", "xylo") for s in get_target(name).sources)


# ----------------------------------------------------------------------------------------------------------
# Populations


def test_populations_of_a_hand_built_graph() -> None:
    graph = hand_graph(hidden=10)
    by = {p.name: p for p in populations(graph)}
    assert list(by) == ["L1", "L2", "L3", "L4", "E"]
    expected_weights = {"L1": ("A",), "L2": ("B", "C"), "L3": ("B", "C"), "L4": ("D",), "E": ("E",)}
    assert {n: p.weight_layers for n, p in by.items()} == expected_weights
    a, b, c = graph["A"], graph["B"], graph["C"]
    assert by["L1"].synapses == conv_pairs(a) == 3 * 4 * (3 * 6 - 2) ** 2  # 16 tap-position pairs per axis
    assert by["L2"].synapses == by["L3"].synapses == conv_pairs(b) + conv_pairs(c) == 4 * 4 * 36 + 4 * 4 * 16**2
    assert by["L4"].synapses == 4 * 6 * 6 * 10  # every spike of L2 in the pooled area reaches every output
    assert by["E"].synapses == 10 * 3
    assert by["L2"].weights == b.params + c.params == 4 * 4 + 9 * 4 * 4
    assert by["E"].weights == 10 * 3 + 3 and by["E"].readout and by["E"].neurons == 3
    assert [by[n].neurons for n in ("L1", "L2", "L3", "L4")] == [144, 144, 144, 10]


@pytest.mark.parametrize("size,kernel,stride", [(5, 3, 1), (8, 3, 2), (7, 1, 1), (6, 5, 1)])
def test_connections_of_a_conv_count_every_tap(size: int, kernel: int, stride: int) -> None:
    layer = conv("x", 2, 3, size, kernel, src=("s", True), stride=stride)
    assert connections(layer) == conv_pairs(layer)


def test_a_neuron_output_adds_no_readout() -> None:
    from spikenas.autosnn.macro import AutoSNNConfig

    graph = autosnn_graph(("skip", "scb_k3", "srb_k3", "skip", "srb_k5"), AutoSNNConfig(base_channels=4, input_size=8))
    pops = populations(graph)
    assert sum(p.neurons for p in pops) == graph.neurons
    assert pops[-1].name == graph.output and not any(p.readout for p in pops)


# ----------------------------------------------------------------------------------------------------------
# Loihi 2


def test_loihi2_splits_each_layer_over_cores_by_neurons_and_synapses() -> None:
    graph = hand_graph(hidden=10)
    target = Loihi2Target(neurons_per_core=50, synapses_per_core=2_000)
    fit = target.fit(graph, timesteps=4)
    pops = populations(graph)
    first = 0
    for unit, pop in zip(fit.units, pops, strict=True):
        cores = max(ceil_div(pop.neurons, 50), ceil_div(pop.synapses, 2_000), 1)
        assert unit["layer"] == pop.name and unit["cores"] == [first, first + cores - 1]
        assert unit["neurons_per_core"] == ceil_div(pop.neurons, cores) <= 50
        assert unit["synapses_per_core"] == ceil_div(pop.synapses, cores) <= 2_000
        first += cores
    assert fit.totals["cores"] == first and fit.fits and fit.reason is None
    assert fit.totals["neurons"] == 3 * 144 + 10 + 3 and fit.totals["synapses"] == sum(p.synapses for p in pops)
    json.dumps(fit.to_dict())


def test_loihi2_refuses_more_neurons_than_a_chip_holds_with_the_figures() -> None:
    big = LayerGraph((
        conv("c", 2, 64, 128, 3, src=("", False)), lif("n", (64, 128, 128), NEURON, src=("c", False)),
    ), "n")
    fit = get_target("loihi2").fit(big, timesteps=1)
    neurons = 64 * 128 * 128
    assert not fit.fits and fit.totals["neurons"] == neurons
    assert f"{neurons:,}" in fit.reason and "1,000,000" in fit.reason and "\n" not in fit.reason


def test_loihi2_refuses_more_cores_than_the_chip_has() -> None:
    graph = hand_graph()
    needed = get_target("loihi2").fit(graph, timesteps=1).totals["cores"]
    fit = Loihi2Target(cores=needed - 1).fit(graph, timesteps=1)
    assert not fit.fits and f"{needed:,} neuro cores" in fit.reason and f"chip's {needed - 1}" in fit.reason


def test_loihi2_refuses_a_neuron_with_more_synapses_than_a_core_holds() -> None:
    fit = Loihi2Target(synapses_per_core=100).fit(dense_graph(200, 4, 2), timesteps=1)
    assert not fit.fits and "'lif1'" in fit.reason and "200" in fit.reason  # 800 synapses on 4 neurons


def test_default_cell_network_exceeds_one_loihi2_chip() -> None:
    graph = cell_network_graph(genotypes()[0], MacroConfig())
    fit = get_target("loihi2").fit(graph, timesteps=5)
    assert fit.totals["neurons"] <= 1_000_000 < 120_000_000 < fit.totals["synapses"]
    assert not fit.fits and f"{fit.totals['synapses']:,} synapses" in fit.reason


# ----------------------------------------------------------------------------------------------------------
# SpiNNaker2


def test_spinnaker2_bytes_per_pe() -> None:
    graph = dense_graph(1024, 256, 10)
    fit = get_target("spinnaker2").fit(graph, timesteps=2)
    hidden_bytes = 256 * 16 // 8 + 1024 * 256 * 8 // 8  # 16-bit state + 8-bit weights
    readout_bytes = 10 * 2 + 256 * 10
    pes = ceil_div(hidden_bytes, 128 * 1024)
    assert fit.units[0]["pes"] == [0, pes - 1] and fit.units[0]["bytes_per_pe"] == ceil_div(hidden_bytes, pes)
    assert fit.units[1]["pes"] == [pes, pes] and fit.units[1]["bytes_per_pe"] == readout_bytes
    assert fit.totals["bytes"] == hidden_bytes + readout_bytes and fit.totals["pes"] == pes + 1 and fit.fits


def test_spinnaker2_bit_widths_and_code_reserve_change_the_bytes() -> None:
    graph = dense_graph(100, 300, 5)
    target = SpiNNaker2Target(weight_bits=4, state_bits=32, code_bytes_per_pe=1000)
    unit = target.fit(graph, timesteps=1).units[0]
    assert unit["state_bytes"] == 300 * 4 and unit["weight_bytes"] == ceil_div(100 * 300 * 4, 8)
    assert unit["bytes_per_pe_limit"] == 128 * 1024 - 1000
    with pytest.raises(SpikeNASError, match="code_bytes_per_pe"):
        SpiNNaker2Target(code_bytes_per_pe=128 * 1024)


def test_spinnaker2_refuses_more_pes_than_the_chip_has_and_an_unsplittable_neuron() -> None:
    graph = dense_graph(1024, 256, 10)
    fit = SpiNNaker2Target(pes=2).fit(graph, timesteps=1)
    assert not fit.fits and "4 PEs" in fit.reason and "chip's 2" in fit.reason
    fit = get_target("spinnaker2").fit(dense_graph(200_000, 1, 2), timesteps=1)
    assert not fit.fits and "'lif1'" in fit.reason and "200,002 B" in fit.reason  # 2 B state + 200,000 B weights


# ----------------------------------------------------------------------------------------------------------
# Xylo


def test_xylo_refuses_a_conv_cell_network_up_front() -> None:
    graph = cell_network_graph(genotypes()[0], SMALL)
    xylo = get_target("xylo")
    line = xylo.refusal(graph)
    assert line.startswith("xylo cannot run layer 'stem.0' (Conv2d): ") and "rockpool 3.1.0" in line
    assert "\n" not in line
    fit = xylo.fit(graph, timesteps=3)
    assert not fit.fits and fit.reason == line and fit.units == []
    with pytest.raises(SpikeNASError, match="stem.0"):
        xylo.require(graph)
    assert get_target("loihi2").refusal(graph) is None and get_target("spinnaker2").refusal(graph) is None


def test_xylo_refuses_pooling_a_bare_input_to_neurons_chained_weights_and_one_neuron_layer() -> None:
    xylo = get_target("xylo")
    pooled = LayerGraph((
        pool("p", "avgpool", 1, 4, 2, src=("", False)), Layer("f", "flatten", (4,), inputs=("p",)),
        linear("fc1", 4, 8, src=("f", False)), lif("n1", (8,), NEURON, src=("fc1", False)),
        linear("fc2", 8, 2, src=("n1", True)),
    ), "fc2")
    assert "layer 'p' (AvgPool2d)" in xylo.refusal(pooled)
    bare = LayerGraph((lif("n0", (4,), NEURON, src=("", False)), linear("fc", 4, 2, src=("n0", True))), "fc")
    assert "'n0'" in xylo.refusal(bare) and "through a weight" in xylo.refusal(bare)
    chained = LayerGraph((
        linear("fc1", 4, 8, src=("", False)), linear("fc2", 8, 8, src=("fc1", False)),
        lif("n1", (8,), NEURON, src=("fc2", False)), linear("fc3", 8, 2, src=("n1", True)),
    ), "fc3")
    assert "'fc2'" in xylo.refusal(chained)
    single = LayerGraph((linear("fc1", 4, 2, src=("", False)), lif("n1", (2,), NEURON, src=("fc1", False))), "n1")
    assert "1 layer of neurons" in xylo.refusal(single)


def test_xylo_fits_a_small_dense_network() -> None:
    fit = get_target("xylo").fit(dense_graph(16, 1000, 8), timesteps=5)
    assert fit.fits and fit.reason is None
    used = {u["unit"]: (u["used"], u["limit"]) for u in fit.units}
    assert used == {"hidden neurons": (1000, 1000), "output neurons": (8, 8), "input channels": (16, 16)}
    assert fit.totals["synapses"] == 16 * 1000 + 1000 * 8 == fit.totals["weights"] == fit.totals["weight_bytes"]


@pytest.mark.parametrize("inputs,hidden,outputs,figure,limit", [
    (16, 1001, 8, "1,001 hidden neurons", "1,000"),
    (17, 10, 8, "17 input channels", "16"),
    (16, 10, 9, "9 output neurons", "8"),
])
def test_xylo_refuses_more_than_its_neurons_and_channels(inputs, hidden, outputs, figure, limit) -> None:
    fit = get_target("xylo").fit(dense_graph(inputs, hidden, outputs), timesteps=1)
    assert not fit.fits and figure in fit.reason and f"the {limit} of Xylo Audio 2" in fit.reason


def test_xylo_counts_every_layer_before_the_output_as_hidden() -> None:
    graph = LayerGraph((
        linear("fc1", 8, 300, src=("", False)), lif("n1", (300,), NEURON, src=("fc1", False)),
        linear("fc2", 300, 400, src=("n1", True)), lif("n2", (400,), NEURON, src=("fc2", False)),
        linear("fc3", 400, 5, src=("n2", True)), lif("out", (5,), NEURON, src=("fc3", False)),
    ), "out")
    fit = XyloTarget(max_hidden_neurons=699).fit(graph, timesteps=1)
    assert not fit.fits and "700 hidden neurons" in fit.reason
    assert fit.units[1]["layers"] == ["out"] and fit.units[1]["used"] == 5


# ----------------------------------------------------------------------------------------------------------
# Generic


@pytest.mark.parametrize("bits", [(8, 16, 8, "timestep"), (4, 8, 4, "all")])
def test_generic_equals_the_deployment_models_onchip_bytes(bits) -> None:
    weight_bits, state_bits, activation_bits, scope = bits
    target = GenericTarget(weight_bits=weight_bits, state_bits=state_bits, activation_bits=activation_bits,
                           buffer_scope=scope)
    config = DeploymentConfig(weight_bits=weight_bits, state_bits=state_bits, activation_bits=activation_bits,
                              buffer_scope=scope)
    for i, genotype in enumerate(genotypes()):
        macro = replace(SMALL, num_cells=1 + i % 3, input_size=16)
        graph = cell_network_graph(genotype, macro)
        figures = memory_figures(graph.layers, config, macro.timesteps)
        fit = target.fit(graph, timesteps=macro.timesteps)
        assert fit.fits and fit.totals["onchip_bytes"] == figures.onchip_bytes
        assert fit.units[0]["bytes"] == figures.onchip_bytes
        assert fit.totals["peak_buffer_layer"] == figures.peak_buffer_layer


def test_generic_budget() -> None:
    graph = cell_network_graph(genotypes()[0], SMALL)
    onchip = get_target("generic").fit(graph, timesteps=3).totals["onchip_bytes"]
    assert GenericTarget(budget_bytes=onchip).fit(graph, timesteps=3).fits
    fit = GenericTarget(budget_bytes=onchip - 1).fit(graph, timesteps=3)
    assert not fit.fits and f"{onchip:,} B" in fit.reason and f"budget of {onchip - 1:,} B" in fit.reason


@pytest.mark.parametrize("kwargs,message", [
    ({"budget_bytes": 0}, "budget_bytes"), ({"budget_bytes": 1.5}, "budget_bytes"),
    ({"budget_bytes": True}, "budget_bytes"), ({"weight_bits": 0}, "weight_bits"),
    ({"buffer_scope": "layer"}, "buffer_scope"),
])
def test_generic_refuses_bad_settings(kwargs, message) -> None:
    with pytest.raises(SpikeNASError, match=message):
        GenericTarget(**kwargs)


@pytest.mark.parametrize("cls,key", [(Loihi2Target, "cores"), (SpiNNaker2Target, "pes"),
                                     (XyloTarget, "max_hidden_neurons")])
def test_chip_constants_must_be_positive_integers(cls, key) -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(SpikeNASError, match=key):
            cls(**{key: bad})


# ----------------------------------------------------------------------------------------------------------
# Every target


@pytest.mark.parametrize("name", BUILT_IN)
def test_fit_results_are_json_ready_and_timesteps_are_checked(name: str) -> None:
    target = get_target(name)
    for graph in (cell_network_graph(genotypes()[2], SMALL), dense_graph(12, 40, 6)):
        fit = target.fit(graph, timesteps=3)
        assert isinstance(fit, TargetFit) and fit.target == name and fit.fits == (fit.reason is None)
        assert json.loads(json.dumps(fit.to_dict())) == fit.to_dict()
    for bad in (0, 1.5, True):
        with pytest.raises(SpikeNASError, match="timesteps"):
            target.fit(dense_graph(12, 40, 6), timesteps=bad)
