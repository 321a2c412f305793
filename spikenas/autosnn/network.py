"""AutoSNN's macro-architecture and candidate blocks, built with spikingjelly PLIF neurons.

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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from spikenas.errors import SpikeNASError

BLOCKS: tuple[str, ...] = ("skip", "scb_k3", "scb_k5", "srb_k3", "srb_k5")
LAYOUT: tuple[int | str, ...] = (1, "m", 2, 2, "m", 4, 4, "m")  # channel multipliers of c; "m" = max-pool
SEARCHED: tuple[int, ...] = tuple(i for i, x in enumerate(LAYOUT) if x != "m")  # positions holding blocks


@dataclass(frozen=True)
class PLIFConfig:
    """spikingjelly ParametricLIFNode settings (AutoSNN's)."""

    init_tau: float = 2.0  # initial membrane time constant; tau is learned through w = -log(tau - 1)
    v_threshold: float = 1.0  # firing threshold
    v_reset: float = 0.0  # hard-reset potential
    detach_reset: bool = True  # no gradient through the reset
    surrogate_alpha: float = 2.0  # sharpness of the ATan surrogate gradient


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


def make_plif(config: PLIFConfig) -> neuron.ParametricLIFNode:
    """A multi-step PLIF on ``[T, B, ...]``, returning float spikes; one learnable parameter."""
    return neuron.ParametricLIFNode(
        init_tau=config.init_tau,
        v_threshold=config.v_threshold,
        v_reset=config.v_reset,
        surrogate_function=surrogate.ATan(alpha=config.surrogate_alpha),
        detach_reset=config.detach_reset,
        step_mode="m",
    )


def _conv_bn(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [
        layer.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False, step_mode="m"),
        layer.BatchNorm2d(cout, step_mode="m"),
    ]


class ResidualBlock(nn.Module):
    """SRB: ``PLIF(body(x) + shortcut(x))`` on ``[T, B, cin, H, W]`` -> ``[T, B, cout, H, W]`` spikes."""

    def __init__(self, cin: int, cout: int, kernel: int, plif: PLIFConfig) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(cin, cout, kernel), make_plif(plif), *_conv_bn(cout, cout, kernel))
        self.shortcut = nn.Identity() if cin == cout else nn.Sequential(*_conv_bn(cin, cout, 1))
        self.out = make_plif(plif)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


def build_block(name: str, cin: int, cout: int, plif: PLIFConfig) -> nn.Module:
    """Block ``name`` of :data:`BLOCKS` mapping ``[T, B, cin, H, W]`` to ``[T, B, cout, H, W]``."""
    if name == "skip":
        return nn.Identity() if cin == cout else nn.Sequential(*_conv_bn(cin, cout, 1))
    kind, _, k = name.partition("_k")
    if kind not in ("scb", "srb") or k not in ("3", "5"):
        raise SpikeNASError(f"unknown AutoSNN block {name!r}; choose one of {BLOCKS}")
    if kind == "scb":
        k = int(k)
        return nn.Sequential(*_conv_bn(cin, cout, k), make_plif(plif), *_conv_bn(cout, cout, k), make_plif(plif))
    return ResidualBlock(cin, cout, int(k), plif)


def check_arch(arch: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``arch`` as a tuple after checking it names one block of :data:`BLOCKS` per searched position."""
    arch = tuple(arch)
    if len(arch) != len(SEARCHED) or any(b not in BLOCKS for b in arch):
        raise SpikeNASError(f"an AutoSNN architecture is {len(SEARCHED)} blocks from {BLOCKS}, got {arch!r}")
    return arch


class _Shell(nn.Module):
    """Stem, head and forward logic shared by a single network and the super-network."""

    def __init__(self, config: AutoSNNConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.stem_plif = make_plif(config.neuron)
        outputs = config.vote * config.num_classes
        self.head = nn.Sequential(
            layer.Flatten(step_mode="m"),
            layer.Linear(config.final_channels * config.final_size**2, outputs, bias=False, step_mode="m"),
            make_plif(config.neuron),
        )
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


def _pool() -> nn.Module:
    return layer.MaxPool2d(2, 2, step_mode="m")


class AutoSNNNetwork(_Shell):
    """One architecture: images ``[B, C_in, H, W]`` float32 -> ``[B, classes]`` voted firing rates."""

    def __init__(self, arch: tuple[str, ...], config: AutoSNNConfig) -> None:
        super().__init__(config)
        self.arch = check_arch(arch)
        blocks = iter(zip(self.arch, config.block_io, strict=True))
        layers = []
        for x in LAYOUT:
            if x == "m":
                layers.append(_pool())
            else:
                name, (cin, cout, _) = next(blocks)
                layers.append(build_block(name, cin, cout, config.neuron))
        self.layers = nn.ModuleList(layers)

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
