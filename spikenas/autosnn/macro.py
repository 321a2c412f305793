"""AutoSNN's macro-architecture: its candidate blocks, the layout of its 8 positions, and its configuration.

Layout at base width ``c`` (AutoSNN: ``c = 16``); tensors are ``[T, B, C, H, W]`` after the stem::

    stem   Conv3x3(in -> c, no bias) -> BN, computed once and repeated over T, -> PLIF
    8 positions with channels [c, m, 2c, 2c, m, 4c, 4c, m]; m = MaxPool2d(2) (fixed), the other
           5 positions each hold one searched block from BLOCKS
    head   flatten -> Linear(-> vote * classes, no bias) -> PLIF -> AvgPool1d(vote); the output is the
           voted spike count averaged over T, i.e. a firing rate in [0, 1] per class

Blocks (``k`` = kernel size, ``cin -> cout``)::

    skip     identity; when cin != cout a Conv1x1 -> BN projection (AutoSNN's table does not say how a
             skip changes width; the projection keeps every one of the 5**5 = 3,125 architectures valid)
    scb_k    Conv_k -> BN -> PLIF -> Conv_k -> BN -> PLIF
    srb_k    PLIF(Conv_k -> BN -> PLIF -> Conv_k -> BN  +  shortcut(x)); shortcut = identity, or
             Conv1x1 -> BN when cin != cout

The layers of one architecture are :func:`spikenas.layer_graph.autosnn_graph`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from spikenas.errors import SpikeNASError
from spikenas.neuron import PLIFConfig

BLOCKS: tuple[str, ...] = ("skip", "scb_k3", "scb_k5", "srb_k3", "srb_k5")
LAYOUT: tuple[int | str, ...] = (1, "m", 2, 2, "m", 4, 4, "m")  # channel multipliers of c; "m" = max-pool
SEARCHED: tuple[int, ...] = tuple(i for i, x in enumerate(LAYOUT) if x != "m")  # positions holding blocks


@dataclass(frozen=True)
class AutoSNNConfig:
    """Everything about an AutoSNN network except its 5 searched blocks."""

    base_channels: int = 16  # c: channels of the stem and of position 1 (AutoSNN: 16)
    timesteps: int = 8  # T (AutoSNN: 8)
    in_channels: int = 3  # image channels
    input_size: int = 32  # image height and width
    num_classes: int = 10  # outputs after voting
    vote: int = 10  # head outputs per class pooled by AvgPool1d
    neuron: PLIFConfig = field(default_factory=PLIFConfig)  # every spiking neuron

    def __post_init__(self) -> None:
        for name in ("base_channels", "timesteps", "in_channels", "num_classes", "vote"):
            if getattr(self, name) < 1:
                raise SpikeNASError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.final_size < 1:
            raise SpikeNASError(f"input_size must be >= 8 for AutoSNN's three 2x2 max-pools, got {self.input_size}")

    @property
    def channels(self) -> tuple[int | str, ...]:
        """Channels of each of the 8 positions ("m" for the max-pools)."""
        return tuple(x if x == "m" else x * self.base_channels for x in LAYOUT)

    @property
    def block_io(self) -> tuple[tuple[int, int, int], ...]:
        """(cin, cout, spatial size) of each searched position, in order."""
        out, c, size = [], self.base_channels, self.input_size
        for x in self.channels:
            if x == "m":
                size //= 2
            else:
                out.append((c, x, size))
                c = x
        return tuple(out)

    @property
    def final_channels(self) -> int:
        return self.channels[SEARCHED[-1]]

    @property
    def final_size(self) -> int:
        """Spatial size entering the head's flatten."""
        return self.input_size // 2 ** LAYOUT.count("m")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AutoSNNConfig:
        data = dict(data)
        data["neuron"] = PLIFConfig(**data.get("neuron", {}))
        return cls(**data)

    def replace(self, **changes) -> AutoSNNConfig:
        return replace(self, **changes)


def check_arch(arch: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``arch`` as a tuple after checking it names one block of :data:`BLOCKS` per searched position."""
    arch = tuple(arch)
    if len(arch) != len(SEARCHED) or any(b not in BLOCKS for b in arch):
        raise SpikeNASError(f"an AutoSNN architecture is {len(SEARCHED)} blocks from {BLOCKS}, got {arch!r}")
    return arch
