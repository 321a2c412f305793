"""The deployment model (spikenas.deployment) equals what a built network gives.

Neuron states are read from the ``v`` of every spikingjelly neuron after a forward pass, buffers from
forward hooks on every layer, synops from hooks that feed each conv/Linear's spike input through the
same layer with all-one weights (which sums spikes times fan-out), MACs from the layers' shapes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer
from spikingjelly.activation_based.neuron import BaseNode, ParametricLIFNode
from torch import nn

from spikenas import spikenas_bench  # noqa: F401 - registers the SpikeNAS-Bench ops
from spikenas.autosnn.deployment import autosnn_layers
from spikenas.autosnn.deployment import deployment_report as autosnn_report
from spikenas.autosnn.deployment import network_cost as autosnn_cost
from spikenas.autosnn.memory import network_params as autosnn_params
from spikenas.autosnn.network import AutoSNNConfig
from spikenas.autosnn.network import build_network as build_autosnn
from spikenas.autosnn.space import AutoSNNSpace, arch_from_index
from spikenas.deployment import (
    DeploymentConfig,
    EnergyCosts,
    cell_network_layers,
    deployment_report,
    deployment_table,
)
from spikenas.errors import SpikeNASError
from spikenas.memory import Budget, network_params
from spikenas.nas import PRESETS, SearchConfig, consecutive_search, prepare, random_search, run_search
from spikenas.nas.__main__ import build_parser, request_from_args
from spikenas.nas.__main__ import main as search_main
from spikenas.nas.engine import Evaluator
from spikenas.nas.evolution import Evaluation, evolution_search
from spikenas.nas.space_api import CellSpace
from spikenas.network import Cell, MacroConfig, build_network
from spikenas.ops import get_op_set, lif_conv_bn, register_op
from spikenas.scoring import ScoreConfig
from spikenas.space import Genotype, num_genotypes

HOOKED = (BaseNode, nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.AvgPool2d, nn.MaxPool2d, nn.Identity, nn.Flatten,
          layer.Dropout, Cell)


def built_figures(model: nn.Module, images: torch.Tensor, target: DeploymentConfig, timesteps: int) -> dict:
    """Figures measured on the built network, independently of the deployment model."""
    batch = images.shape[0]
    marks: dict[int, float] = {}  # id(tensor) -> 1 for spikes, the pool area for average-pooled spikes
    keep: list[torch.Tensor] = []  # keeps marked tensors alive so their ids stay unique
    buffers: dict[str, int] = {}
    synops, macs = 0.0, 0

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            nonlocal synops, macs
            x = inputs[0]
            mark = marks.get(id(x))
            if isinstance(module, BaseNode):
                out_mark = 1.0
            elif isinstance(module, (nn.Identity, nn.MaxPool2d, nn.Flatten, layer.Dropout)):
                out_mark = mark
            elif isinstance(module, nn.AvgPool2d) and mark == 1.0 and module.kernel_size == 2:
                out_mark = 4.0
            else:
                out_mark = None
            if out_mark is not None:
                marks[id(output)] = out_mark
                keep.append(output)
            per_step = not name.startswith("stem.")
            bits = output.numel() // batch * (1 if out_mark == 1.0 else target.activation_bits)
            if per_step and target.buffer_scope == "timestep":
                bits //= timesteps
            buffers[name] = bits
            if isinstance(module, nn.Conv2d):
                flat = x.reshape(-1, *x.shape[-3:])
                if mark == 1.0:
                    ones = torch.ones_like(module.weight)
                    synops += float(F.conv2d(flat, ones, None, module.stride, module.padding).sum()) / batch
                else:
                    macs += output.numel() // batch * module.in_channels * math.prod(module.kernel_size)
            elif isinstance(module, nn.Linear):
                if mark is not None:
                    ones = torch.ones_like(module.weight)
                    synops += float(F.linear(x * mark, ones).sum()) / batch
                else:
                    macs += output.numel() // batch * module.in_features

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, HOOKED)]
    model.eval()
    with torch.no_grad():
        functional.reset_net(model)
        model(images)
    for h in handles:
        h.remove()
    neurons = sum(m.v.numel() // batch for m in model.modules() if isinstance(m, BaseNode))
    taus = sum(1 for m in model.modules() if isinstance(m, ParametricLIFNode))
    weights = sum(p.numel() for p in model.parameters()) - taus
    functional.reset_net(model)
    return {"buffers": buffers, "neurons": neurons, "taus": taus, "weights": weights, "synops": synops, "macs": macs}


def check_equal(report, layers, built: dict, target: DeploymentConfig, timesteps: int) -> None:
    m, o = report.memory, report.operations
    assert m.weights == built["weights"]
    assert m.neurons == built["neurons"]
    assert m.taus == built["taus"]
    assert m.weight_bytes == (built["weights"] * target.weight_bits + 7) // 8
    assert m.state_bytes == ((built["neurons"] + built["taus"]) * target.state_bits + 7) // 8
    model_buffers = {}
    for lay in layers:
        if lay.kind == "sum" and ".nodes." in lay.name:
            continue  # a cell's inner node: no module holds it (its buffer is the cell output's, which is hooked)
        bits = lay.buffer_bits(target.activation_bits)
        model_buffers[lay.name] = bits * timesteps if target.buffer_scope == "all" and lay.per_step else bits
    assert model_buffers == built["buffers"]
    assert m.peak_buffer_bits == max(built["buffers"].values())
    assert m.peak_buffer_bytes == (max(built["buffers"].values()) + 7) // 8
    assert o.synops == pytest.approx(built["synops"], rel=1e-9, abs=1e-9)
    assert o.macs == built["macs"]
    energy = built["synops"] * target.energy.ac_pj + built["macs"] * target.energy.mac_pj
    assert o.energy_pj == pytest.approx(energy, rel=1e-9)


def images_for(config, batch: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(batch, config.in_channels, config.input_size, config.input_size, generator=g)


CELL_CASES = [
    # (op set, cells, width, input size, weight/state/activation bits, scope)
    ("5O", 1, 4, 8, (8, 16, 8), "timestep"),
    ("5O", 2, 4, 9, (4, 8, 8), "all"),
    ("3O", 3, 3, 16, (8, 16, 8), "timestep"),
    ("3O", 2, 6, 8, (2, 4, 6), "all"),
    ("2O", 1, 5, 7, (16, 32, 16), "all"),
    ("2O", 3, 2, 8, (1, 1, 1), "timestep"),
    ("bench5", 2, 4, 8, (8, 16, 8), "timestep"),
    ("bench5", 1, 3, 6, (3, 5, 7), "all"),
]


@pytest.mark.parametrize("op_set,cells,width,size,bits,scope", CELL_CASES)
def test_cell_network_equals_built(op_set, cells, width, size, bits, scope):
    config = MacroConfig(num_cells=cells, width=width, in_channels=2, input_size=size, hidden=12, timesteps=3,
                         num_classes=3, vote=2)
    target = DeploymentConfig(weight_bits=bits[0], state_bits=bits[1], activation_bits=bits[2], buffer_scope=scope,
                              energy=EnergyCosts(ac_pj=0.5, mac_pj=3.0))
    rng = np.random.default_rng(cells * 100 + width)
    synops = []
    for index in rng.choice(num_genotypes(op_set), size=3, replace=False):
        genotypes = [Genotype.from_index(int(rng.integers(num_genotypes(op_set))), op_set) for _ in range(cells)]
        genotypes[0] = Genotype.from_index(int(index), op_set)
        model = build_network(genotypes, config, seed=1)
        images = images_for(config)
        report = deployment_report(genotypes, config, target, model=model, images=images)
        layers = cell_network_layers(genotypes, config)
        built = built_figures(model, images, target, config.timesteps)
        check_equal(report, layers, built, target, config.timesteps)
        assert report.memory.weights == network_params(genotypes, config)
        synops.append(built["synops"])
    assert max(synops) > 0  # the comparison saw spikes


def test_every_op_of_every_set_is_covered():
    """Each op of every set appears on every edge in some cell of the parametrised cases' op sets."""
    config = MacroConfig(num_cells=1, width=3, in_channels=1, input_size=6, hidden=8, timesteps=2)
    target = DeploymentConfig()
    for op_set in ("5O", "3O", "2O", "bench5"):
        for op in get_op_set(op_set):
            genotype = Genotype((op,) * 6)
            model = build_network(genotype, config, seed=0)
            images = images_for(config)
            report = deployment_report(genotype, config, target, model=model, images=images)
            built = built_figures(model, images, target, config.timesteps)
            check_equal(report, cell_network_layers(genotype, config), built, target, config.timesteps)


@pytest.mark.parametrize("index,base,size,scope", [(0, 4, 8, "timestep"), (1234, 3, 16, "all"), (3124, 2, 8, "all"),
                                                  (777, 4, 12, "timestep")])
def test_autosnn_equals_built(index, base, size, scope):
    config = AutoSNNConfig(base_channels=base, timesteps=3, in_channels=2, input_size=size, num_classes=3, vote=2)
    target = DeploymentConfig(weight_bits=6, state_bits=12, activation_bits=8, buffer_scope=scope)
    archs = (arch_from_index(index), ("skip",) * 5, ("srb_k3", "skip") * 2 + ("scb_k5",))
    for arch in archs:
        model = build_autosnn(arch, config, seed=0)
        images = images_for(config)
        report = autosnn_report(arch, config, target, model=model, images=images)
        built = built_figures(model, images, target, config.timesteps)
        check_equal(report, autosnn_layers(arch, config), built, target, config.timesteps)
        assert report.memory.weights + report.memory.taus == autosnn_params(arch, config)
        assert built["synops"] > 0


def test_assumed_rate_is_fanout_times_rate():
    """With a firing rate and no data, synops = rate x T x (dense synapse uses of spike-driven layers)."""
    config = MacroConfig(num_cells=1, width=4, in_channels=1, input_size=8, hidden=10, timesteps=4, num_classes=2,
                         vote=1)
    genotype = Genotype(("conv3x3",) * 6)
    full = deployment_report(genotype, config, firing_rate=1.0).operations.synops
    half = deployment_report(genotype, config, firing_rate=0.5).operations.synops
    assert half == pytest.approx(full / 2)
    # An all-ones input spike map reaches every synapse once per timestep: the padded conv's weight uses.
    model = build_network(genotype, config, seed=0)
    for m in model.modules():
        if isinstance(m, BaseNode):
            m.v_threshold = -1e9  # every neuron fires every timestep
    images = images_for(config)
    assert deployment_report(genotype, config, model=model, images=images).operations.synops == pytest.approx(full)


def test_budget_costs_vectorised_equal_per_network():
    config = MacroConfig(num_cells=2, width=4, in_channels=1, input_size=8, hidden=16, timesteps=3)
    for budget in (Budget(1e9), Budget(1e9, 8), Budget(1e9, 4, kind="onchip_bytes", state_bits=12),
                   Budget(1e9, 8, kind="onchip_bytes", activation_bits=4, buffer_scope="all")):
        for op_set in ("3O", "5O"):
            costs = budget.cell_costs(op_set, config)
            for index in (0, 7, 100, num_genotypes(op_set) - 1):
                g = Genotype.from_index(index, op_set)
                assert costs[index] == budget.network_cost([g, g], config)
            cells = (Genotype.from_index(5, op_set), Genotype.from_index(9, op_set))
            costs = budget.cell_costs(op_set, config, position=1, cells=cells)
            for index in (0, 42, num_genotypes(op_set) - 1):
                assert costs[index] == budget.network_cost([cells[0], Genotype.from_index(index, op_set)], config)


def test_onchip_budget_is_the_report_sum():
    config = MacroConfig(num_cells=2, width=4, in_channels=1, input_size=8, hidden=16, timesteps=3)
    budget = Budget(1e9, 8, kind="onchip_bytes", state_bits=16, activation_bits=8)
    g = Genotype.from_index(17, "3O")
    report = deployment_report(g, config, budget.target())
    assert report.memory.onchip_bytes == budget.network_cost([g, g], config)
    assert report.memory.onchip_bytes == (
        report.memory.weight_bytes + report.memory.state_bytes + report.memory.peak_buffer_bytes
    )
    assert report.to_dict()["onchip_bytes"] == report.memory.onchip_bytes


def test_budget_validation():
    with pytest.raises(SpikeNASError, match="kind"):
        Budget(100, 8, kind="flops")
    with pytest.raises(SpikeNASError, match="needs bits"):
        Budget(100, kind="onchip_bytes")
    with pytest.raises(SpikeNASError, match="bits=8 has no effect"):
        Budget(100, 8, kind="params")
    with pytest.raises(SpikeNASError, match="state_bits"):
        Budget(100, 8, kind="weight_bytes", state_bits=4)
    with pytest.raises(SpikeNASError, match="state_bits"):
        Budget(100, 8, kind="onchip_bytes", state_bits=0)
    with pytest.raises(SpikeNASError, match="network_cost"):  # on-chip bytes depend on more than parameters
        Budget(100, 8, kind="onchip_bytes").fits(10)
    assert Budget(100, 8).kind == "weight_bytes" and Budget(100).kind == "params"
    with pytest.raises(SpikeNASError, match="mac_pj"):
        EnergyCosts(mac_pj=-1.0)
    with pytest.raises(SpikeNASError, match="buffer_scope"):
        DeploymentConfig(buffer_scope="layer")


def test_registered_op_deploys_with_nothing_else_written():
    """An op registered once (its layers) has deployment figures equal to its built network's."""
    register_op("deploy_test_conv5", spiking=True)(
        lambda prefix, c, size, neuron, src: lif_conv_bn(prefix, c, size, 5, neuron, src=src))
    config = MacroConfig(num_cells=1, width=2, in_channels=1, input_size=6, hidden=4, timesteps=2)
    g = Genotype(("deploy_test_conv5",) * 6)
    model = build_network(g, config, seed=0)
    images = images_for(config)
    target = DeploymentConfig()
    built = built_figures(model, images, target, config.timesteps)
    check_equal(deployment_report(g, config, target, model=model, images=images), cell_network_layers(g, config),
                built, target, config.timesteps)


def test_autosnn_onchip_budget_prices_built_network():
    config = AutoSNNConfig(base_channels=2, timesteps=2, in_channels=1, input_size=8, num_classes=2, vote=1)
    budget = Budget(1e9, 8, kind="onchip_bytes", state_bits=16)
    space = AutoSNNSpace(config)
    arch = ("scb_k3", "skip", "srb_k5", "skip", "srb_k3")
    report = autosnn_report(arch, config, budget.target())
    assert space.budget_cost(budget, arch) == autosnn_cost(budget, arch, config) == report.memory.onchip_bytes
    assert space.infeasible(budget) is None
    tight = Budget(report.memory.onchip_bytes / 100, 8, kind="onchip_bytes")
    message = space.infeasible(tight)
    assert message is not None and "on-chip bytes" in message and "--width" in message


def _evaluator(macro) -> Evaluator:
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(10, macro.in_channels, macro.input_size, macro.input_size, generator=gen)]
    return Evaluator(macro, batches, ScoreConfig(), seed=0)


def _onchip_all(budget: Budget, op_set: str, macro: MacroConfig) -> np.ndarray:
    return budget.cell_costs(op_set, macro)


@pytest.mark.parametrize("quantile,scope", [(0.1, "timestep"), (0.5, "all"), (0.9, "timestep")])
def test_alg1_never_returns_a_network_over_an_onchip_budget(tiny_macro, quantile, scope):
    probe = Budget(1.0, 4, kind="onchip_bytes", state_bits=8, activation_bits=4, buffer_scope=scope)
    limit = float(np.quantile(_onchip_all(probe, "2O", tiny_macro), quantile))
    budget = Budget(limit, 4, kind="onchip_bytes", state_bits=8, activation_bits=4, buffer_scope=scope)
    ev = _evaluator(tiny_macro)
    result = consecutive_search(CellSpace(tiny_macro, op_set="2O"), ev, budget=budget, progress=False)
    assert result.meets_budget is True
    built = build_network(list(result.best.cells), tiny_macro, seed=0)
    images = images_for(tiny_macro)
    report = deployment_report(result.best.cells, tiny_macro, budget.target(), model=built, images=images)
    measured = built_figures(built, images, budget.target(), tiny_macro.timesteps)
    check_equal(report, cell_network_layers(result.best.cells, tiny_macro), measured, budget.target(),
                tiny_macro.timesteps)
    assert report.memory.onchip_bytes <= limit
    for record in ev.records:  # nothing over budget was ever scored
        assert budget.network_cost(record.cells, tiny_macro) <= limit
    if quantile < 0.9:
        assert ev.counters.pruned > 0


def test_onchip_budget_binds_where_a_params_budget_does_not(tiny_macro):
    """State and buffers count: some networks with few parameters take more on-chip bytes than others with more."""
    budget = Budget(1.0, 8, kind="onchip_bytes")
    onchip = budget.cell_costs("5O", tiny_macro)  # conv1x1: few weights, as many neurons as conv3x3
    params = Budget(1.0).cell_costs("5O", tiny_macro)
    order = np.argsort(params, kind="stable")
    assert not np.all(np.diff(onchip[order]) >= 0)


def test_infeasible_onchip_budget_names_smallest_network(tiny_macro):
    budget = Budget(1.0, 8, kind="onchip_bytes")
    smallest = int(_onchip_all(budget, "2O", tiny_macro).min())
    tight = Budget(smallest - 1, 8, kind="onchip_bytes")
    with pytest.raises(SpikeNASError, match=f"smallest network of op set 2O .* takes {smallest:,} on-chip bytes"):
        consecutive_search(CellSpace(tiny_macro, op_set="2O"), _evaluator(tiny_macro), budget=tight, progress=False)
    with pytest.raises(SpikeNASError, match="on-chip bytes; raise the budget or narrow the network"):
        random_search(CellSpace(tiny_macro, op_set="2O"), _evaluator(tiny_macro), samples=3, budget=tight,
                      progress=False)
    assert CellSpace(tiny_macro, op_set="2O").infeasible(Budget(1e9, 8, kind="onchip_bytes")) is None
    # the evolution's cell space (a cell per position) names a lower bound
    message = CellSpace(tiny_macro, op_set="2O").infeasible(Budget(100, 8, kind="onchip_bytes"))
    assert "takes at least" in message and "on-chip bytes" in message


def test_random_search_reports_onchip_budget(tiny_macro):
    loose = Budget(1e9, 8, kind="onchip_bytes")
    result = random_search(CellSpace(tiny_macro, op_set="3O"), _evaluator(tiny_macro), samples=6, seed=1,
                           budget=loose, progress=False)
    assert result.meets_budget is True
    cost = loose.network_cost(result.best.cells, tiny_macro)
    exact = Budget(cost, 8, kind="onchip_bytes")
    assert exact.fits_network(result.best.cells, tiny_macro)
    assert not Budget(cost - 1, 8, kind="onchip_bytes").fits_network(result.best.cells, tiny_macro)


def test_evolution_respects_onchip_budget():
    config = AutoSNNConfig(base_channels=2, timesteps=2, in_channels=1, input_size=8, num_classes=2, vote=1)
    space = AutoSNNSpace(config)
    budget_all = Budget(1.0, 8, kind="onchip_bytes", state_bits=16)
    costs = sorted(space.budget_cost(budget_all, arch_from_index(i)) for i in range(0, 3125, 7))
    limit = costs[len(costs) // 3]
    budget = Budget(limit, 8, kind="onchip_bytes", state_bits=16)
    calls = []

    def fitness(arch):
        calls.append(arch)
        return Evaluation(fitness=float(sum(len(b) for b in arch)), spikes=0.0)

    result = evolution_search(space, fitness, population=6, iterations=3, top_k=3, mutations=3, crossovers=3,
                              budget=budget, seed=0, progress=False)
    assert calls and all(space.budget_cost(budget, arch) <= limit for arch in calls)
    assert result.meets_budget is True and result.counters.pruned > 0


def test_cli_budget_kind_flags():
    args = build_parser().parse_args(["--fast", "--budget", "20k", "--budget-kind", "onchip_bytes", "--bits", "8",
                                      "--state-bits", "16", "--activation-bits", "4", "--buffer-scope", "all"])
    config = request_from_args(args)
    budget = config.budget.build()
    assert (budget.kind, budget.bits, budget.state_bits, budget.activation_bits, budget.buffer_scope) == (
        "onchip_bytes", 8, 16, 4, "all")
    assert config.budget.deployment_target() == budget.target()
    assert request_from_args(build_parser().parse_args(["--budget", "1M"])).budget.build().kind == "params"
    assert request_from_args(build_parser().parse_args(["--budget", "1M", "--bits", "4"])).budget.build().kind == (
        "weight_bytes")


@pytest.mark.parametrize("argv,message", [
    (["--budget", "20k", "--budget-kind", "onchip_bytes"], "needs bits"),
    (["--budget-kind", "weight_bytes", "--bits", "8"], "bits needs a budget"),
    (["--budget", "20k", "--budget-kind", "params", "--bits", "8"], "has no effect"),
])
def test_cli_budget_errors_are_one_line(argv, message, capsys):
    assert search_main(["--fast", "--quiet", "--output", "/dev/null", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_state_bits_out_of_range_is_refused_when_parsed(capsys):
    with pytest.raises(SystemExit) as exit_info:
        search_main(["--fast", "--quiet", "--output", "/dev/null", "--budget", "20k", "--budget-kind", "onchip_bytes",
                     "--bits", "8", "--state-bits", "99"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --state-bits: must be an integer in 1..64, got '99'" in err and "Traceback" not in err


def test_run_search_reports_deployment_and_meets_onchip_budget():
    base = SearchConfig.from_fields(**{**PRESETS["fast"], "op_set": "2O", "num_cells": 1, "width": 2, "hidden": 8,
                                       "batch_size": 8, "timesteps": 2})
    macro, _ = prepare(base.macro, base.data, seed=base.seed)
    costs = Budget(1.0, 8, kind="onchip_bytes").cell_costs("2O", macro)
    limit = float(np.quantile(costs, 0.3))
    config = base.with_fields(budget=limit, bits=8, budget_kind="onchip_bytes")
    result, payload = run_search(config, progress=False)
    figures = payload["result"]["deployment"]
    assert payload["result"]["meets_budget"] is True
    assert figures["onchip_bytes"] <= limit
    assert figures["onchip_bytes"] == config.budget.build().network_cost(result.best.cells, macro)
    assert figures["synops_source"] == "measured on 8 samples" and figures["energy_pj"] > 0
    for key in ("weight_bytes", "state_bytes", "peak_buffer_bytes", "synops", "macs", "energy_uj"):
        assert key in figures


def test_deployment_table_equals_reports():
    config = MacroConfig(num_cells=2, width=3, in_channels=1, input_size=8, hidden=6, timesteps=2)
    g = [Genotype.from_index(451, "3O")] * 2
    model = build_network(g, config, seed=0)
    images = images_for(config)
    table = deployment_table(g, config, [32, 8, 4], model=model, images=images)
    for row, k in zip(table, (32, 8, 4), strict=True):
        target = DeploymentConfig(weight_bits=k, state_bits=k, activation_bits=k)
        assert row == deployment_report(g, config, target, model=model, images=images).to_dict()
