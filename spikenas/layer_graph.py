"""One description of a network: the graph of its layers, produced once from (cells, macro) or from an AutoSNN
architecture, and read by every consumer.

* the builders (:mod:`spikenas.network`, :mod:`spikenas.autosnn.network`) make each layer's module
  (:func:`spikenas.layers.module_of`, :func:`spikenas.layers.assemble`);
* the memory models count parameters as sums over it;
* the deployment model (:mod:`spikenas.deployment`) reads state, buffers and synops from it;
* the NIR exporter (:mod:`spikenas.export`) writes it with the trained weights.

A :class:`LayerGraph` lists its layers (:class:`spikenas.layers.Layer`) in an order each producer documents (the
cell space: the order the modules are created in, which fixes the order weights are drawn in; AutoSNN: forward
order); ``inputs`` give the data flow. Graphs are immutable and cached per (cells, macro) and (arch, config).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

from spikenas.errors import SpikeNASError
from spikenas.layers import Layer, bn, conv, iaf, identity, lif, linear, plif, pool
from spikenas.ops import get_op
from spikenas.space import EDGES, NUM_NODES, Genotype

if TYPE_CHECKING:
    from spikenas.network import MacroConfig
    from spikenas.neuron import NeuronConfig


@dataclass(frozen=True)
class LayerGraph:
    """A network's layers (in its producer's documented order); ``output`` names the layer whose value is the
    output."""

    layers: tuple[Layer, ...]
    output: str

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.layers]
        if len(set(names)) != len(names):
            seen: set[str] = set()
            twice = next(n for n in names if n in seen or seen.add(n))
            raise SpikeNASError(f"layer name {twice!r} appears twice in the graph")
        known = set(names)
        for spec in self.layers:
            missing = [i for i in spec.inputs if i not in known]
            if missing:
                raise SpikeNASError(f"layer {spec.name!r} reads {missing}, which are not layers of the graph")
        if self.output not in known:
            raise SpikeNASError(f"the output {self.output!r} is not a layer of the graph")

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> Layer:
        for spec in self.layers:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def params(self) -> int:
        """Trained parameters (weights, biases, BN affine), excluding PLIF time constants."""
        return sum(spec.params for spec in self.layers)

    @property
    def taus(self) -> int:
        """Learned time constants (one per PLIF layer)."""
        return sum(spec.taus for spec in self.layers)

    @property
    def neurons(self) -> int:
        """Membrane potentials."""
        return sum(spec.neurons for spec in self.layers)

    def below(self, prefix: str) -> list[Layer]:
        """The layers named ``prefix`` or ``prefix.<...>``."""
        return [spec for spec in self.layers if spec.name == prefix or spec.name.startswith(prefix + ".")]

    def reached(self) -> set[str]:
        """Names of the layers the network input reaches: those reading it (no ``inputs``; a ``sum`` of no
        inputs is zero and reads nothing) and every layer downstream of them."""
        readers: dict[str, list[str]] = {spec.name: [] for spec in self.layers}
        for spec in self.layers:
            for name in spec.inputs:
                readers[name].append(spec.name)
        reached = {spec.name for spec in self.layers if not spec.inputs and spec.kind != "sum"}
        todo = list(reached)
        while todo:
            for name in readers[todo.pop()]:
                if name not in reached:
                    reached.add(name)
                    todo.append(name)
        return reached

    def reaching(self, target: str) -> set[str]:
        """Names of ``target`` and of every layer whose output flows into it."""
        by_name = {spec.name: spec for spec in self.layers}
        reaching, todo = {target}, [target]
        while todo:
            for name in by_name[todo.pop()].inputs:
                if name not in reaching:
                    reaching.add(name)
                    todo.append(name)
        return reaching

    def live(self) -> set[str]:
        """Names of the layers on a path from the network input to the output; the others cannot change it."""
        return self.reached() & self.reaching(self.output)


# ----------------------------------------------------------------------------------------------------------
# The cell space: SNASNet's macro-architecture around 1..3 cells (spikenas.network.MacroConfig)
#
# Layer names are the module names of spikenas.network.SNASNetwork: ``stem.0`` (conv, computed once) and
# ``stem.1`` (BN); per cell stage ``k`` (cells at even k, downconvs at odd k) the edge ops
# ``cells.k.edges.<src><dst>[.<i>]``, the node sums ``cells.k.nodes.<j>`` and the cell output ``cells.k``
# (node 3, a ``sum``); the downconv ``cells.k.0`` .. ``cells.k.4``; the head ``head.0`` .. ``head.7``.

#: the layer whose value is a cell network's output (before the voting AvgPool1d, which is not a layer)
CELL_NETWORK_OUTPUT = "head.7"


def stem_layers(macro: MacroConfig) -> list[Layer]:
    """Conv3x3(in -> C, stride ``stem_stride``, no bias) -> BN, computed once per inference."""
    c, size = macro.cell_widths[0], macro.cell_sizes[0]
    return [
        conv("stem.0", macro.in_channels, c, macro.input_size, 3, src=("", False), stride=macro.stem_stride,
             per_step=False),
        bn("stem.1", c, size, src=("stem.0", False), per_step=False),
    ]


def downconv_layers(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
    """BN -> LIF -> Conv3x3(c -> 2c) -> BN -> AvgPool2d(2) on ``(channels, size, size)``, between cells."""
    return [
        bn(f"{prefix}.0", channels, size, src=src),
        lif(f"{prefix}.1", (channels, size, size), neuron, src=(f"{prefix}.0", False)),
        conv(f"{prefix}.2", channels, 2 * channels, size, 3, src=(f"{prefix}.1", True)),
        bn(f"{prefix}.3", 2 * channels, size, src=(f"{prefix}.2", False)),
        pool(f"{prefix}.4", "avgpool", 2 * channels, size, 2, src=(f"{prefix}.3", False)),
    ]


def cell_layers(
    genotype: Genotype | None, prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]
) -> list[Layer]:
    """The layers of a 4-node cell whose input (node 0) is ``src``: every edge's op layers in :data:`EDGES`
    order (``prefix.edges.<src><dst>``), then a ``sum`` for node 1 or 2 where two or more edges enter it
    (``prefix.nodes.<j>``; also where none does and an edge reads it: the empty sum is zero), and node 3, the
    cell's output, the ``sum`` named ``prefix`` (always present). ``genotype=None``: a cell with no edges."""
    ops = genotype.ops if genotype is not None else ("",) * len(EDGES)
    shape = (channels, size, size)
    entering: list[list[Layer]] = [[] for _ in range(NUM_NODES)]  # per node: the op outputs summed into it
    node_names = [src[0]] + [""] * (NUM_NODES - 1)
    edges: list[Layer] = []
    for (s, d), op_name in zip(EDGES, ops, strict=True):
        if not op_name or get_op(op_name).is_zero:
            continue
        if not node_names[s]:  # every edge into node s comes before this one (EDGES order)
            ins = entering[s]
            node_names[s] = ins[0].name if len(ins) == 1 else f"{prefix}.nodes.{s}"
        node = (node_names[s], src[1] if s == 0 else len(entering[s]) == 1 and entering[s][0].spikes)
        op = get_op(op_name).edge_layers(f"{prefix}.edges.{s}{d}", channels, size, neuron, node)
        edges += op
        if op:
            entering[d].append(op[-1])
    sums = [Layer(f"{prefix}.nodes.{j}", "sum", shape, inputs=tuple(s.name for s in entering[j]))
            for j in (1, 2) if len(entering[j]) >= 2 or node_names[j] == f"{prefix}.nodes.{j}"]
    return edges + sums + [Layer(prefix, "sum", shape, inputs=tuple(s.name for s in entering[3]))]


def head_layers(macro: MacroConfig, src: tuple[str, bool]) -> list[Layer]:
    """BN -> LIF -> AvgPool2d(2) -> flatten -> Dropout -> Linear(-> hidden, no bias) -> LIF ->
    Linear(hidden -> vote * classes). The first Linear's synapses are counted with the pool folded in (each
    pooled spike of ``head.1`` reaches every output)."""
    last, size, final, neuron = macro.cell_widths[-1], macro.cell_sizes[-1], macro.final_size, macro.neuron
    flat = last * final * final
    fc1 = linear("head.5", flat, macro.hidden, src=("head.1", True), in_shape=(last, size, size), pool=2)
    return [
        bn("head.0", last, size, src=src),
        lif("head.1", (last, size, size), neuron, src=("head.0", False)),
        pool("head.2", "avgpool", last, size, 2, src=("head.1", True)),
        Layer("head.3", "flatten", (flat,), inputs=("head.2",)),
        Layer("head.4", "dropout", (flat,), inputs=("head.3",), dropout=macro.dropout),
        replace(fc1, inputs=("head.4",)),
        lif("head.6", (macro.hidden,), neuron, src=("head.5", False)),
        linear(CELL_NETWORK_OUTPUT, macro.hidden, macro.vote * macro.num_classes, src=("head.6", True), bias=True),
    ]


#: the layer whose value is a Speck-family network's output (spikes of the class neurons)
SPECK_NETWORK_OUTPUT = "head.4"


def speck_stem_layers(macro: MacroConfig) -> list[Layer]:
    """The Speck family's stem on input events ``(in, S, S)``: Conv3x3(in -> C, no bias) -> IAF -> SumPool2d(2)."""
    c, size = macro.width, macro.input_size
    return [
        conv("stem.0", macro.in_channels, c, size, 3, src=("", True)),
        iaf("stem.1", (c, size, size), macro.neuron, src=("stem.0", False)),
        pool("stem.2", "sumpool", c, size, 2, src=("stem.1", True)),
    ]


def speck_head_layers(macro: MacroConfig, src: str) -> list[Layer]:
    """The Speck family's head on the last cell's output ``src`` (a merge of spike streams): flatten ->
    Linear(-> hidden, no bias) -> IAF -> Linear(hidden -> classes, no bias) -> IAF. A Linear on a chip is a
    convolution whose kernel covers its input map."""
    c, size = macro.cell_widths[-1], macro.cell_sizes[-1]
    flat = c * size * size
    return [
        Layer("head.0", "flatten", (flat,), spikes=True, inputs=(src,)),
        linear("head.1", flat, macro.hidden, src=("head.0", True), in_shape=(c, size, size)),
        iaf("head.2", (macro.hidden,), macro.neuron, src=("head.1", False)),
        linear("head.3", macro.hidden, macro.num_classes, src=("head.2", True)),
        iaf(SPECK_NETWORK_OUTPUT, (macro.num_classes,), macro.neuron, src=("head.3", False)),
    ]


def _speck_network_layers(cells: Sequence[Genotype | None], macro: MacroConfig) -> list[Layer]:
    """Stem, the cells ``cells.<i>`` one after another (same width and size, no downconv), head."""
    layers = speck_stem_layers(macro)
    x = ("stem.2", True)
    for i, (genotype, width, size) in enumerate(zip(cells, macro.cell_widths, macro.cell_sizes, strict=True)):
        layers += cell_layers(genotype, f"cells.{i}", width, size, macro.neuron, x)
        x = (layers[-1].name, True)
    return layers + speck_head_layers(macro, x[0])


def network_output(macro: MacroConfig) -> str:
    """The name of the layer whose value is the output of a cell network of ``macro``."""
    return SPECK_NETWORK_OUTPUT if macro.family == "speck" else CELL_NETWORK_OUTPUT


def _cell_network_layers(cells: Sequence[Genotype | None], macro: MacroConfig) -> list[Layer]:
    if macro.family == "speck":
        return _speck_network_layers(cells, macro)
    layers = stem_layers(macro)
    x = ("stem.1", False)
    for i, (genotype, width, size) in enumerate(zip(cells, macro.cell_widths, macro.cell_sizes, strict=True)):
        if i > 0:
            layers += downconv_layers(f"cells.{2 * i - 1}", width // 2, macro.cell_sizes[i - 1], macro.neuron, x)
            x = (layers[-1].name, layers[-1].spikes)
        layers += cell_layers(genotype, f"cells.{2 * i}", width, size, macro.neuron, x)
        x = (layers[-1].name, False)
    return layers + head_layers(macro, x)


def cell_network_graph(cells: Genotype | Sequence[Genotype], macro: MacroConfig) -> LayerGraph:
    """The layer graph of ``spikenas.network.build_network(cells, macro)``: one genotype in every cell position,
    or one per position. Layers are in module-creation order, each edge's after the downconv before its cell.

    :raises SpikeNASError: a number of genotypes other than ``macro.num_cells``.
    """
    if isinstance(cells, Genotype):
        cells = [cells] * macro.num_cells
    if len(cells) != macro.num_cells:
        raise SpikeNASError(f"got {len(cells)} genotypes for a network of num_cells={macro.num_cells}")
    cells = tuple(cells)
    specs = tuple(get_op(o) for o in dict.fromkeys(o for g in cells for o in g.ops))  # re-registered: a new key
    return _cell_network_graph(cells, macro, specs)


@lru_cache(maxsize=1024)
def _cell_network_graph(cells: tuple[Genotype, ...], macro: MacroConfig, specs: tuple) -> LayerGraph:
    return LayerGraph(tuple(_cell_network_layers(cells, macro)), network_output(macro))


def fixed_layers(macro: MacroConfig) -> list[Layer]:
    """The layers of every network of ``macro`` whatever its cells: stem, downconvs, cell outputs, head."""
    return _cell_network_layers([None] * macro.num_cells, macro)


def is_cell_edge(name: str) -> bool:
    """Whether layer ``name`` of a cell network belongs to a cell's edge or inner node (varies with the cells)."""
    parts = name.split(".")
    return len(parts) > 3 and parts[0] == "cells" and parts[2] in ("edges", "nodes")


# ----------------------------------------------------------------------------------------------------------
# The AutoSNN space (spikenas.autosnn): a stem, 8 positions (5 searched blocks, 3 max-pools), a voting head
#
# Layer names are the module names of spikenas.autosnn.network.AutoSNNNetwork: ``stem.0`` (conv, computed once),
# ``stem.1`` (BN), ``stem_plif``; per position ``i`` the layers ``layers.i...`` of its block or max-pool (see
# autosnn_block_layers); the head ``head.0`` (flatten) .. ``head.2`` (PLIF). Layers are listed in forward order;
# the builder creates the stem's and the head's modules before the positions' (which fixes the order weights are
# drawn in). The AutoSNN macro-architecture and the layer constructors are imported inside the functions:
# importing spikenas.autosnn runs that package's __init__, whose modules import this one.

if TYPE_CHECKING:
    from spikenas.autosnn.macro import AutoSNNConfig
    from spikenas.neuron import PLIFConfig

#: the layer whose value is an AutoSNN network's output (before the voting AvgPool1d, which is not a layer)
AUTOSNN_OUTPUT = "head.2"


def autosnn_block_layers(
    block: str, prefix: str, cin: int, cout: int, size: int, neuron: PLIFConfig, src: tuple[str, bool]
) -> list[Layer]:
    """The layers of AutoSNN block ``block`` at position ``prefix`` (``layers.<i>``), mapping the ``(cin, size,
    size)`` output of ``src`` (its name, whether it is spikes) to ``(cout, size, size)``; the last layer is the
    block's output.

    * ``skip``: the identity ``prefix``, or where ``cin != cout`` the projection ``prefix.0`` (Conv1x1) and
      ``prefix.1`` (BN);
    * ``scb_k``: ``prefix.0`` .. ``prefix.5``: Conv_k, BN, PLIF, Conv_k, BN, PLIF;
    * ``srb_k``: the body ``prefix.body.0`` .. ``prefix.body.4`` (Conv_k, BN, PLIF, Conv_k, BN), the shortcut
      (the identity ``prefix.shortcut``, or ``prefix.shortcut.0`` and ``.1``, Conv1x1 and BN, where
      ``cin != cout``), the ``sum`` ``prefix.sum`` of body and shortcut, and its PLIF ``prefix.out``.

    :raises SpikeNASError: a block not in :data:`spikenas.autosnn.macro.BLOCKS`.
    """
    from spikenas.autosnn.macro import BLOCKS

    shape = (cout, size, size)
    if block == "skip":
        if cin == cout:
            return [identity(prefix, shape, src=src)]
        return [conv(f"{prefix}.0", cin, cout, size, 1, src=src),
                bn(f"{prefix}.1", cout, size, src=(f"{prefix}.0", False))]
    kind, _, k = block.partition("_k")
    if kind not in ("scb", "srb") or k not in ("3", "5"):
        raise SpikeNASError(f"unknown AutoSNN block {block!r}; choose one of {BLOCKS}")
    q = prefix if kind == "scb" else f"{prefix}.body"
    body = [
        conv(f"{q}.0", cin, cout, size, int(k), src=src),
        bn(f"{q}.1", cout, size, src=(f"{q}.0", False)),
        plif(f"{q}.2", shape, neuron, src=(f"{q}.1", False)),
        conv(f"{q}.3", cout, cout, size, int(k), src=(f"{q}.2", True)),
        bn(f"{q}.4", cout, size, src=(f"{q}.3", False)),
    ]
    if kind == "scb":
        return [*body, plif(f"{q}.5", shape, neuron, src=(f"{q}.4", False))]
    s = f"{prefix}.shortcut"
    if cin == cout:
        shortcut = [identity(s, shape, src=src)]
    else:
        shortcut = [conv(f"{s}.0", cin, cout, size, 1, src=src), bn(f"{s}.1", cout, size, src=(f"{s}.0", False))]
    total = Layer(f"{prefix}.sum", "sum", shape, inputs=(body[-1].name, shortcut[-1].name))
    return [*body, *shortcut, total, plif(f"{prefix}.out", shape, neuron, src=(total.name, False))]


def autosnn_graph(arch: Sequence[str], config: AutoSNNConfig) -> LayerGraph:
    """The layer graph of ``spikenas.autosnn.network.build_network(arch, config)``, in forward order.

    :raises SpikeNASError: ``arch`` is not 5 blocks of :data:`spikenas.autosnn.macro.BLOCKS`.
    """
    from spikenas.autosnn.macro import check_arch

    return _autosnn_graph(check_arch(arch), config)


@lru_cache(maxsize=4096)
def _autosnn_graph(arch: tuple[str, ...], config: AutoSNNConfig) -> LayerGraph:
    from spikenas.autosnn.macro import LAYOUT

    blocks = iter(zip(arch, config.block_io, strict=True))
    c, size, neuron = config.base_channels, config.input_size, config.neuron
    layers = [
        conv("stem.0", config.in_channels, c, size, 3, src=("", False), per_step=False),
        bn("stem.1", c, size, src=("stem.0", False), per_step=False),
        plif("stem_plif", (c, size, size), neuron, src=("stem.1", False)),
    ]
    for i, x in enumerate(LAYOUT):
        src = (layers[-1].name, layers[-1].spikes)  # the layer before (a block's output is its last layer)
        if x == "m":
            layers.append(pool(f"layers.{i}", "maxpool", c, size, 2, src=src))
            size //= 2
            continue
        block, (cin, c, _) = next(blocks)
        layers += autosnn_block_layers(block, f"layers.{i}", cin, c, size, neuron, src)
    flat, outputs = config.final_channels * config.final_size**2, config.vote * config.num_classes
    src = (layers[-1].name, layers[-1].spikes)
    layers += [
        Layer("head.0", "flatten", (flat,), spikes=src[1], inputs=(src[0],)),
        linear("head.1", flat, outputs, src=("head.0", src[1])),
        plif(AUTOSNN_OUTPUT, (outputs,), neuron, src=("head.1", False)),
    ]
    return LayerGraph(tuple(layers), AUTOSNN_OUTPUT)
