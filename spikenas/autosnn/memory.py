"""Exact parameter count of AutoSNN networks (the memory model of the AutoSNN space), summed over their layer
graphs (:func:`spikenas.layer_graph.autosnn_graph`).

Counted like :mod:`spikenas.memory`: conv and Linear weights, BatchNorm weight and bias, and the one
learnable ``w`` of every PLIF neuron; running statistics are not parameters. Tests check the count
equals ``sum(p.numel() for p in build_network(arch, config).parameters())``.
"""

from __future__ import annotations

import numpy as np

from spikenas.autosnn.macro import BLOCKS, SEARCHED, AutoSNNConfig
from spikenas.layer_graph import LayerGraph, autosnn_graph
from spikenas.layers import Layer
from spikenas.memory import Budget, infeasible_budget_message


def layer_params(spec: Layer) -> int:
    """Parameters of one layer, its PLIF time constant included."""
    return spec.params + spec.taus


def graph_params(graph: LayerGraph) -> int:
    """Parameters of a graph's network, PLIF time constants included."""
    return sum(layer_params(spec) for spec in graph)


def network_params(arch: tuple[str, ...] | list[str], config: AutoSNNConfig) -> int:
    """Exact parameter count of ``build_network(arch, config)``."""
    return graph_params(autosnn_graph(arch, config))


def block_table(config: AutoSNNConfig) -> np.ndarray:
    """int64 ``[len(SEARCHED), len(BLOCKS)]``: parameters of each block (column, :data:`BLOCKS` order) at each
    searched position (row): the sum over its layers (which depend on the position only) in the graph of the
    architecture holding that block at every position."""
    graphs = {b: autosnn_graph((b,) * len(SEARCHED), config) for b in BLOCKS}
    return np.array(
        [[sum(layer_params(spec) for spec in graphs[b].below(f"layers.{i}")) for b in BLOCKS] for i in SEARCHED],
        dtype=np.int64,
    )


def fixed_params(config: AutoSNNConfig) -> int:
    """Parameters outside the searched blocks: stem (conv, BN, PLIF), max-pools and head (Linear, PLIF)."""
    graph = autosnn_graph((BLOCKS[0],) * len(SEARCHED), config)
    searched = {spec.name for i in SEARCHED for spec in graph.below(f"layers.{i}")}
    return sum(layer_params(spec) for spec in graph if spec.name not in searched)


def enumerate_params(config: AutoSNNConfig) -> np.ndarray:
    """int64 ``[5**5]``: parameters of every architecture, position 1 the least significant digit."""
    table = block_table(config)
    k, positions = len(BLOCKS), len(SEARCHED)
    digits = np.arange(k**positions)[:, None] // k ** np.arange(positions) % k  # [5**5, 5] block per position
    return fixed_params(config) + table[np.arange(positions), digits].sum(axis=1)


def smallest_network_params(config: AutoSNNConfig) -> int:
    """Parameters of the smallest AutoSNN network at ``config`` (every one of the 3,125 is valid)."""
    return fixed_params(config) + int(block_table(config).min(axis=1).sum())


def space_infeasible(budget: Budget | None, config: AutoSNNConfig) -> str | None:
    """Why no AutoSNN network at ``config`` fits ``budget`` (one line), or None if one fits."""
    if budget is None:
        return None
    smallest = smallest_network_params(config)
    if budget.fits(smallest):
        return None
    network = f"the AutoSNN space at width {config.base_channels} ({config.input_size}x{config.input_size} input)"
    return infeasible_budget_message(budget, smallest, network=network, narrow="--width, --input-size")
