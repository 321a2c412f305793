"""The cell search space: genotypes of NAS-Bench-201-style 4-node cells.

A cell has nodes 0 (input) to 3 (output) and one op on each forward edge, in the fixed order
:data:`EDGES`. Node values: ``x1 = e01(x0)``, ``x2 = e02(x0) + e12(x1)``,
``x3 = e03(x0) + e13(x1) + e23(x2)``. Within an op set of ``k`` ops a genotype's index is the
base-``k`` number whose least significant digit is the op on edge (0,1); with the 5O set this is
the ``arch_id`` of NAS-Bench-201-based SNN benchmarks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from spikenas.errors import SpikeNASError
from spikenas.ops import get_op, get_op_set

EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
NUM_NODES = 4
_NB201_NODE = re.compile(r"^\|([^|~]+~\d+\|)+$")


@dataclass(frozen=True)
class Genotype:
    """One cell: op names on :data:`EDGES`, in that order. Frozen and hashable."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise SpikeNASError(f"a genotype needs {len(EDGES)} edge ops, got {len(self.ops)}: {self.ops}")
        object.__setattr__(self, "ops", tuple(get_op(o).name for o in self.ops))

    @classmethod
    def from_index(cls, index: int, op_set: str) -> Genotype:
        """Genotype number ``index`` of ``op_set`` (edge (0,1) is the least significant digit)."""
        ops = get_op_set(op_set)
        k = len(ops)
        if not 0 <= int(index) < k ** len(EDGES):
            raise SpikeNASError(f"genotype index must be in [0, {k ** len(EDGES)}) for op set {op_set}, got {index}")
        index = int(index)
        digits = []
        for _ in EDGES:
            digits.append(ops[index % k])
            index //= k
        return cls(tuple(digits))

    def index(self, op_set: str) -> int:
        """This genotype's index within ``op_set``; raises if an op is not in the set."""
        ops = get_op_set(op_set)
        missing = [o for o in self.ops if o not in ops]
        if missing:
            raise SpikeNASError(f"ops {missing} of {self} are not in op set {op_set} {ops}")
        return sum(ops.index(o) * len(ops) ** e for e, o in enumerate(self.ops))

    @classmethod
    def from_nb201(cls, text: str) -> Genotype:
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (NAS-Bench-201 or registry op names)."""
        nodes = text.strip().split("+")
        if len(nodes) != NUM_NODES - 1 or not all(_NB201_NODE.match(n) for n in nodes):
            raise SpikeNASError(
                f"malformed genotype string {text!r}: expected '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
            )
        by_edge = {}
        for dst, node in enumerate(nodes, start=1):
            entries = [e for e in node.split("|") if e]
            sources = []
            for entry in entries:
                name, src = entry.rsplit("~", 1)
                by_edge[(int(src), dst)] = name
                sources.append(int(src))
            if sorted(sources) != list(range(dst)):
                raise SpikeNASError(f"malformed genotype string {text!r}: node {dst} needs inputs 0..{dst - 1}")
        return cls(tuple(by_edge[e] for e in EDGES))

    def to_nb201(self) -> str:
        """The NAS-Bench-201 string of this cell."""
        nodes = []
        for dst in range(1, NUM_NODES):
            entries = [f"{get_op(self.ops[EDGES.index((src, dst))]).nb201}~{src}" for src in range(dst)]
            nodes.append("|" + "|".join(entries) + "|")
        return "+".join(nodes)

    @classmethod
    def parse(cls, text: str, op_set: str | None = None) -> Genotype:
        """A genotype from a NAS-Bench-201 string, or from an integer index within ``op_set``."""
        text = str(text).strip()
        if text.isdigit():
            if op_set is None:
                raise SpikeNASError(f"genotype index {text} needs an op set to be decoded")
            return cls.from_index(int(text), op_set)
        return cls.from_nb201(text)

    def live_edges(self) -> tuple[bool, ...]:
        """Per edge: non-zero and on some input-to-output path."""
        nonzero = [not get_op(o).is_zero for o in self.ops]
        reach_in = [True, False, False, False]
        for (src, dst), nz in zip(EDGES, nonzero, strict=True):
            reach_in[dst] |= nz and reach_in[src]
        reach_out = [False, False, False, True]
        for (src, dst), nz in reversed(list(zip(EDGES, nonzero, strict=True))):
            reach_out[src] |= nz and reach_out[dst]
        return tuple(
            nz and reach_in[s] and reach_out[d] for (s, d), nz in zip(EDGES, nonzero, strict=True)
        )

    def is_connected(self) -> bool:
        """True when the cell's input has a path of non-zero ops to its output."""
        return any(self.live_edges())

    def __str__(self) -> str:
        return self.to_nb201()


def num_genotypes(op_set: str) -> int:
    """Number of cells of ``op_set``: ``len(ops) ** 6``."""
    return len(get_op_set(op_set)) ** len(EDGES)


def enumerate_genotypes(op_set: str) -> Iterator[Genotype]:
    """Every cell of ``op_set``, in index order."""
    for index in range(num_genotypes(op_set)):
        yield Genotype.from_index(index, op_set)


def digits_table(op_set: str) -> np.ndarray:
    """int64 ``[k**6, 6]``: the op position (within the set) on each edge, for every index."""
    k = len(get_op_set(op_set))
    idx = np.arange(k ** len(EDGES), dtype=np.int64)
    return np.stack([(idx // k**e) % k for e in range(len(EDGES))], axis=1)


def connected_mask(op_set: str) -> np.ndarray:
    """bool ``[k**6]``: whether each cell of ``op_set`` connects input to output."""
    ops = get_op_set(op_set)
    if not any(get_op(o).is_zero for o in ops):
        return np.ones(num_genotypes(op_set), dtype=bool)
    return np.array([g.is_connected() for g in enumerate_genotypes(op_set)])


def first_difference(candidates: Sequence[Sequence[Genotype]]) -> int:
    """First cell position where ``candidates`` differ; the last position if they all agree."""
    first = candidates[0]
    differ = [i for i in range(len(first)) if any(c[i] != first[i] for c in candidates)]
    return differ[0] if differ else len(first) - 1
