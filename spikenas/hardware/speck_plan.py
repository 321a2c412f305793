"""How a Speck-family network (op set ``speck``) sits on Speck: its chip layers, where each
sends its spikes, the memory each needs and the core each gets; decided from the layer graph alone.

A chip layer is one weight layer (a convolution, or a Linear, which Speck runs as a convolution whose kernel
covers its input map) with the IAF neurons after it. A chip layer's spikes reach other chip layers' weights
through identities, sum pools and merges (the sums of a cell's nodes); each weight layer they reach is one
*destination*. The plan checks, in this order, Speck's structural limits (sinabs 3.1.3,
``sinabs.backend.dynapcnn``):

* every weight layer is followed by IAF neurons, and a layer's input is the network input or spike streams;
* at most 9 chip layers (one per core);
* at most 2 destinations per chip layer (``DynapcnnLayer.destinations``);
* a stream reaches a destination along one path only (a merge adds distinct streams);
* square kernels of at most 16 and strides of 1, 2, 4 or 8;
* memory: each layer's kernel, neuron and bias words (:mod:`spikenas.hardware.speck`) fit a core, and the layers
  can take distinct cores (a matching, :func:`spikenas.hardware.speck.assign_cores`).

Layers whose work cannot reach the output (:meth:`spikenas.layer_graph.LayerGraph.live`) are not placed.
:func:`plans` checks many networks at once: the structural checks per network (each network's graph is cached)
and the memory and matching checks vectorised over all of them (:func:`spikenas.hardware.speck.mappable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from spikenas.errors import SpikeNASError
from spikenas.hardware.speck import CORES, Core, assign_cores, fit_matrix, kernel_memory, mappable, neuron_memory
from spikenas.layer_graph import LayerGraph, cell_network_graph

if TYPE_CHECKING:
    from spikenas.network import MacroConfig
    from spikenas.space import Genotype

MAX_DESTINATIONS = 2  # destinations per chip layer
MAX_KERNEL = 16  # largest square kernel
STRIDES = (1, 2, 4, 8)  # convolution strides a core runs


@dataclass(frozen=True)
class ChipLayer:
    """One Speck layer: weight layer ``weight`` (a conv or linear) and IAF layer ``neuron``."""

    weight: str
    neuron: str
    c_in: int
    c_out: int
    kernel: int  # side of the square kernel (a Linear's: its input map's side)
    stride: int
    out_hw: tuple[int, int]  # neuron map (1, 1 for a Linear)
    bias: bool
    destinations: tuple[str, ...]  # weight layers its spikes reach, in graph order

    @property
    def kernel_words(self) -> int:
        return int(kernel_memory(self.c_in, self.c_out, self.kernel))

    @property
    def neuron_words(self) -> int:
        return int(neuron_memory(self.c_out, *self.out_hw))

    @property
    def bias_words(self) -> int:
        return self.c_out if self.bias else 0

    def to_dict(self) -> dict:
        return {"weight": self.weight, "neuron": self.neuron, "c_in": self.c_in, "c_out": self.c_out,
                "kernel": self.kernel, "stride": self.stride, "out_hw": list(self.out_hw),
                "destinations": list(self.destinations), "kernel_words": self.kernel_words,
                "neuron_words": self.neuron_words, "bias_words": self.bias_words}


@dataclass(frozen=True)
class SpeckPlan:
    """A network's chip layers and the verdict; ``cores`` is the core of each layer (None when it does not map)."""

    layers: tuple[ChipLayer, ...]
    problem: str | None  # the first limit the network breaks (one line), None when it runs on Speck
    cores: tuple[int, ...] | None = None
    core_memory: tuple[Core, ...] = field(default=CORES, repr=False)

    @property
    def fits(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        """JSON: the verdict, and per layer its memory and core with the core's memory."""
        layers = []
        for i, layer in enumerate(self.layers):
            row = layer.to_dict()
            if self.cores is not None:
                core = self.core_memory[self.cores[i]]
                row.update(core=self.cores[i], core_kernel_words=core.kernel, core_neuron_words=core.neuron)
            layers.append(row)
        return {"fits": self.fits, "problem": self.problem, "chip_layers": len(self.layers),
                "cores_available": len(self.core_memory), "layers": layers}


def _streams(graph: LayerGraph, live: set[str]) -> tuple[dict[str, dict[str, int]], str | None]:
    """Per live value: the chip layers (named by their weight layer) whose spikes it carries, with the number
    of paths each arrives along; and the first structural problem met (one line), or None."""
    streams: dict[str, dict[str, int]] = {}

    def visit(name: str) -> dict[str, int]:
        if name in streams:
            return streams[name]
        spec = graph[name]
        ins = [i for i in spec.inputs if i in live]
        if spec.kind in ("conv", "linear"):
            out: dict[str, int] = {}
        elif spec.kind == "iaf":
            source = graph[ins[0]] if ins else None
            if source is None or source.kind not in ("conv", "linear"):
                raise SpikeNASError(f"IAF layer {spec.name!r} does not follow a weight layer")
            out = {source.name: 1}
        elif spec.kind in ("identity", "sumpool", "flatten", "sum"):
            out = {}
            for i in ins:
                for src, count in visit(i).items():
                    out[src] = out.get(src, 0) + count
        else:
            raise SpikeNASError(f"layer {spec.name!r} of kind {spec.kind!r} has no Speck counterpart")
        streams[name] = out
        return out

    try:
        for spec in graph:
            if spec.name in live:
                visit(spec.name)
    except SpikeNASError as err:
        return streams, str(err)
    return streams, None


def plan(graph: LayerGraph, cores: tuple[Core, ...] = CORES) -> SpeckPlan:
    """The Speck plan of a Speck-family network's ``graph`` (see the module docstring)."""
    layers, problem = _structure(graph)
    if problem is not None:
        return SpeckPlan(tuple(layers), problem, None, cores)
    return _place(tuple(layers), cores)


def _structure(graph: LayerGraph) -> tuple[list[ChipLayer], str | None]:
    live = graph.live()
    if graph.output not in live:
        return [], "nothing flows from the input to the output"
    streams, problem = _streams(graph, live)
    if problem is not None:
        return [], problem
    weights = [spec for spec in graph if spec.name in live and spec.kind in ("conv", "linear")]
    readers: dict[str, list[str]] = {w.name: [] for w in weights}  # chip layer -> weight layers its spikes reach
    neuron_of: dict[str, str] = {}
    for spec in graph:
        if spec.name in live and spec.kind == "iaf":
            neuron_of[next(i for i in spec.inputs if i in live)] = spec.name
    repeated = None  # the first stream that reaches a layer along several paths
    for w in weights:
        source = [i for i in w.inputs if i in live]
        if not source:
            continue  # the network input: events from the host
        for src, count in streams[source[0]].items():
            if count > 1 and repeated is None:
                repeated = (f"the spikes of layer {src!r} reach layer {w.name!r} along {count} paths; Speck sends a "
                            "layer's spikes to a destination once")
            readers[src].append(w.name)
        if not streams[source[0]]:
            return [], f"layer {w.name!r} reads no spike stream"
    chip: list[ChipLayer] = []
    for w in weights:
        if w.name not in neuron_of:
            return [], f"weight layer {w.name!r} is not followed by IAF neurons"
        if w.kind == "conv":
            c_in, kernel, stride, out_hw = w.in_shape[0], w.kernel, w.stride, tuple(w.out_shape[1:])
        else:
            c_in, kernel = w.in_shape[0], w.in_shape[1] if len(w.in_shape) == 3 else 1
            if len(w.in_shape) == 3 and w.in_shape[1] != w.in_shape[2]:
                return [], (f"linear layer {w.name!r} reads a {w.in_shape[1]}x{w.in_shape[2]} map; Speck's kernels "
                            "are square")
            stride, out_hw = 1, (1, 1)
        chip.append(ChipLayer(w.name, neuron_of[w.name], c_in, w.out_features, kernel, stride, out_hw, w.bias,
                              tuple(readers[w.name])))
    if repeated is not None:
        return chip, repeated
    for layer in chip:
        if len(layer.destinations) > MAX_DESTINATIONS:
            return chip, (f"layer {layer.weight!r} sends spikes to {len(layer.destinations)} layers "
                          f"({', '.join(layer.destinations)}); a Speck layer has at most {MAX_DESTINATIONS} "
                          "destinations")
        if layer.kernel > MAX_KERNEL:
            return chip, (f"layer {layer.weight!r} needs a {layer.kernel}x{layer.kernel} kernel; Speck's largest is "
                          f"{MAX_KERNEL}x{MAX_KERNEL}")
        if layer.stride not in STRIDES:
            return chip, f"layer {layer.weight!r} has stride {layer.stride}; Speck runs strides {STRIDES}"
    return chip, None


def _memory(layers: Sequence[ChipLayer]) -> np.ndarray:
    """int64 ``[3, L]``: kernel, neuron and bias words of each chip layer."""
    return np.array([[la.kernel_words for la in layers], [la.neuron_words for la in layers],
                     [la.bias_words for la in layers]], dtype=np.int64).reshape(3, len(layers))


def _too_many(layers: Sequence[ChipLayer], cores: tuple[Core, ...]) -> str | None:
    return f"{len(layers)} chip layers for {len(cores)} cores" if len(layers) > len(cores) else None


def _place(layers: tuple[ChipLayer, ...], cores: tuple[Core, ...]) -> SpeckPlan:
    if _too_many(layers, cores):
        return SpeckPlan(layers, _too_many(layers, cores), None, cores)
    kernel, neuron, bias = _memory(layers)
    fits = fit_matrix(kernel, neuron, bias, cores)
    for i, layer in enumerate(layers):
        if not fits[i].any():
            largest_k = max(c.kernel for c in cores)
            largest_n = max(c.neuron for c in cores)
            return SpeckPlan(layers, (f"layer {layer.weight!r} needs {kernel[i]} kernel and {neuron[i]} neuron words "
                                      f"(bias {bias[i]}); no Speck core holds that much memory (largest: "
                                      f"{largest_k} kernel, {largest_n} neuron words, and not both in one core)"),
                             None, cores)
    assignment = assign_cores(fits)
    if assignment is None:
        return SpeckPlan(layers, (f"the {len(layers)} chip layers cannot take distinct cores: their kernel/neuron "
                                  f"words {list(zip(kernel.tolist(), neuron.tolist(), strict=True))} need more cores "
                                  "of the sizes they fit than Speck has"), None, cores)
    return SpeckPlan(layers, None, tuple(assignment), cores)


def plans(candidates: Sequence[Sequence[Genotype]], macro: MacroConfig,
          cores: tuple[Core, ...] = CORES) -> tuple[np.ndarray, list[str | None]]:
    """Whether each candidate network (a sequence of genotypes, one per cell of ``macro``, a Speck-family
    :class:`~spikenas.network.MacroConfig`) runs on Speck.

    :returns: bool ``[N]`` and, per candidate, the first limit it breaks (None where it runs). Structure per
        candidate from its cached layer graph; memory and the matching for all candidates at once by Hall's
        condition (:func:`spikenas.hardware.speck.mappable`), so no network is built.
    """
    if macro.family != "speck":
        raise SpikeNASError(f"Speck plans are made for the speck family's networks, got family {macro.family!r}")
    structures = [_structure(cell_network_graph(list(c), macro)) for c in candidates]
    width = max([len(layers) for layers, _ in structures] + [1])
    n = len(candidates)
    memory = np.zeros((3, n, width), dtype=np.int64)
    present = np.zeros((n, width), dtype=bool)
    problems: list[str | None] = []
    for i, (layers, problem) in enumerate(structures):
        problems.append(problem if problem is not None else _too_many(layers, cores))
        if problems[-1] is None and layers:
            memory[:, i, : len(layers)] = _memory(layers)
            present[i, : len(layers)] = True
    ok = np.array([p is None for p in problems], dtype=bool)
    ok &= mappable(memory[0], memory[1], memory[2], present, cores)
    for i in np.flatnonzero(~ok):
        if problems[i] is None:
            problems[i] = _place(tuple(structures[i][0]), cores).problem
    return ok, problems


#: layer kinds a Speck core has no counterpart for
FOREIGN_KINDS = ("lif", "plif", "bn", "avgpool", "maxpool", "dropout")


def refusal(graph: LayerGraph) -> str | None:
    """One line naming the first layer of ``graph`` Speck cannot run at all, or None."""
    for spec in graph:
        if spec.kind in FOREIGN_KINDS:
            return (f"speck cannot run layer {spec.name!r} ({spec.kind}): its cores hold a convolution with "
                    "non-leaky IAF neurons and sum pooling; search op set 'speck' (IAF cells) for this target")
    return None


def check_graph(graph: LayerGraph) -> LayerGraph:
    """``graph``, after checking that it is a Speck-family network's (:func:`refusal`)."""
    refused = refusal(graph)
    if refused is not None:
        raise SpikeNASError(refused)
    return graph
