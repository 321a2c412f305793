"""Deployment memory and energy model of AutoSNN networks (see :mod:`spikenas.deployment` for the figures).

The layers of ``build_network(arch, config)`` are listed without building it; PLIF layers hold one
membrane potential per neuron and one learned time constant each (neuron state, not weights).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from spikenas.autosnn.memory import network_params
from spikenas.autosnn.network import BLOCKS, LAYOUT, SEARCHED, AutoSNNConfig, check_arch
from spikenas.deployment import (
    DEFAULT_FIRING_RATE,
    DeployLayer,
    DeploymentConfig,
    DeploymentReport,
    bn_layer,
    conv_layer,
    memory_figures,
    neuron_layer,
    report_from_layers,
)
from spikenas.memory import Budget


def autosnn_layers(arch: Sequence[str], config: AutoSNNConfig) -> list[DeployLayer]:
    """Every deployed layer of ``spikenas.autosnn.network.build_network(arch, config)``, in forward order."""
    arch = check_arch(arch)
    c, size = config.base_channels, config.input_size
    layers = [
        conv_layer("stem.0", config.in_channels, c, size, 3, source=("", False), per_step=False),
        bn_layer("stem.1", c, size, per_step=False),
        neuron_layer("stem_plif", (c, size, size), plif=True),
    ]
    current = ("stem_plif", True)  # the layer feeding the next one, and whether it emits spikes
    blocks = iter(zip(arch, config.block_io, strict=True))
    for i, x in enumerate(LAYOUT):
        p = f"layers.{i}"
        if x == "m":
            size //= 2
            layers.append(DeployLayer(p, "maxpool", (c, size, size), current[1]))
            current = (p, current[1])
            continue
        name, (cin, cout, _) = next(blocks)
        c = cout
        if name == "skip":
            if cin == cout:
                layers.append(DeployLayer(p, "identity", (cout, size, size), current[1]))
                current = (p, current[1])
            else:
                layers += [conv_layer(f"{p}.0", cin, cout, size, 1, source=current), bn_layer(f"{p}.1", cout, size)]
                current = (f"{p}.1", False)
            continue
        kind, k = name.split("_k")
        q = p if kind == "scb" else f"{p}.body"
        layers += [
            conv_layer(f"{q}.0", cin, cout, size, int(k), source=current), bn_layer(f"{q}.1", cout, size),
            neuron_layer(f"{q}.2", (cout, size, size), plif=True),
            conv_layer(f"{q}.3", cout, cout, size, int(k), source=(f"{q}.2", True)), bn_layer(f"{q}.4", cout, size),
        ]
        if kind == "scb":
            layers.append(neuron_layer(f"{q}.5", (cout, size, size), plif=True))
            current = (f"{q}.5", True)
            continue
        if cin == cout:
            layers.append(DeployLayer(f"{p}.shortcut", "identity", (cout, size, size), current[1]))
        else:
            layers += [conv_layer(f"{p}.shortcut.0", cin, cout, size, 1, source=current),
                       bn_layer(f"{p}.shortcut.1", cout, size)]
        layers.append(neuron_layer(f"{p}.out", (cout, size, size), plif=True))
        current = (f"{p}.out", True)
    flat = config.final_channels * config.final_size**2
    outputs = config.vote * config.num_classes
    return layers + [
        DeployLayer("head.0", "flatten", (flat,), current[1]),
        DeployLayer("head.1", "linear", (outputs,), False, params=flat * outputs, in_shape=(flat,),
                    in_spikes=current[1], source="head.0" if current[1] else ""),
        neuron_layer("head.2", (outputs,), plif=True),
    ]


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
