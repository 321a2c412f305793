"""Structural scores: functions of the cells alone, computed without building a network."""

from __future__ import annotations

from spikenas.memory import network_params
from spikenas.ops import get_op
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
