"""The search-space interface every search strategy sees, and its implementation for the cell space.

An architecture is encoded as a fixed-length tuple of *genes*, one choice (a string) per position;
``choices(i)`` lists what position ``i`` may hold. Sampling, mutation and single-point crossover
are defined once on genes, so a strategy (e.g. :mod:`spikenas.nas.evolution`) works unchanged
over any space: the AutoSNN block space (:class:`spikenas.autosnn.space.AutoSNNSpace`) or the cell
space (:class:`CellSpace`). A space also owns validity, its exact memory model (``params``) and
network construction (``build``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.memory import Budget, cell_space_infeasible, network_params
from spikenas.network import MacroConfig, build_network
from spikenas.ops import get_op_set
from spikenas.space import EDGES, Genotype, connected_mask

Key = tuple[str, ...]


class SearchSpace(ABC):
    """A space of architectures encoded as gene tuples; subclasses define the encoding."""

    name: str = "space"  # registry-style name recorded in results

    @property
    @abstractmethod
    def length(self) -> int:
        """Number of gene positions."""

    @abstractmethod
    def choices(self, position: int) -> tuple[str, ...]:
        """What gene ``position`` may hold (at least one choice)."""

    @abstractmethod
    def encode(self, arch: object) -> Key:
        """The gene tuple of ``arch``."""

    @abstractmethod
    def decode(self, genes: Sequence[str]) -> object:
        """The architecture of a gene tuple; raises :class:`SpikeNASError` on a malformed one."""

    @abstractmethod
    def params(self, arch: object) -> int:
        """Exact parameter count of ``build(arch)`` (the memory model)."""

    @abstractmethod
    def build(self, arch: object, *, seed: int | None = None) -> nn.Module:
        """The network of ``arch``: images ``[B, C, H, W]`` float32 -> logits ``[B, classes]``."""

    @abstractmethod
    def describe(self, arch: object) -> dict:
        """JSON-ready description of ``arch``."""

    def is_valid(self, arch: object) -> bool:
        """Whether ``arch`` may be evaluated (every space accepts well-formed gene tuples by default)."""
        genes = self.encode(arch)
        return len(genes) == self.length and all(g in self.choices(i) for i, g in enumerate(genes))

    def infeasible(self, budget: Budget | None) -> str | None:
        """Why no valid architecture fits ``budget`` (one line naming the smallest network), or None.

        The default cannot tell and returns None; a space with a memory model overrides it.
        """
        return None

    def budget_cost(self, budget: Budget, arch: object) -> int:
        """The quantity ``budget`` counts for ``arch`` (parameters, weight bytes or on-chip bytes), without
        building it; a space whose networks an on-chip budget can price overrides this."""
        return int(budget.cost(self.params(arch)))

    def fits_budget(self, budget: Budget, arch: object) -> bool:
        """Whether ``arch`` is within ``budget``."""
        return bool(budget.fits_cost(self.budget_cost(budget, arch)))

    def key(self, arch: object) -> Key:
        """Hashable identity of ``arch``: equal keys are the same network (no evaluation twice)."""
        return self.encode(arch)

    def size(self) -> int:
        """Number of gene tuples (valid or not)."""
        return int(np.prod([len(self.choices(i)) for i in range(self.length)], dtype=object))

    def sample(self, rng: np.random.Generator) -> object:
        """A uniformly drawn gene tuple (validity is the caller's concern)."""
        genes = []
        for i in range(self.length):
            options = self.choices(i)
            genes.append(options[int(rng.integers(len(options)))])
        return self.decode(genes)

    def mutate(self, arch: object, rng: np.random.Generator, *, p: float) -> object:
        """Each position, with probability ``p``, takes a uniformly drawn *different* choice.

        When no position fires the child equals its parent; callers treat that as a duplicate.
        """
        if not 0.0 <= p <= 1.0:
            raise SpikeNASError(f"mutation probability p must be in [0, 1], got {p!r}")
        genes = list(self.encode(arch))
        for i, gene in enumerate(genes):
            if rng.random() < p:
                others = [c for c in self.choices(i) if c != gene]
                if others:
                    genes[i] = others[int(rng.integers(len(others)))]
        return self.decode(genes)

    def crossover(self, a: object, b: object, rng: np.random.Generator) -> object:
        """Single-point crossover: ``a``'s genes before a cut drawn from 1..length-1, ``b``'s after."""
        ga, gb = self.encode(a), self.encode(b)
        if self.length < 2:
            return self.decode(ga)
        cut = int(rng.integers(1, self.length))
        return self.decode(ga[:cut] + gb[cut:])

    def to_json(self, arch: object) -> list[str]:
        return list(self.encode(arch))

    def from_json(self, data: Sequence[str]) -> object:
        return self.decode(tuple(data))


class CellSpace(SearchSpace):
    """SpikeNAS's cell space: one genotype per cell position of ``macro``, ops from ``op_set``.

    Genes are the 6 edge ops of cell 1, then of cell 2, ...; an architecture is a tuple of
    :class:`~spikenas.space.Genotype`. Valid when every cell connects its input to its output.
    """

    name = "cell"

    def __init__(self, macro: MacroConfig, *, op_set: str = "3O") -> None:
        self.macro = macro
        self.op_set = op_set
        self._ops = get_op_set(op_set)

    @property
    def length(self) -> int:
        return len(EDGES) * self.macro.num_cells

    def choices(self, position: int) -> tuple[str, ...]:
        if not 0 <= position < self.length:
            raise SpikeNASError(f"position must be in 0..{self.length - 1}, got {position}")
        return self._ops

    def encode(self, arch: Sequence[Genotype]) -> Key:
        return tuple(op for genotype in arch for op in genotype.ops)

    def decode(self, genes: Sequence[str]) -> tuple[Genotype, ...]:
        genes = tuple(genes)
        if len(genes) != self.length:
            raise SpikeNASError(
                f"a {self.macro.num_cells}-cell architecture needs {self.length} genes, got {len(genes)}"
            )
        n = len(EDGES)
        return tuple(Genotype(genes[i : i + n]) for i in range(0, len(genes), n))

    def is_valid(self, arch: Sequence[Genotype]) -> bool:
        return super().is_valid(arch) and all(g.is_connected() for g in arch)

    def params(self, arch: Sequence[Genotype]) -> int:
        return network_params(tuple(arch), self.macro)

    def infeasible(self, budget: Budget | None) -> str | None:
        return cell_space_infeasible(
            budget, self.op_set, self.macro, same_cell=False, allowed=connected_mask(self.op_set),
            cells="connected cells",
        )

    def budget_cost(self, budget: Budget, arch: Sequence[Genotype]) -> int:
        return budget.network_cost(tuple(arch), self.macro)

    def build(self, arch: Sequence[Genotype], *, seed: int | None = None) -> nn.Module:
        return build_network(list(arch), self.macro, seed=seed)

    def describe(self, arch: Sequence[Genotype]) -> dict:
        cells = []
        for i, g in enumerate(arch):
            cell: dict = {"position": i + 1, "nb201": g.to_nb201(), "ops": list(g.ops)}
            if all(o in self._ops for o in g.ops):
                cell["index"] = g.index(self.op_set)
            cells.append(cell)
        return {"space": self.name, "op_set": self.op_set, "cells": cells}


def cell_space_of(space: SearchSpace, evaluator: object, *, strategy: str) -> str:
    """The op set of ``space`` for a strategy that enumerates cells (Alg. 1, SNASNet's random search), checked
    against the evaluator's network configuration.

    :raises SpikeNASError: if ``space`` is not a :class:`CellSpace`, or its macro is not the evaluator's.
    """
    if not isinstance(space, CellSpace):
        raise SpikeNASError(
            f"{strategy} draws cells of the SpikeNAS space: give a CellSpace, got {type(space).__name__}"
        )
    if space.macro != getattr(evaluator, "config", None):
        raise SpikeNASError(f"{strategy}: the space's macro {space.macro} differs from the evaluator's network config")
    return space.op_set
