"""AutoSNN (Na et al., ICML 2022) inside SpikeNAS: its block space and macro-architecture with PLIF
neurons, the exact memory model, the one-shot super-network, and the spike-aware fitness."""

from __future__ import annotations

from spikenas.autosnn.fitness import score_fitness, spike_aware_fitness
from spikenas.autosnn.macro import BLOCKS, SEARCHED, AutoSNNConfig
from spikenas.autosnn.memory import enumerate_params, network_params
from spikenas.autosnn.network import AutoSNNNetwork, build_network
from spikenas.autosnn.space import AutoSNNSpace, arch_from_index, arch_index, parse_arch
from spikenas.neuron import PLIFConfig

__all__ = [
    "BLOCKS",
    "SEARCHED",
    "AutoSNNConfig",
    "AutoSNNNetwork",
    "AutoSNNSpace",
    "PLIFConfig",
    "arch_from_index",
    "arch_index",
    "build_network",
    "enumerate_params",
    "network_params",
    "parse_arch",
    "score_fitness",
    "spike_aware_fitness",
]
