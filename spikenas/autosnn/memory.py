"""Exact analytical parameter count of AutoSNN networks (the memory model of the AutoSNN space).

Counted like :mod:`spikenas.memory`: conv and Linear weights, BatchNorm weight and bias, and the one
learnable ``w`` of every PLIF neuron; running statistics are not parameters. Tests check the count
equals ``sum(p.numel() for p in build_network(arch, config).parameters())``.
"""

from __future__ import annotations

import itertools

import numpy as np

from spikenas.autosnn.network import BLOCKS, SEARCHED, AutoSNNConfig, check_arch
from spikenas.errors import SpikeNASError
from spikenas.memory import Budget, infeasible_budget_message

PLIF_PARAMS = 1  # ParametricLIFNode.w


def block_params(name: str, cin: int, cout: int) -> int:
    """Parameters of block ``name`` mapping ``cin`` to ``cout`` channels."""
    projection = 0 if cin == cout else cin * cout + 2 * cout  # Conv1x1 + BN
    if name == "skip":
        return projection
    kind, _, k = name.partition("_k")
    if kind not in ("scb", "srb") or k not in ("3", "5"):
        raise SpikeNASError(f"unknown AutoSNN block {name!r}; choose one of {BLOCKS}")
    k = int(k)
    body = k * k * cin * cout + 2 * cout + PLIF_PARAMS + k * k * cout * cout + 2 * cout
    if kind == "scb":
        return body + PLIF_PARAMS
    return body + projection + PLIF_PARAMS


def fixed_params(config: AutoSNNConfig) -> int:
    """Parameters outside the searched blocks: stem (conv, BN, PLIF) and head (Linear, PLIF)."""
    c = config.base_channels
    stem = 9 * config.in_channels * c + 2 * c + PLIF_PARAMS
    head = config.final_channels * config.final_size**2 * config.vote * config.num_classes + PLIF_PARAMS
    return stem + head


def network_params(arch: tuple[str, ...] | list[str], config: AutoSNNConfig) -> int:
    """Exact parameter count of ``build_network(arch, config)``."""
    arch = check_arch(arch)
    blocks = sum(block_params(b, cin, cout) for b, (cin, cout, _) in zip(arch, config.block_io, strict=True))
    return fixed_params(config) + blocks


def enumerate_params(config: AutoSNNConfig) -> np.ndarray:
    """int64 ``[5**5]``: parameters of every architecture, position 1 the least significant digit."""
    table = np.array(
        [[block_params(b, cin, cout) for b in BLOCKS] for cin, cout, _ in config.block_io], dtype=np.int64
    )
    out = np.full(len(BLOCKS) ** len(SEARCHED), fixed_params(config), dtype=np.int64)
    for index, digits in enumerate(itertools.product(range(len(BLOCKS)), repeat=len(SEARCHED))):
        out[index] += sum(int(table[p, d]) for p, d in enumerate(reversed(digits)))
    return out


def smallest_network_params(config: AutoSNNConfig) -> int:
    """Parameters of the smallest AutoSNN network at ``config`` (every one of the 3,125 is valid)."""
    return fixed_params(config) + sum(
        min(block_params(b, cin, cout) for b in BLOCKS) for cin, cout, _ in config.block_io
    )


def space_infeasible(budget: Budget | None, config: AutoSNNConfig) -> str | None:
    """Why no AutoSNN network at ``config`` fits ``budget`` (one line), or None if one fits."""
    if budget is None:
        return None
    smallest = smallest_network_params(config)
    if budget.fits(smallest):
        return None
    network = f"the AutoSNN space at width {config.base_channels} ({config.input_size}x{config.input_size} input)"
    return infeasible_budget_message(budget, smallest, network=network, narrow="--width, --input-size")
