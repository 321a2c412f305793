"""Network builder: SNASNet's macro-architecture generalised to 1, 2 and 3 cells.

Layout for ``n`` cells at width ``C`` (tensors are ``[T, B, C, H, W]`` after the stem)::

    stem   Conv3x3(in -> C, stride s, no bias) + BN, computed once and repeated over T
    cell_1 (C)                                          # each cell may hold its own genotype
    for i = 2..n:  downconv BN -> LIF -> Conv3x3(c -> 2c) -> BN, AvgPool2d(2);  cell_i (2c)
    head   BN -> LIF, AvgPool2d(2), flatten, Dropout, Linear(-> hidden, no bias) -> LIF,
           Linear(hidden -> vote * classes) -> AvgPool1d(vote); the output is averaged over T.

The Speck family (``MacroConfig(family="speck")``, chosen by op set ``speck``) keeps the cells and changes the
rest: rate-coded input events (:func:`encode_events`), a stem Conv3x3 -> IAF -> SumPool2d(2) run at every step,
the cells at one width and size, a head flatten -> Linear -> IAF -> Linear -> IAF, and spike counts as output.

Every module is made from the network's layer graph (:func:`spikenas.layer_graph.cell_network_graph`), whose
layer names are the modules' qualified names. Initialisation follows SNASNet: conv kaiming_uniform_(a=2), BN
weight 1 and bias 0, Linear weights N(0, 0.01) and biases 0.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace

import torch
from spikingjelly.activation_based import functional
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.layer_graph import cell_layers, cell_network_graph, downconv_layers
from spikenas.layers import Layer, assemble
from spikenas.neuron import NeuronConfig
from spikenas.ops import get_op
from spikenas.space import EDGES, Genotype

MAX_CELLS = 3
#: MacroConfig fields that must be integers (bools and floats such as 4.5 are refused)
#: network families: SNASNet's macro (LIF neurons, BN, direct input) and the Speck space's (IAF neurons, merges of
#: spike streams, rate-coded input; :func:`spikenas.layer_graph.speck_stem_layers`)
FAMILIES = ("snasnet", "speck")
INT_FIELDS = ("num_cells", "width", "timesteps", "in_channels", "input_size", "num_classes", "hidden", "vote",
              "stem_stride")


@dataclass(frozen=True)
class MacroConfig:
    """Everything about the network except the cells' genotypes."""

    num_cells: int = 2  # cells in the network, 1..3; cell i >= 2 follows a downconv and pooling
    width: int = 128  # channels C of the first cell; each later cell doubles them
    timesteps: int = 5  # T: the static image is presented T times (direct encoding)
    in_channels: int = 3  # image channels
    input_size: int = 32  # image height and width
    num_classes: int = 10  # outputs after voting
    hidden: int = 1024  # units of the first Linear layer of the head
    vote: int = 10  # outputs per class pooled by AvgPool1d (SNASNet's voting layer)
    stem_stride: int = 1  # 2 for 64x64 inputs (TinyImageNet)
    dropout: float = 0.5  # dropout before the first Linear
    neuron: NeuronConfig = field(default_factory=NeuronConfig)  # LIF settings of every neuron
    family: str = "snasnet"  # one of FAMILIES; "speck": IAF cells at one width and size, no voting (vote = 1)

    def __post_init__(self) -> None:
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise SpikeNASError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
            object.__setattr__(self, name, int(value))  # numpy integers become ints (JSON, hashing)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real):
            kind = type(self.dropout).__name__
            raise SpikeNASError(f"dropout must be a number in [0, 1), got {self.dropout!r} ({kind})")
        object.__setattr__(self, "dropout", float(self.dropout))
        if not isinstance(self.neuron, NeuronConfig):
            raise SpikeNASError(f"neuron must be a NeuronConfig, got {type(self.neuron).__name__}")
        if self.family not in FAMILIES:
            raise SpikeNASError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.family == "speck":
            for name, ok, allowed in (("vote", self.vote == 1, "1 in the speck family (no voting layer)"),
                                      ("stem_stride", self.stem_stride == 1, "1 in the speck family"),
                                      ("input_size", self.input_size >= 2, ">= 2 in the speck family")):
                if not ok:
                    raise SpikeNASError(f"{name} must be {allowed}, got {getattr(self, name)!r}")
        checks = [
            ("num_cells", 1 <= self.num_cells <= MAX_CELLS, f"in 1..{MAX_CELLS}"),
            ("width", self.width >= 1, ">= 1"),
            ("timesteps", self.timesteps >= 1, ">= 1"),
            ("in_channels", self.in_channels >= 1, ">= 1"),
            ("num_classes", self.num_classes >= 1, ">= 1"),
            ("hidden", self.hidden >= 1, ">= 1"),
            ("vote", self.vote >= 1, ">= 1"),
            ("stem_stride", self.stem_stride in (1, 2), "1 or 2"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise SpikeNASError(f"{name} must be {allowed}, got {getattr(self, name)!r}")
        if self.final_size < 1:
            raise SpikeNASError(
                f"input_size {self.input_size} is too small for {self.num_cells} cells: it must be at least "
                f"{self.stem_stride * 2 ** self.num_cells}"
            )

    @property
    def cell_widths(self) -> tuple[int, ...]:
        """Channels of each cell."""
        if self.family == "speck":
            return (self.width,) * self.num_cells
        return tuple(self.width * 2**i for i in range(self.num_cells))

    @property
    def cell_sizes(self) -> tuple[int, ...]:
        """Spatial size of each cell's feature maps."""
        if self.family == "speck":
            return (self.input_size // 2,) * self.num_cells
        size = (self.input_size - 1) // self.stem_stride + 1
        sizes = [size]
        for _ in range(self.num_cells - 1):
            sizes.append(sizes[-1] // 2)
        return tuple(sizes)

    @property
    def final_size(self) -> int:
        """Spatial size entering the head's flatten."""
        if self.family == "speck":
            return self.cell_sizes[-1]
        return self.cell_sizes[-1] // 2

    def to_dict(self) -> dict:
        """The fields as JSON; ``family`` only when it is not the default (so SNASNet configs read as before)."""
        data = asdict(self)
        if self.family == "snasnet":
            del data["family"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> MacroConfig:
        """The config written by :meth:`to_dict`; unknown or mistyped fields raise :class:`SpikeNASError`."""
        if not isinstance(data, dict):
            raise SpikeNASError(f"a macro config must be a JSON object (dict), got {type(data).__name__}")
        unknown = sorted(set(map(str, data)) - {f.name for f in fields(cls)})
        if unknown:
            raise SpikeNASError(f"unknown macro config fields {unknown}; allowed: {[f.name for f in fields(cls)]}")
        data = dict(data)
        neuron = data.get("neuron", {})
        if not isinstance(neuron, dict):
            raise SpikeNASError(f"macro config field neuron must be a JSON object (dict), got {type(neuron).__name__}")
        try:
            data["neuron"] = NeuronConfig(**neuron)
        except TypeError as err:
            raise SpikeNASError(f"macro config field neuron: {err}") from err
        return cls(**data)

    def replace(self, **changes) -> MacroConfig:
        return replace(self, **changes)


class Cell(nn.Module):
    """A 4-node cell: the modules of its edges' layers (:func:`spikenas.layer_graph.cell_layers`) named
    ``prefix.edges.<src><dst>``; zero edges hold no module."""

    def __init__(self, genotype: Genotype, layers: Sequence[Layer], prefix: str) -> None:
        super().__init__()
        self.genotype = genotype
        self.edges = nn.ModuleDict()
        for src, dst in EDGES:
            module = assemble(layers, f"{prefix}.edges.{src}{dst}")
            if module is not None:
                self.edges[f"{src}{dst}"] = module

    @classmethod
    def of(cls, genotype: Genotype, channels: int, neuron: NeuronConfig, size: int = 1) -> Cell:
        """The cell of ``genotype`` at ``channels`` on its own (freshly initialised)."""
        return cls(genotype, cell_layers(genotype, "cell", channels, size, neuron, ("", False)), "cell")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` -> ``[T, B, C, H, W]`` (node 3)."""
        nodes = [x]
        for dst in range(1, 4):
            total = None
            for src in range(dst):
                key = f"{src}{dst}"
                if key in self.edges:
                    out = self.edges[key](nodes[src])
                    total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]


def downconv(channels: int, neuron: NeuronConfig, size: int = 2) -> nn.Sequential:
    """The module of :func:`spikenas.layer_graph.downconv_layers`: BN -> LIF -> Conv3x3(c -> 2c) -> BN ->
    AvgPool2d(2), between cells (``size``, the input's height and width, shapes only the layer records)."""
    return assemble(downconv_layers("downconv", channels, size, neuron, ("", False)), "downconv")


def snasnet_init(module: nn.Module) -> None:
    """SNASNet's initialisation of every layer of ``module``, from torch's global generator: conv
    kaiming_uniform_(a=2), BN weight 1 and bias 0, Linear N(0, 0.01) and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=2)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SNASNetwork(nn.Module):
    """The macro-architecture around ``num_cells`` cells; input ``[B, C_in, H, W]`` float images,
    output ``[B, num_classes]`` logits (class scores averaged over timesteps)."""

    def __init__(self, genotypes: list[Genotype] | tuple[Genotype, ...], config: MacroConfig) -> None:
        super().__init__()
        if len(genotypes) != config.num_cells:
            raise SpikeNASError(
                f"got {len(genotypes)} genotypes for a network of num_cells={config.num_cells}"
            )
        self.config = config
        self.genotypes = tuple(genotypes)
        self.graph = cell_network_graph(self.genotypes, config)
        layers = self.graph.layers
        self.stem = assemble(layers, "stem")
        stages: list[nn.Module] = []
        speck = config.family == "speck"
        for i, genotype in enumerate(self.genotypes):
            if i > 0 and not speck:
                stages.append(assemble(layers, f"cells.{2 * i - 1}"))
            stages.append(Cell(genotype, layers, f"cells.{i if speck else 2 * i}"))
        self.cells = nn.Sequential(*stages)
        self.head = assemble(layers, "head")
        if not speck:
            self.vote = nn.AvgPool1d(config.vote, config.vote)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """SNASNet's initialisation (draws from torch's global generator); the Speck family's instead (every
        weight from U(-b, b), b = sqrt(3 * HEAD_GAIN_SQ / fan_in), as :func:`head_init`: without BatchNorm the
        inputs of an IAF must reach its threshold by themselves)."""
        if self.config.family == "speck":
            for m in self.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    fan_in = m.weight[0].numel()
                    bound = (3.0 * HEAD_GAIN_SQ / fan_in) ** 0.5
                    nn.init.uniform_(m.weight, -bound, bound)
            return
        snasnet_init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, H, W]`` float -> ``[B, num_classes]``; resets neuron state first. SNASNet's family: the
        class scores averaged over T. The Speck family: the images become events (:func:`encode_events`) and
        the output is each class neuron's spike count over the T timesteps."""
        functional.reset_net(self)
        if self.config.family == "speck":
            return self.head(self.cells(self.stem(encode_events(images, self.config.timesteps)))).sum(dim=0)
        x = self.stem(images)
        x = x.unsqueeze(0).expand(self.config.timesteps, *x.shape)
        x = self.head(self.cells(x))  # [T, B, vote * classes]
        t, b, _ = x.shape
        return self.vote(x.reshape(t * b, 1, -1)).reshape(t, b, -1).mean(dim=0)


def encode_events(images: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Rate-coded input events, float ``[T, B, C, H, W]`` of 0/1, from images ``[B, C, H, W]``: each pixel drives
    an integrate-and-fire encoder (``v <- v + x``, an event when ``v >= 1``, then ``v <- v - 1``), so a pixel of
    value ``x`` in (0, 1] sends about ``x * T`` events and a pixel <= 0 sends none. Deterministic: what a host
    sends a chip for the same images every time."""
    v = torch.zeros_like(images)
    events = []
    for _ in range(timesteps):
        v = v + images
        spike = (v >= 1.0).to(images.dtype)
        v = v - spike
        events.append(spike)
    return torch.stack(events)


WEIGHT_SEEDINGS = ("network", "per_edge")


def derived_seed(seed: int, *parts: object) -> int:
    """A stable 63-bit seed derived from ``seed`` and ``parts`` (same in every process)."""
    digest = hashlib.sha256(repr((int(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def init_weights(module: nn.Module, seed: int) -> nn.Module:
    """SNASNet's initialisation of every layer of ``module`` from a generator seeded with ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        snasnet_init(module)
    return module


def edge_op(op_name: str, channels: int, neuron: NeuronConfig, *, seed: int, position: int, edge: int) -> nn.Module:
    """The module of op ``op_name`` on edge ``EDGES[edge]`` of cell ``position`` (0-based) under
    per-edge seeding: its weights depend only on (seed, position, edge, op), not on the other ops."""
    return init_weights(get_op(op_name).build(channels, neuron), derived_seed(seed, "cell", position, edge, op_name))


def seed_per_edge(network: SNASNetwork, seed: int) -> SNASNetwork:
    """Re-initialise ``network`` in place: the stem from (seed, "stem"), downconv ``i`` from
    (seed, "downconv", i), the head from (seed, "head"), and each edge op as :func:`edge_op` does.
    Networks sharing an op on the same edge of the same cell then share its weights (common random
    numbers across candidates), which lets a search compute shared parts once."""
    init_weights(network.stem, derived_seed(seed, "stem"))
    position = 0
    for stage in network.cells:
        if isinstance(stage, Cell):
            for e, (src, dst) in enumerate(EDGES):
                key = f"{src}{dst}"
                if key in stage.edges:
                    op_seed = derived_seed(seed, "cell", position, e, stage.genotype.ops[e])
                    init_weights(stage.edges[key], op_seed)
            position += 1
        else:
            init_weights(stage, derived_seed(seed, "downconv", position))
    init_weights(network.head, derived_seed(seed, "head"))
    return network


def build_network(
    genotypes: Genotype | list[Genotype] | tuple[Genotype, ...],
    config: MacroConfig,
    *,
    seed: int | None = None,
    weight_seeding: str = "network",
) -> SNASNetwork:
    """Build the network; one genotype is repeated in every cell position.

    :param seed: when given, weights are drawn from a generator seeded with it (reproducible), and
        torch's global generator is left as it was.
    :param weight_seeding: ``network`` draws all weights in sequence from ``seed``; ``per_edge``
        seeds each part on its own (see :func:`seed_per_edge`; needs ``seed``).
    """
    if weight_seeding not in WEIGHT_SEEDINGS:
        raise SpikeNASError(f"weight_seeding must be one of {WEIGHT_SEEDINGS}, got {weight_seeding!r}")
    if isinstance(genotypes, Genotype):
        genotypes = [genotypes] * config.num_cells
    if weight_seeding == "per_edge":
        if seed is None:
            raise SpikeNASError("weight_seeding='per_edge' needs a seed")
        with torch.random.fork_rng(devices=[]):
            return seed_per_edge(SNASNetwork(genotypes, config), seed)
    if seed is None:
        return SNASNetwork(genotypes, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SNASNetwork(genotypes, config)


HEAD_GAIN_SQ = 10.0  # fan-in init of the head: variance of a Linear weight times its fan-in


def head_init(model: nn.Module, *, seed: int) -> None:
    """Redraw every ``nn.Linear`` weight from U(-b, b), b = sqrt(3 * HEAD_GAIN_SQ / fan_in), in place.

    SNASNet's N(0, 0.01) suits its wide CIFAR networks; on a narrow proxy the hidden Linear sums too
    few inputs to reach the LIF threshold, the hidden layer never fires (measured firing rate 0.0 on a
    width-4 digits network) and the loss stays at ln 10. With std sqrt(10 / fan_in) the summed input of
    a hidden neuron has a standard deviation near the threshold (1) when ~10% of its inputs spike.
    Biases stay zero; draws come from a generator seeded with ``seed``.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                bound = (3.0 * HEAD_GAIN_SQ / module.weight.shape[1]) ** 0.5
                module.weight.uniform_(-bound, bound, generator=generator)
