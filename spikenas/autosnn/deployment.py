"""Deployment memory and energy model of AutoSNN networks (see :mod:`spikenas.deployment` for the figures).

The layers of ``build_network(arch, config)`` are read from its layer graph without building it; PLIF layers
hold one membrane potential per neuron and one learned time constant each (neuron state, not weights).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from spikenas.autosnn.macro import BLOCKS, SEARCHED, AutoSNNConfig
from spikenas.autosnn.memory import network_params
from spikenas.deployment import (
    DEFAULT_FIRING_RATE,
    DeploymentConfig,
    DeploymentReport,
    memory_figures,
    report_from_layers,
)
from spikenas.layer_graph import autosnn_graph
from spikenas.layers import Layer
from spikenas.memory import Budget


def autosnn_layers(arch: Sequence[str], config: AutoSNNConfig) -> list[Layer]:
    """Every deployed layer of ``spikenas.autosnn.network.build_network(arch, config)``, in forward order: its
    layer graph's layers except the sums. A residual block's sum adds the shortcut into the buffer of the body's
    output (same shape, not spikes), so it holds no buffer, neuron or weight of its own."""
    return [spec for spec in autosnn_graph(arch, config) if spec.kind != "sum"]


def deployment_report(
    arch: Sequence[str],
    config: AutoSNNConfig,
    target: DeploymentConfig | None = None,
    *,
    model: nn.Module | None = None,
    images: torch.Tensor | None = None,
    firing_rate: float | Mapping[str, float] = DEFAULT_FIRING_RATE,
) -> DeploymentReport:
    """The deployment figures of ``build_network(arch, config)``; options as in
    :func:`spikenas.deployment.report_from_layers`."""
    return report_from_layers(
        autosnn_layers(arch, config), config.timesteps, target, model=model, images=images, firing_rate=firing_rate
    )


def network_cost(budget: Budget, arch: Sequence[str], config: AutoSNNConfig) -> int:
    """The quantity ``budget`` counts for ``build_network(arch, config)``: parameters (PLIF time constants
    included, as :func:`spikenas.autosnn.memory.network_params`) or their bytes, or on-chip bytes."""
    if budget.kind != "onchip_bytes":
        return int(budget.cost(network_params(arch, config)))
    return memory_figures(autosnn_layers(arch, config), budget.target(), config.timesteps).onchip_bytes


def smallest_onchip_bytes(budget: Budget, config: AutoSNNConfig) -> int:
    """On-chip bytes of the smallest of the 3,125 AutoSNN networks at ``config`` under ``budget``'s bit widths."""
    return min(network_cost(budget, arch, config) for arch in itertools.product(BLOCKS, repeat=len(SEARCHED)))


def onchip_infeasible(budget: Budget, config: AutoSNNConfig) -> str | None:
    """Why no AutoSNN network at ``config`` fits the on-chip ``budget`` (one line), or None if one fits."""
    smallest = smallest_onchip_bytes(budget, config)
    if budget.fits_cost(smallest):
        return None
    return (
        f"no architecture fits the budget of {budget.describe()}: the smallest network of the AutoSNN space at "
        f"width {config.base_channels} ({config.input_size}x{config.input_size} input) takes {smallest:,} on-chip "
        "bytes; raise the budget or narrow the network (--width, --input-size)"
    )
