"""Stacked evaluation (spikenas.nas.stacked): n candidates through one module call equal each
candidate run alone: values bit for bit, kernels to float64 rounding, LIF call counts exactly."""

from __future__ import annotations

import random

import pytest
import torch
from spikingjelly.activation_based import functional, layer
from spikingjelly.activation_based.neuron import BaseNode
from torch import nn

from spikenas import kernels
from spikenas.nas.stacked import (
    Stack,
    grouped_batch_norm,
    run_stacked,
    select,
    split,
    stack,
    stacked_cell,
)
from spikenas.network import Cell, MacroConfig, build_network, downconv, edge_op
from spikenas.neuron import NeuronConfig, make_lif
from spikenas.scoring.recorder import set_bn_mode
from spikenas.space import EDGES, Genotype

KERNEL_TOL = 1e-12  # float64 kernels summed in another order


def gram(spikes: torch.Tensor) -> torch.Tensor:
    return kernels.spike_gram_dense(spikes, kind="sahd", alpha=0.5, backend="torch")


def alone(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """``module`` on one candidate's ``[T, B, ...]``: (output, kernel summed over LIF calls, calls)."""
    grams: list[tuple[torch.Tensor, int]] = []

    def hook(_m, _i, out):
        grams.append((gram(out.reshape(out.shape[0], out.shape[1], -1)), out.shape[0]))

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, BaseNode)]
    functional.reset_net(module)
    with torch.no_grad():
        out = module(x)
    functional.reset_net(module)
    for h in handles:
        h.remove()
    kernel = None
    for k, _ in grams:
        kernel = k if kernel is None else kernel + k
    return out, kernel, sum(c for _, c in grams)


def candidates_input(n: int, t: int, b: int, *shape: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(t, b, *shape, generator=gen) * (1 + k) + k for k in range(n)]


def test_stack_split_select_layout():
    values = candidates_input(3, 2, 5, 4, seed=0)
    stacked = stack(values)
    assert stacked.shape == (2, 15, 4)
    assert torch.equal(stacked[:, 1 * 3 + 2], values[2][:, 1])  # sample b of candidate k is row b*n + k
    for k in range(3):
        assert torch.equal(split(stacked, 3)[:, :, k], values[k])
    picked = select(stacked, 3, torch.tensor([0, 2]))
    assert torch.equal(picked, stack([values[0], values[2]]))
    assert select(stacked, 3, torch.tensor([0, 1, 2])) is stacked


@pytest.mark.parametrize("n", [1, 3, 7])
@pytest.mark.parametrize("dims", [(6, 5, 5), (9,)])
def test_grouped_batch_norm_equals_each_candidate_alone(n, dims):
    values = candidates_input(n, 3, 11, *dims, seed=n)
    bn = (layer.BatchNorm2d if len(dims) == 3 else layer.BatchNorm1d)(dims[0], step_mode="m")
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
    bn.train()
    before = bn.running_mean.clone()
    with torch.no_grad():
        out = grouped_batch_norm(bn, stack(values), n)
        for k, v in enumerate(values):
            assert torch.equal(split(out, n)[:, :, k], bn(v))
    bn.running_mean.copy_(before)
    with torch.no_grad():
        grouped_batch_norm(bn, stack(values), n)
    assert torch.equal(bn.running_mean, before)  # the grouped path leaves running statistics alone


class MixesSamples(nn.Module):
    """Not per-sample (subtracts the batch mean): stacking must fall back to one call per candidate."""

    def __init__(self) -> None:
        super().__init__()
        self.lif = make_lif(NeuronConfig())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(x - x.mean(dim=1, keepdim=True) + 1.0)


def modules_under_test() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    macro = MacroConfig(num_cells=2, width=3, in_channels=1, input_size=8, hidden=7, timesteps=3)
    net = build_network([Genotype.from_index(100, "5O")] * 2, macro, seed=3, weight_seeding="per_edge")
    last = max(i for i, m in enumerate(net.head) if isinstance(m, BaseNode))
    neuron = macro.neuron
    return {
        "downconv": (downconv(3, neuron), (3, 7, 7)),
        "head": (net.head[: last + 1], (6, 4, 4)),
        "conv3x3": (edge_op("conv3x3", 5, neuron, seed=1, position=0, edge=2), (5, 6, 6)),
        "avgpool3x3": (edge_op("avgpool3x3", 5, neuron, seed=1, position=0, edge=2), (5, 6, 6)),
        "mixes samples": (nn.Sequential(layer.Conv2d(4, 4, 1, step_mode="m"), MixesSamples()), (4, 3, 3)),
    }


@pytest.mark.parametrize("name", list(modules_under_test()))
@pytest.mark.parametrize("n", [1, 4])
def test_run_stacked_equals_each_candidate_alone(name, n):
    module, dims = modules_under_test()[name]
    set_bn_mode(module, "train")
    values = candidates_input(n, 3, 9, *dims, seed=len(name) + n)
    with torch.no_grad():
        result = run_stacked(module, stack(values), n, gram)
    assert result.n == n and result.batch == 9
    for k, v in enumerate(values):
        out, kernel, calls = alone(module, v)
        assert torch.equal(split(result.value, n)[:, :, k], out)
        assert int(result.calls[k]) == calls
        if kernel is None:
            assert result.kernel is None
        else:
            torch.testing.assert_close(result.kernel[k], kernel, rtol=KERNEL_TOL, atol=KERNEL_TOL)


@pytest.mark.parametrize("op_set,seed", [("5O", 0), ("5O", 1), ("3O", 2)])
def test_stacked_cell_equals_cell_per_candidate(op_set, seed):
    rng = random.Random(seed)
    width, neuron = 4, NeuronConfig()
    count = {"5O": 5**6, "3O": 3**6}[op_set]
    genotypes = [Genotype.from_index(rng.randrange(count), op_set) for _ in range(6)]
    genotypes.append(Genotype(("zero",) * len(EDGES)) if op_set == "5O" else genotypes[0])
    modules: dict[tuple[int, str], nn.Module] = {}

    def edge_module(edge: int, op_name: str) -> nn.Module:
        if (edge, op_name) not in modules:
            module = edge_op(op_name, width, neuron, seed=seed, position=1, edge=edge)
            modules[edge, op_name] = set_bn_mode(module, "train")
        return modules[edge, op_name]

    n = len(genotypes)
    values = candidates_input(n, 2, 7, width, 5, 5, seed=seed)
    prior = torch.rand(n, 7, 7, dtype=torch.float64)
    x = Stack(stack(values), n, prior, torch.arange(n, dtype=torch.int64))
    with torch.no_grad():
        result = stacked_cell(x, genotypes, edge_module, gram)
    for k, (genotype, v) in enumerate(zip(genotypes, values, strict=True)):
        cell = Cell.of(genotype, width, neuron)
        for (src, dst), op_name in zip(EDGES, genotype.ops, strict=True):
            key = f"{src}{dst}"
            if key in cell.edges:
                cell.edges[key] = edge_module(EDGES.index((src, dst)), op_name)
        out, kernel, calls = alone(cell, v)
        assert torch.equal(split(result.value, n)[:, :, k], out), genotype
        assert int(result.calls[k]) == k + calls
        expected = prior[k] if kernel is None else prior[k] + kernel
        torch.testing.assert_close(result.kernel[k], expected, rtol=KERNEL_TOL, atol=KERNEL_TOL)
