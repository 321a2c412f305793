"""Structural scores: functions of the cells alone, computed without building a network."""

from __future__ import annotations

from functools import lru_cache

from spikenas.layers import NEURON_KINDS
from spikenas.memory import network_params
from spikenas.neuron import NeuronConfig
from spikenas.ops import OpSpec, get_op
from spikenas.scoring.registry import Candidate, register_score
from spikenas.space import EDGES, Genotype


def parametric(op_name: str) -> bool:
    """Whether op ``op_name`` holds weights (a convolution)."""
    return get_op(op_name).params(1) > 0


def live_parametric_edges(genotype: Genotype) -> int:
    """Edges of ``genotype`` holding weights (convolutions) that lie on an input-to-output path."""
    return sum(live and parametric(o) for o, live in zip(genotype.ops, genotype.live_edges(), strict=True))


def live_skips(genotype: Genotype) -> int:
    """Weight-free, non-zero edges (skips, pools) of ``genotype`` on input-to-output paths."""
    return sum(live and not parametric(o) for o, live in zip(genotype.ops, genotype.live_edges(), strict=True))


def conv_depth(genotype: Genotype) -> int:
    """Most weight-holding edges on any input-to-output path of live edges (0 if disconnected)."""
    live = genotype.live_edges()
    depth = [0, -1, -1, -1]  # -1: node not reached
    for (src, dst), op, ok in zip(EDGES, genotype.ops, live, strict=True):
        if ok and depth[src] >= 0:
            depth[dst] = max(depth[dst], depth[src] + int(parametric(op)))
    return max(depth[3], 0)


@register_score(
    "params",
    doc="""Parameter count of the network from the memory model: the baseline every score must beat. At a
    fixed macro it counts conv edges, alive or not.""",
)
def _params(candidate: Candidate) -> float:
    return float(network_params(list(candidate.cells), candidate.macro))


@register_score(
    "live_convs",
    doc="""Weight-holding edges on input-to-output paths, summed over cells: the parameter count with dead
    convolutions removed.""",
)
def _live_convs(candidate: Candidate) -> float:
    return float(sum(live_parametric_edges(g) for g in candidate.cells))


@register_score(
    "conv_depth",
    doc="""Longest input-to-output path in weight-holding edges, summed over cells: the number of conv
    layers stacked in series, which is what a spiking network's accuracy in this space grows with.""",
)
def _conv_depth(candidate: Candidate) -> float:
    return float(sum(conv_depth(g) for g in candidate.cells))


@register_score(
    "depth_skip",
    doc="""conv_depth + 0.1 x live weight-free edges (residual shortcuts), summed over cells: conv_depth's order
    between depths is kept (at most 0.6 is added) and its ties are broken in favour of cells with shortcuts.""",
)
def _depth_skip(candidate: Candidate) -> float:
    return float(sum(conv_depth(g) + 0.1 * live_skips(g) for g in candidate.cells))


@lru_cache(maxsize=256)
def _spec_threshold(spec: OpSpec, neuron: NeuronConfig) -> float | None:
    neurons = [s.neuron for s in spec.edge_layers("op", 1, 1, neuron) if s.kind in NEURON_KINDS]
    return float(neurons[0].v_threshold) if neurons else None


def op_threshold(op_name: str, neuron: NeuronConfig) -> float | None:
    """Firing threshold of the first spiking neuron of op ``op_name`` with ``neuron``'s settings (None when the
    op has no spiking neuron), read from the op's layers (cached per op and neuron config)."""
    return _spec_threshold(get_op(op_name), neuron)


def threshold_rise(genotype: Genotype, neuron: NeuronConfig) -> float:
    """Covariance, over the live edges of ``genotype`` whose op holds a spiking neuron, between the edge's layer
    position (weight-holding edges on the longest live path from the cell input to the edge's source node) and
    its neuron's firing threshold; 0 with fewer than two such edges or a single threshold. Positive when the
    thresholds rise along the conv chain. Rounded to 1e-9."""
    live = genotype.live_edges()
    depth = [0, -1, -1, -1]  # EDGES are ordered so that every edge into a node comes before those out of it
    positions, thresholds = [], []
    for (src, dst), op, ok in zip(EDGES, genotype.ops, live, strict=True):
        if not ok:
            continue
        threshold = op_threshold(op, neuron)
        if threshold is not None:
            positions.append(depth[src])
            thresholds.append(threshold)
        depth[dst] = max(depth[dst], depth[src] + int(parametric(op)))
    if len(positions) < 2:
        return 0.0
    mean_p, mean_t = sum(positions) / len(positions), sum(thresholds) / len(thresholds)
    cov = sum((p - mean_p) * (t - mean_t) for p, t in zip(positions, thresholds, strict=True)) / len(positions)
    return round(cov, 9)  # equal covariances reached in different edge orders tie exactly, as a tie-break needs


@register_score(
    "live_skips",
    doc="""Weight-free, non-zero edges (skips, pools) on input-to-output paths, summed over cells: residual
    shortcuts beside the conv chain. Within groups of equal conv_depth, more shortcuts trained slightly better on
    every fold of the SpikeNAS-Bench dev split (Kendall tau 0.08-0.17); among the few cells threshold_rise leaves
    tied its sign changes between folds, so it is no default tie-break (docs/selection.md).""",
)
def _live_skips(candidate: Candidate) -> float:
    return float(sum(live_skips(g) for g in candidate.cells))


@register_score(
    "threshold_rise",
    doc="""Covariance between layer position and firing threshold over a cell's live spiking edges, summed over
    cells: positive when low-threshold LIFs come first and high-threshold ones deeper. Among SpikeNAS-Bench cells
    of equal conv_depth, cells whose thresholds rise along the conv chain trained better (within-group Kendall
    tau about 0.37, positive on every fold; docs/selection.md). Zero in op sets with a single threshold, where it
    leaves every tie as it is.""",
)
def _threshold_rise(candidate: Candidate) -> float:
    return float(sum(threshold_rise(g, candidate.macro.neuron) for g in candidate.cells))
