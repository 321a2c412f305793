"""AutoSNN networks built from their layer graph, with spikingjelly PLIF neurons.

The macro-architecture and the blocks are described in :mod:`spikenas.autosnn.macro`; the layers of one
architecture are :func:`spikenas.layer_graph.autosnn_graph`, and every module here is one of its layers
(:func:`spikenas.layers.module_of`, nested by :func:`spikenas.layers.assemble`). The voting AvgPool1d of the
readout is not a layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from spikingjelly.activation_based import functional
from torch import nn

from spikenas.autosnn.macro import LAYOUT, AutoSNNConfig, check_arch
from spikenas.layer_graph import LayerGraph, autosnn_graph
from spikenas.layers import Layer, assemble


class ResidualBlock(nn.Module):
    """SRB: ``out(body(x) + shortcut(x))`` on ``[T, B, cin, H, W]`` -> ``[T, B, cout, H, W]`` spikes."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, out: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


def build_block(layers: Sequence[Layer], prefix: str) -> nn.Module:
    """The module of position ``prefix`` (``layers.<i>``) made of its layers among ``layers``, mapping
    ``[T, B, cin, H, W]`` to ``[T, B, cout, H', W']``: a :class:`ResidualBlock` where the sum ``prefix.sum`` adds
    a body and a shortcut (its modules made in that order, then the PLIF ``prefix.out``), else the layers in
    sequence (or the one layer named ``prefix``)."""
    if any(spec.name == f"{prefix}.sum" for spec in layers):
        return ResidualBlock(*(assemble(layers, f"{prefix}.{part}") for part in ("body", "shortcut", "out")))
    return assemble(layers, prefix)


class _Shell(nn.Module):
    """Stem, head and forward logic shared by a single network and the super-network; their modules come from
    the stem's and the head's layers of ``graph`` (any architecture's: they do not depend on it)."""

    def __init__(self, config: AutoSNNConfig, graph: LayerGraph) -> None:
        super().__init__()
        self.config = config
        self.stem = assemble(graph.layers, "stem")
        self.stem_plif = assemble(graph.layers, "stem_plif")
        self.head = assemble(graph.layers, "head")
        self.vote = nn.AvgPool1d(config.vote, config.vote)

    def _run(self, images: torch.Tensor, layers: list[nn.Module]) -> torch.Tensor:
        functional.reset_net(self)
        x = self.stem(images)
        x = self.stem_plif(x.unsqueeze(0).expand(self.config.timesteps, *x.shape))
        for module in layers:
            x = module(x)
        x = self.head(x)  # [T, B, vote * classes] spikes
        t, b, _ = x.shape
        return self.vote(x.reshape(t * b, 1, -1)).reshape(t, b, -1).mean(dim=0)


class AutoSNNNetwork(_Shell):
    """One architecture: images ``[B, C_in, H, W]`` float32 -> ``[B, classes]`` voted firing rates.

    ``graph`` is its :func:`~spikenas.layer_graph.autosnn_graph`; the stem's and head's modules are made
    before the 8 positions'."""

    def __init__(self, arch: tuple[str, ...], config: AutoSNNConfig) -> None:
        graph = autosnn_graph(arch, config)
        super().__init__(config, graph)
        self.arch = check_arch(arch)
        self.graph = graph
        self.layers = nn.ModuleList([build_block(graph.layers, f"layers.{i}") for i in range(len(LAYOUT))])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Resets neuron state first."""
        return self._run(images, list(self.layers))


def build_network(
    arch: tuple[str, ...] | list[str], config: AutoSNNConfig, *, seed: int | None = None
) -> AutoSNNNetwork:
    """The network of ``arch``; with ``seed`` its weights come from a generator seeded with it and
    torch's global generator is left as it was."""
    if seed is None:
        return AutoSNNNetwork(tuple(arch), config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoSNNNetwork(tuple(arch), config)
