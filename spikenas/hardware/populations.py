"""A network as neuron populations: the groups of neurons a neuromorphic chip holds together, each with the
synapses that end on it.

Chips that place neurons on cores store a neuron's incoming synapses on the core that holds the neuron. A layer
graph (:class:`spikenas.layer_graph.LayerGraph`) is read as:

* a **population** per layer with neurons (``Layer.neurons > 0``: LIF, PLIF, IAF), and one for the network's
  output when that layer has no neurons (a Linear readout): a chip holds a readout as neurons too, one per
  output element;
* its **weight layers**: every ``conv`` or ``linear`` layer whose output reaches the population through layers
  that are neither neurons nor weights (BatchNorm, pooling, sums of a cell's node, identity, flatten, dropout).
  BatchNorm folds into the weights before it and the other layers only route values, so the model counts them
  as free. A weight layer that reaches several populations (a cell node read by several edges) is counted once
  for each of them, since each population's cores need its own copy;
* its **synapses**: the (input element, output element) pairs of those weight layers, every connection of a
  convolution counted (no weight sharing), the border positions of a padded convolution reaching fewer
  outputs, an average pool folded into a Linear counted at the pool's input (each pooled spike reaches every
  output);
* its **weights**: the stored parameters of those weight layers (a convolution's kernel once, biases included).

Layers are split over identical cores (:func:`split`): each population takes whole cores, which hold nothing
else, as Lava and sPyNNaker partition populations, and its neurons and synapses are divided evenly among them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from spikenas.errors import SpikeNASError

if TYPE_CHECKING:
    from spikenas.layer_graph import LayerGraph
    from spikenas.layers import Layer

WEIGHT_KINDS = ("conv", "linear")  # layers whose parameters are synaptic weights


@dataclass(frozen=True)
class Population:
    """One group of neurons of a network and what ends on it (counts for one sample)."""

    name: str  # the layer holding the neurons (the readout: the output layer)
    neurons: int  # neurons (membrane potentials) of the layer, or the readout's output elements
    weight_layers: tuple[str, ...]  # conv/linear layers whose output reaches it, in graph order
    synapses: int  # connections of those layers, (input element, output element) pairs
    weights: int  # stored parameters of those layers
    readout: bool = False  # the network's output layer, which has no neurons of its own


@lru_cache(maxsize=65536)
def connections(layer: Layer) -> int:
    """(input element, output element) pairs of a ``conv`` or ``linear`` layer: a convolution's every
    connection (no weight sharing; padding excluded), a Linear's ``inputs x outputs`` with a folded pool
    counted at the pool's input.

    :raises SpikeNASError: a layer of another kind. Cached per layer record (records are immutable).
    """
    if layer.kind == "linear" and layer.pool == 1:
        return math.prod(layer.in_shape) * layer.out_features
    fanout = layer.fanout()  # float64 [H, W] summed over output channels; integers, exact in float64
    return int(round(float(fanout.sum()))) * layer.in_shape[0]


def populations(graph: LayerGraph) -> list[Population]:
    """The network's populations in graph order (the readout last), each with its weight layers.

    A walk upstream from a population's inputs stops at another population (whose spikes arrive) and at a
    weight layer (recorded); it passes through every other layer.
    """
    by_name = {layer.name: layer for layer in graph.layers}
    order = {layer.name: i for i, layer in enumerate(graph.layers)}
    out = []
    for layer in graph.layers:
        if layer.neurons > 0:
            found = _weights_reaching(layer.inputs, by_name)
            out.append(_population(layer.name, layer.neurons, found, by_name, order))
    output = by_name[graph.output]
    if output.neurons == 0:
        found = _weights_reaching((output.name,), by_name)
        out.append(_population(output.name, math.prod(output.out_shape), found, by_name, order, readout=True))
    return out


def _weights_reaching(start: Iterable[str], by_name: dict[str, Layer]) -> set[str]:
    found: set[str] = set()
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        layer = by_name[name]
        if layer.kind in WEIGHT_KINDS:
            found.add(name)
        elif layer.neurons == 0:
            todo.extend(layer.inputs)
    return found


def _population(name: str, neurons: int, found: set[str], by_name: dict[str, Layer], order: dict[str, int],
                readout: bool = False) -> Population:
    names = tuple(sorted(found, key=order.__getitem__))
    return Population(
        name=name, neurons=neurons, weight_layers=names,
        synapses=sum(connections(by_name[n]) for n in names), weights=sum(by_name[n].params for n in names),
        readout=readout,
    )


@dataclass(frozen=True)
class Split:
    """A population spread evenly over ``cores`` identical cores."""

    population: Population
    cores: int  # cores it takes (at least 1)
    first_core: int  # index of its first core on the chip, in placement order

    def per_core(self, total: int) -> int:
        """The most of ``total`` (neurons, synapses, bytes) one of its cores holds."""
        return -(-total // self.cores)


def cores_needed(pop: Population, demands: Iterable[tuple[int, int]]) -> int:
    """Cores that hold ``pop`` when each of its ``demands`` (total, limit per core) is divided evenly: the
    fewest that keep every share within its limit, at least 1 and at most one per neuron (a core holds whole
    neurons with all their synapses; past that, a share may stay over its limit)."""
    cores = max([1, *(-(-total // limit) for total, limit in demands)])
    return max(1, min(cores, pop.neurons))


def split(pops: Iterable[Population], cores_of: dict[str, int]) -> list[Split]:
    """Place populations on consecutive cores, population ``p`` on ``cores_of[p.name]`` of them.

    :raises SpikeNASError: a core count below 1.
    """
    placed, first = [], 0
    for pop in pops:
        cores = cores_of[pop.name]
        if cores < 1:
            raise SpikeNASError(f"population {pop.name!r} must take at least 1 core, got {cores}")
        placed.append(Split(pop, cores, first))
        first += cores
    return placed
