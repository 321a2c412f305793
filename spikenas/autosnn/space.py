"""AutoSNN's search space: one block of :data:`BLOCKS` at each of the 5 searched positions.

An architecture is a tuple of 5 block names, e.g. ``("scb_k3", "skip", "srb_k5", "scb_k3", "skip")``;
all ``5**5 = 3,125`` are valid. Its index is the base-5 number whose least significant digit is
position 1's block (in :data:`BLOCKS` order).
"""

from __future__ import annotations

from collections.abc import Sequence

from spikenas.autosnn.deployment import network_cost, onchip_infeasible
from spikenas.autosnn.macro import BLOCKS, SEARCHED, AutoSNNConfig, check_arch
from spikenas.autosnn.memory import network_params, space_infeasible
from spikenas.autosnn.network import AutoSNNNetwork, build_network
from spikenas.errors import SpikeNASError
from spikenas.memory import Budget
from spikenas.nas.space_api import SearchSpace


def arch_index(arch: Sequence[str]) -> int:
    """Index of ``arch`` in ``[0, 3125)``."""
    return sum(BLOCKS.index(b) * len(BLOCKS) ** p for p, b in enumerate(check_arch(arch)))


def arch_from_index(index: int) -> tuple[str, ...]:
    """Architecture number ``index``."""
    total = len(BLOCKS) ** len(SEARCHED)
    if not 0 <= int(index) < total:
        raise SpikeNASError(f"AutoSNN architecture index must be in [0, {total}), got {index}")
    index, out = int(index), []
    for _ in SEARCHED:
        out.append(BLOCKS[index % len(BLOCKS)])
        index //= len(BLOCKS)
    return tuple(out)


def parse_arch(text: str) -> tuple[str, ...]:
    """An architecture from ``"scb_k3,skip,srb_k5,scb_k3,skip"`` or from its index."""
    text = str(text).strip()
    if text.isdigit():
        return arch_from_index(int(text))
    return check_arch(tuple(part.strip() for part in text.split(",")))


class AutoSNNSpace(SearchSpace):
    """The AutoSNN block space over a fixed :class:`AutoSNNConfig` macro-architecture."""

    name = "autosnn"

    def __init__(self, config: AutoSNNConfig) -> None:
        self.config = config

    @property
    def length(self) -> int:
        return len(SEARCHED)

    def choices(self, position: int) -> tuple[str, ...]:
        if not 0 <= position < self.length:
            raise SpikeNASError(f"position must be in 0..{self.length - 1}, got {position}")
        return BLOCKS

    def encode(self, arch: Sequence[str]) -> tuple[str, ...]:
        return tuple(arch)

    def decode(self, genes: Sequence[str]) -> tuple[str, ...]:
        return check_arch(genes)

    def params(self, arch: Sequence[str]) -> int:
        return network_params(arch, self.config)

    def infeasible(self, budget: Budget | None) -> str | None:
        if budget is not None and budget.kind == "onchip_bytes":
            return onchip_infeasible(budget, self.config)
        return space_infeasible(budget, self.config)

    def budget_cost(self, budget: Budget, arch: Sequence[str]) -> int:
        return network_cost(budget, arch, self.config)

    def build(self, arch: Sequence[str], *, seed: int | None = None) -> AutoSNNNetwork:
        return build_network(arch, self.config, seed=seed)

    def describe(self, arch: Sequence[str]) -> dict:
        arch = check_arch(arch)
        positions = [
            {"position": SEARCHED[i] + 1, "block": b, "in_channels": cin, "out_channels": cout, "size": size}
            for i, (b, (cin, cout, size)) in enumerate(zip(arch, self.config.block_io, strict=True))
        ]
        return {"space": self.name, "blocks": list(arch), "index": arch_index(arch), "positions": positions}
