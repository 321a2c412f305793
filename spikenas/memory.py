"""Analytical memory model (SpikeNAS Eq. 6-8), computed without building a network.

``N_param = sum over layers of weights + biases`` (BatchNorm's affine weight and bias count as
parameters; running statistics do not), summed over the network's layer graph
(:func:`spikenas.layer_graph.cell_network_graph`), and the memory at ``bits`` per parameter is
``M = N_param * bits`` bits, i.e. ``ceil(N_param * bits / 8)`` bytes. The count over every cell of
an op set is vectorised and compiled with Numba from each op's layer sum (:func:`op_param_matrix`), so a
search prunes over-budget candidates before any network exists. Tests check it equals
``sum(p.numel() for p in model.parameters())``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from spikenas.deployment import (
    BUFFER_SCOPES,
    DeploymentConfig,
    cell_tables,
    enumerate_states_and_peaks,
    fixed_states_and_peak,
    memory_figures,
)
from spikenas.errors import SpikeNASError
from spikenas.layer_graph import cell_network_graph, fixed_layers
from spikenas.network import MacroConfig
from spikenas.ops import get_op, get_op_set
from spikenas.space import EDGES, Genotype


def fixed_params(config: MacroConfig) -> int:
    """Parameters outside the cells' edges: stem, downconvs, head (the sum over :func:`fixed_layers`)."""
    return sum(spec.params for spec in fixed_layers(config))


def cell_params(genotype: Genotype, config: MacroConfig, position: int) -> int:
    """Parameters of the edges of ``genotype`` in cell ``position`` (0-based) of ``config``'s network."""
    return sum(op_params(o, config, position) for o in genotype.ops)


def network_params(genotypes: Genotype | Sequence[Genotype], config: MacroConfig) -> int:
    """Exact parameter count of ``build_network(genotypes, config)``: the sum over its layer graph."""
    return cell_network_graph(genotypes, config).params


def params_to_bytes(params: int | np.ndarray, bits: int) -> int | np.ndarray:
    """Memory in bytes of ``params`` parameters at ``bits`` bits each (Eq. 8, rounded up)."""
    if isinstance(params, np.ndarray):
        return (params * bits + 7) // 8
    return math.ceil(params * bits / 8)


def op_params(op_name: str, config: MacroConfig, position: int) -> int:
    """Parameters of op ``op_name`` on an edge of cell ``position`` (0-based): the sum over its layers."""
    layers = get_op(op_name).edge_layers("edge", config.cell_widths[position], config.cell_sizes[position],
                                         config.neuron)
    return sum(spec.params for spec in layers)


def op_param_matrix(op_set: str, config: MacroConfig, positions: Sequence[int]) -> np.ndarray:
    """int64 ``[len(positions), k]``: parameters of each op of ``op_set`` on an edge of each cell position."""
    ops = get_op_set(op_set)
    return np.array([[op_params(o, config, p) for o in ops] for p in positions], dtype=np.int64)


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
    if position is None:
        return _enumerate_params(op_param_matrix(op_set, config, range(config.num_cells)), fixed_params(config),
                                 len(EDGES))
    if cells is None or len(cells) != config.num_cells:
        raise SpikeNASError(f"position={position} needs all {config.num_cells} cells, got {cells}")
    if not 0 <= position < config.num_cells:
        raise SpikeNASError(f"position must be in 0..{config.num_cells - 1}, got {position}")
    base = fixed_params(config) + sum(cell_params(g, config, j) for j, g in enumerate(cells) if j != position)
    return _enumerate_params(op_param_matrix(op_set, config, [position]), base, len(EDGES))


def smallest_network_params(
    op_set: str, config: MacroConfig, *, same_cell: bool = True, allowed: np.ndarray | None = None
) -> int:
    """Parameters of the smallest network of ``op_set``'s cells at ``config``'s widths.

    :param same_cell: one cell in every position (Alg. 1's first pass, SNASNet's random search); False
        lets every position hold its own cell (the evolution's cell space).
    :param allowed: bool ``[k**6]`` in index order: the cells a search may place (e.g.
        :func:`spikenas.space.connected_mask`); None: every cell.
    :raises SpikeNASError: if ``allowed`` has the wrong length or allows no cell.
    """
    count = len(get_op_set(op_set)) ** len(EDGES)
    if allowed is None:
        allowed = np.ones(count, dtype=bool)
    allowed = np.asarray(allowed, dtype=bool)
    if allowed.shape != (count,):
        raise SpikeNASError(f"allowed must be a bool mask of {count} cells (op set {op_set}), got {allowed.shape}")
    if not allowed.any():
        raise SpikeNASError(f"no cell of op set {op_set} is allowed")
    if same_cell:
        return int(enumerate_params(op_set, config)[allowed].min())
    cells = sum(
        int(_enumerate_params(op_param_matrix(op_set, config, [p]), 0, len(EDGES))[allowed].min())
        for p in range(config.num_cells)
    )
    return fixed_params(config) + cells


def infeasible_budget_message(budget: Budget, smallest: int, *, network: str, narrow: str) -> str:
    """The one-line explanation of a budget no network of a space fits.

    :param smallest: parameters of the space's smallest network.
    :param network: what the smallest network is, e.g. ``"op set 5O with 2 cell(s) at width 16"``.
    :param narrow: the options that make the networks smaller, e.g. ``"--width, --hidden"``.
    """
    cost = "" if budget.bits is None else f" = {budget.cost(smallest):,} bytes at {budget.bits} bits"
    return (
        f"no architecture fits the budget of {budget.describe()}: the smallest network of {network} "
        f"has {smallest:,} parameters{cost}; raise the budget or narrow the network ({narrow})"
    )


def cell_space_infeasible(
    budget: Budget | None,
    op_set: str,
    config: MacroConfig,
    *,
    same_cell: bool = True,
    allowed: np.ndarray | None = None,
    cells: str = "",
) -> str | None:
    """Why no network of ``op_set``'s cells at ``config`` fits ``budget`` (one line), or None if one fits.

    ``same_cell`` and ``allowed`` as in :func:`smallest_network_params`; ``cells`` says which cells are
    allowed in the message (e.g. ``"connected cells"``).
    """
    if budget is None:
        return None
    which = f" ({cells})" if cells else ""
    network = f"op set {op_set}{which} with {config.num_cells} cell(s) at width {config.width}"
    if budget.kind == "onchip_bytes":
        smallest, exact = smallest_onchip_bytes(budget, op_set, config, same_cell=same_cell, allowed=allowed)
        if budget.fits_cost(smallest):
            return None
        return (
            f"no architecture fits the budget of {budget.describe()}: the smallest network of {network} "
            f"takes {'' if exact else 'at least '}{smallest:,} on-chip bytes; raise the budget or narrow the "
            "network (--width, --hidden)"
        )
    smallest = smallest_network_params(op_set, config, same_cell=same_cell, allowed=allowed)
    if budget.fits(smallest):
        return None
    return infeasible_budget_message(budget, smallest, network=network, narrow="--width, --hidden")


def smallest_onchip_bytes(
    budget: Budget, op_set: str, config: MacroConfig, *, same_cell: bool = True, allowed: np.ndarray | None = None
) -> tuple[int, bool]:
    """On-chip bytes of the smallest network of ``op_set``'s cells (``same_cell`` and ``allowed`` as in
    :func:`smallest_network_params`), and whether the figure is exact: with a cell per position it is a
    lower bound (weights, states and peak buffer each at their own minimum)."""
    params = smallest_network_params(op_set, config, same_cell=same_cell, allowed=allowed)  # checks ``allowed``
    allowed = np.ones(len(get_op_set(op_set)) ** len(EDGES), dtype=bool) if allowed is None else np.asarray(allowed)
    if same_cell:
        return int(budget.cell_costs(op_set, config)[allowed].min()), True
    target = budget.target()
    states, peak = fixed_states_and_peak(config, target)
    for position in range(config.num_cells):
        cell_states, cell_peak = cell_tables(op_set, config, target, position)
        states += int(cell_states[allowed].min())
        peak = max(peak, int(cell_peak[allowed].min()))
    total = params_to_bytes(params, target.weight_bits) + params_to_bytes(states, target.state_bits) + (peak + 7) // 8
    return int(total), False


BUDGET_KINDS = ("params", "weight_bytes", "onchip_bytes")


@dataclass(frozen=True)
class Budget:
    """A memory budget of one of :data:`BUDGET_KINDS`:

    * ``params``: at most ``limit`` parameters (Eq. 6-7);
    * ``weight_bytes``: at most ``limit`` bytes of weights at ``bits`` bits each (Eq. 8);
    * ``onchip_bytes``: at most ``limit`` bytes of weights at ``bits`` + neuron state at ``state_bits``
      + the peak buffer between layers (spikes 1 bit, activations ``activation_bits``) over
      ``buffer_scope`` (:mod:`spikenas.deployment`).

    ``kind=None`` keeps the older form: ``params`` without ``bits``, ``weight_bytes`` with them.
    ``state_bits`` and ``activation_bits`` default to ``bits``.
    """

    limit: float  # parameters, or bytes for the byte kinds
    bits: int | None = None  # bits per weight; needed by the byte kinds
    kind: str | None = None  # one of BUDGET_KINDS; None: params, or weight_bytes when bits is set
    state_bits: int | None = None  # onchip_bytes: bits per membrane potential / PLIF time constant
    activation_bits: int | None = None  # onchip_bytes: bits per non-spike activation in a buffer
    buffer_scope: str = "timestep"  # onchip_bytes: buffers of one timestep, or of all T

    def __post_init__(self) -> None:
        limit = self.limit
        if isinstance(limit, bool) or not (isinstance(limit, numbers.Real) and math.isfinite(limit) and limit > 0):
            raise SpikeNASError(f"budget must be a positive finite number, got {limit!r} ({type(limit).__name__})")
        for name in ("bits", "state_bits", "activation_bits"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not (isinstance(value, numbers.Integral) and 1 <= value <= 64)
            ):
                raise SpikeNASError(f"{name} must be an integer in 1..64, got {value!r} ({type(value).__name__})")
        if self.kind is None:
            object.__setattr__(self, "kind", "params" if self.bits is None else "weight_bytes")
        if self.kind not in BUDGET_KINDS:
            raise SpikeNASError(f"budget kind must be one of {BUDGET_KINDS}, got {self.kind!r}")
        if self.kind == "params" and self.bits is not None:
            raise SpikeNASError(f"a params budget counts parameters: bits={self.bits} has no effect; drop it")
        if self.kind != "params" and self.bits is None:
            raise SpikeNASError(f"a {self.kind} budget needs bits (bits per weight)")
        if self.kind != "onchip_bytes":
            extra = [n for n in ("state_bits", "activation_bits") if getattr(self, n) is not None]
            if extra or self.buffer_scope != "timestep":
                raise SpikeNASError(
                    f"{', '.join(extra) or 'buffer_scope'} only apply to an onchip_bytes budget, not {self.kind}"
                )
        if self.buffer_scope not in BUFFER_SCOPES:
            raise SpikeNASError(f"buffer_scope must be one of {BUFFER_SCOPES}, got {self.buffer_scope!r}")

    def cost(self, params: int | np.ndarray) -> int | np.ndarray:
        """The budgeted quantity (parameters or weight bytes) of ``params`` parameters.

        :raises SpikeNASError: for an ``onchip_bytes`` budget, which depends on more than the parameters
            (use :func:`spikenas.deployment.budget_costs` / :func:`spikenas.deployment.network_cost`).
        """
        if self.kind == "onchip_bytes":
            raise SpikeNASError("an onchip_bytes budget prices whole networks: use spikenas.deployment.network_cost")
        return params if self.bits is None else params_to_bytes(params, self.bits)

    def fits(self, params: int | np.ndarray) -> bool | np.ndarray:
        """Whether ``params`` parameters are within a params or weight_bytes budget (elementwise)."""
        return self.cost(params) <= self.limit

    def fits_cost(self, cost: int | np.ndarray) -> bool | np.ndarray:
        """Whether an already priced quantity (in this budget's unit) is within the limit (elementwise)."""
        return cost <= self.limit

    def target(self) -> DeploymentConfig:
        """The deployment target this budget describes (32-bit weights for a params budget)."""
        bits = self.bits or 32
        return DeploymentConfig(
            weight_bits=bits, state_bits=self.state_bits or bits, activation_bits=self.activation_bits or bits,
            buffer_scope=self.buffer_scope,
        )

    def cell_costs(
        self,
        op_set: str,
        config: MacroConfig,
        *,
        position: int | None = None,
        cells: Sequence[Genotype] | None = None,
    ) -> np.ndarray:
        """int64 ``[k**6]``: the budgeted quantity of every cell of ``op_set`` in index order, without
        building anything; positions vary as in :func:`enumerate_params`."""
        params = enumerate_params(op_set, config, position=position, cells=cells)
        if self.kind != "onchip_bytes":
            return np.asarray(self.cost(params), dtype=np.int64)
        target = self.target()
        states, peak_bits = enumerate_states_and_peaks(op_set, config, target, position=position, cells=cells)
        return (
            params_to_bytes(params, target.weight_bits) + params_to_bytes(states, target.state_bits)
            + (peak_bits + 7) // 8
        )

    def network_cost(self, genotypes: Genotype | Sequence[Genotype], config: MacroConfig) -> int:
        """The budgeted quantity of ``build_network(genotypes, config)``, without building it."""
        if self.kind != "onchip_bytes":
            return int(self.cost(network_params(genotypes, config)))
        layers = cell_network_graph(genotypes, config).layers
        return memory_figures(layers, self.target(), config.timesteps).onchip_bytes

    def fits_network(self, genotypes: Genotype | Sequence[Genotype], config: MacroConfig) -> bool:
        """Whether ``build_network(genotypes, config)`` is within the budget."""
        return bool(self.network_cost(genotypes, config) <= self.limit)

    @property
    def unit(self) -> str:
        return "parameters" if self.kind == "params" else "bytes"

    def describe(self) -> str:
        if self.kind == "params":
            return f"{self.limit:,.0f} parameters"
        if self.kind == "weight_bytes":
            return f"{self.limit:,.0f} bytes at {self.bits} bits per parameter"
        scope = "one timestep" if self.buffer_scope == "timestep" else "all T"
        return (
            f"{self.limit:,.0f} on-chip bytes (weights at {self.bits} bits, neuron state at "
            f"{self.state_bits or self.bits} bits, peak buffer of {scope} with activations at "
            f"{self.activation_bits or self.bits} bits)"
        )


def params(cells: Genotype | Sequence[Genotype], macro: MacroConfig) -> int:
    """Parameters of the network with ``cells`` (one genotype for every position, or one per position)."""
    return network_params(cells, macro)


def bytes(cells: Genotype | Sequence[Genotype], macro: MacroConfig, *, bits: int) -> int:  # noqa: A001
    """Weight memory in bytes of the network with ``cells`` at ``bits`` bits per parameter (Eq. 8)."""
    if isinstance(bits, bool) or not (isinstance(bits, numbers.Integral) and 1 <= bits <= 64):
        raise SpikeNASError(f"bits must be an integer in 1..64, got {bits!r}")
    return int(params_to_bytes(network_params(cells, macro), bits))
