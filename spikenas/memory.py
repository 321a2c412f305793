"""Analytical memory model (SpikeNAS Eq. 6-8), computed without building a network.

``N_param = sum over layers of weights + biases`` (BatchNorm's affine weight and bias count as
parameters; running statistics do not), and the memory at ``bits`` per parameter is
``M = N_param * bits`` bits, i.e. ``ceil(N_param * bits / 8)`` bytes. The count over every cell of
an op set is vectorised and compiled with Numba, so a search prunes over-budget candidates before
any network exists. Tests check it equals ``sum(p.numel() for p in model.parameters())``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig
from spikenas.ops import get_op, get_op_set
from spikenas.space import EDGES, Genotype


def fixed_params(config: MacroConfig) -> int:
    """Parameters outside the cells: stem, downconvs, head."""
    c_in, widths = config.in_channels, config.cell_widths
    total = 9 * c_in * widths[0] + 2 * widths[0]  # stem conv + BN
    for c in widths[:-1]:  # downconv: BN(c), conv c -> 2c, BN(2c)
        total += 2 * c + 9 * c * 2 * c + 2 * 2 * c
    last = widths[-1]
    total += 2 * last  # head BN
    total += last * config.final_size**2 * config.hidden  # Linear, no bias
    outputs = config.vote * config.num_classes
    total += config.hidden * outputs + outputs  # Linear with bias
    return total


def cell_params(genotype: Genotype, channels: int) -> int:
    """Parameters of one cell at ``channels``."""
    return sum(get_op(o).params(channels) for o in genotype.ops)


def network_params(genotypes: Genotype | Sequence[Genotype], config: MacroConfig) -> int:
    """Exact parameter count of ``build_network(genotypes, config)``."""
    if isinstance(genotypes, Genotype):
        genotypes = [genotypes] * config.num_cells
    if len(genotypes) != config.num_cells:
        raise SpikeNASError(f"got {len(genotypes)} genotypes for num_cells={config.num_cells}")
    cells = sum(cell_params(g, c) for g, c in zip(genotypes, config.cell_widths, strict=True))
    return fixed_params(config) + cells


def params_to_bytes(params: int | np.ndarray, bits: int) -> int | np.ndarray:
    """Memory in bytes of ``params`` parameters at ``bits`` bits each (Eq. 8, rounded up)."""
    if isinstance(params, np.ndarray):
        return (params * bits + 7) // 8
    return math.ceil(params * bits / 8)


def op_param_matrix(op_set: str, widths: Sequence[int]) -> np.ndarray:
    """int64 ``[len(widths), k]``: parameters of each op of ``op_set`` at each width."""
    ops = get_op_set(op_set)
    return np.array([[get_op(o).params(c) for o in ops] for c in widths], dtype=np.int64)


@numba.njit(cache=True)
def _enumerate_params(op_params: np.ndarray, base: int, num_edges: int) -> np.ndarray:
    """``base + sum_p sum_e op_params[p, digit_e(i)]`` for every index i of a k-op set."""
    positions, k = op_params.shape
    count = k**num_edges
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        total = base
        rest = i
        for _ in range(num_edges):
            digit = rest % k
            rest //= k
            for p in range(positions):
                total += op_params[p, digit]
        out[i] = total
    return out


def enumerate_params(
    op_set: str,
    config: MacroConfig,
    *,
    position: int | None = None,
    cells: Sequence[Genotype] | None = None,
) -> np.ndarray:
    """int64 ``[k**6]``: network parameters for every cell of ``op_set``, in index order.

    With ``position=None`` the same cell fills every position (Alg. 1's first pass, SNASNet's
    search). With ``position=i`` only cell ``i`` varies and the others are ``cells[j]``.
    """
    widths = config.cell_widths
    if position is None:
        return _enumerate_params(op_param_matrix(op_set, widths), fixed_params(config), len(EDGES))
    if cells is None or len(cells) != config.num_cells:
        raise SpikeNASError(f"position={position} needs all {config.num_cells} cells, got {cells}")
    if not 0 <= position < config.num_cells:
        raise SpikeNASError(f"position must be in 0..{config.num_cells - 1}, got {position}")
    base = fixed_params(config) + sum(
        cell_params(g, c) for j, (g, c) in enumerate(zip(cells, widths, strict=True)) if j != position
    )
    return _enumerate_params(op_param_matrix(op_set, [widths[position]]), base, len(EDGES))


@dataclass(frozen=True)
class Budget:
    """A memory budget: at most ``limit`` parameters, or ``limit`` bytes when ``bits`` is set."""

    limit: float  # parameters, or bytes if bits is given
    bits: int | None = None  # bits per parameter; None means the limit counts parameters

    def __post_init__(self) -> None:
        if not (isinstance(self.limit, (int, float)) and math.isfinite(self.limit) and self.limit > 0):
            raise SpikeNASError(f"budget must be a positive number, got {self.limit!r}")
        if self.bits is not None and not (isinstance(self.bits, int) and 1 <= self.bits <= 64):
            raise SpikeNASError(f"bits must be an integer in 1..64, got {self.bits!r}")

    def cost(self, params: int | np.ndarray) -> int | np.ndarray:
        """The budgeted quantity (parameters or bytes) of ``params`` parameters."""
        return params if self.bits is None else params_to_bytes(params, self.bits)

    def fits(self, params: int | np.ndarray) -> bool | np.ndarray:
        """Whether ``params`` parameters are within the budget (elementwise for arrays)."""
        return self.cost(params) <= self.limit

    def describe(self) -> str:
        if self.bits is None:
            return f"{self.limit:,.0f} parameters"
        return f"{self.limit:,.0f} bytes at {self.bits} bits per parameter"
