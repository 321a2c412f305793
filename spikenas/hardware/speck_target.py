"""The ``speck`` target: SynSense Speck (DYNAP-CNN), nine cores of unequal memory, one layer per core.

Speck runs the Speck family's networks only (op set ``speck``: convolutions, IAF neurons, sum pooling, merges
of spike streams; ``MacroConfig(family="speck")``). Whether one of them runs is the plan of
:mod:`spikenas.hardware.speck_plan`: chip layers, destinations, kernel and stride limits, memory per layer
rounded up to powers of two, and a matching of layers to cores. Networks go to the chip as sinabs networks
(:mod:`spikenas.hardware.speck_export`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from spikenas.hardware import speck_plan
from spikenas.hardware.speck import CORES
from spikenas.hardware.speck_plan import MAX_DESTINATIONS, MAX_KERNEL, STRIDES, plan, plans
from spikenas.hardware.target import Source, Target, TargetFit, register_target

if TYPE_CHECKING:
    from spikenas.layer_graph import LayerGraph
    from spikenas.network import MacroConfig
    from spikenas.space import Genotype

SINABS = "sinabs 3.1.3 (PyPI), sinabs/backend/dynapcnn"


@dataclass(frozen=True)
class SpeckTarget(Target):
    """Speck's cores and layer limits (each from :attr:`sources`)."""

    name: str = "speck"
    description: str = "SynSense Speck (DYNAP-CNN): 9 cores, one conv/linear + IAF layer each"
    exporter: str = "sinabs"
    families: ClassVar[tuple[str, ...]] = ("speck",)
    cores: int = len(CORES)
    kernel_words: tuple[int, ...] = tuple(c.kernel for c in CORES)
    neuron_words: tuple[int, ...] = tuple(c.neuron for c in CORES)
    bias_words: tuple[int, ...] = tuple(c.bias for c in CORES)
    max_destinations: int = MAX_DESTINATIONS
    max_kernel: int = MAX_KERNEL
    strides: tuple[int, ...] = STRIDES
    weight_bits: int = 8
    state_bits: int = 16

    sources: ClassVar[tuple[Source, ...]] = (
        Source("SynSense, sinabs 3.1.3", f"{SINABS}/chips/dynapcnn.py, DynapcnnConfigBuilder.get_constraints",
               "kernel memory 16, 16, 16, 32, 32, 64, 64, 16, 16 Ki words and neuron memory 64, 64, 64, 32, 32, 16, "
               "16, 16, 16 Ki words for cores 0-8; bias memory 1024 per core",
               ("cores", "kernel_words", "neuron_words", "bias_words")),
        Source("SynSense, sinabs 3.1.3", f"{SINABS}/dynapcnn_layer.py, DynapcnnLayer.memory_summary",
               "kernel: c_in * 2 ** (ceil(log2(kh * kw)) + ceil(log2(c_out))); neuron: c_out * 2 ** (ceil(log2(H)) "
               "+ ceil(log2(W))); bias: c_out", ()),
        Source("SynSense, sinabs 3.1.3", f"{SINABS}/exceptions.py, MaxDestinationsReached; chips/dynapcnn.py "
               "write_dynapcnn_layer_config (the chip layer's destinations[0..1])",
               "a DYNAP-CNN layer has at most two destinations", ("max_destinations",)),
        Source("SynSense, sinabs 3.1.3", f"{SINABS}/discretize.py and chips/dynapcnn.py (weights and thresholds "
               "discretised to 8 and 16 bits)", "8-bit weights, 16-bit neuron state and thresholds",
               ("weight_bits", "state_bits")),
        Source("Issue 21 of this project, quoting the Speck documentation of sinabs",
               "issue 21, 'Speck, as sinabs describes it'; not checked against SynSense's pages (offline here)",
               "square kernels <= 16; strides 1, 2, 4, 8; sum pooling after the neuron", ("max_kernel", "strides")),
    )

    def refusal(self, graph: LayerGraph) -> str | None:
        """Speck runs convolutions, IAF neurons, sum pooling and merges of spikes; anything else is refused
        (:func:`spikenas.hardware.speck_plan.refusal`)."""
        return speck_plan.refusal(graph)

    def place(self, graph: LayerGraph, *, timesteps: int) -> TargetFit:
        """The plan of ``graph`` (:func:`spikenas.hardware.speck_plan.plan`) as a fit: one unit per chip layer
        with its core and the core's memory."""
        chip = plan(graph)
        units = chip.to_dict()["layers"]
        totals = {"chip_layers": len(chip.layers), "cores": self.cores,
                  "kernel_words": int(sum(la.kernel_words for la in chip.layers)),
                  "neuron_words": int(sum(la.neuron_words for la in chip.layers)),
                  "kernel_words_available": int(sum(self.kernel_words)),
                  "neuron_words_available": int(sum(self.neuron_words))}
        return TargetFit(self.name, chip.fits, chip.problem, units, totals)

    def mask(self, candidates: Sequence[Sequence[Genotype]], macro: MacroConfig) -> tuple[np.ndarray, list[str | None]]:
        """bool ``[N]``: which candidate networks (genotypes per cell) run on Speck, and why each other does not;
        memory and the core matching checked for all at once (:func:`spikenas.hardware.speck_plan.plans`)."""
        return plans(candidates, macro)


SPECK = register_target(SpeckTarget())
