"""SNASNet's random search: the same sampled cell in every position, best score wins (ties: see
:meth:`~spikenas.nas.engine.Evaluator.break_ties`).

Cells are drawn uniformly with a seeded generator and redrawn while edge (0,3) holds the zero op
(as SNASNet does); repeated draws are answered from the evaluator's memo. SNASNet ignores memory,
so a budget only decides ``meets_budget`` in the result.
"""

from __future__ import annotations

import time

import numpy as np

from spikenas.errors import SpikeNASError
from spikenas.executor import Executor, prefetch
from spikenas.memory import Budget, cell_space_infeasible
from spikenas.nas.engine import Evaluator, Leaders
from spikenas.nas.result import SearchResult
from spikenas.nas.space_api import CellSpace, cell_space_of
from spikenas.nas.target_filter import no_candidate_message, target_mask
from spikenas.ops import get_op, get_op_set
from spikenas.progress import Progress
from spikenas.space import EDGES, Genotype, digits_table, num_genotypes

DEFAULT_SAMPLES = 5000


def sample_cell(rng: np.random.Generator, op_set: str) -> Genotype:
    """One uniformly drawn cell whose edge (0,3) is not the zero op."""
    ops = get_op_set(op_set)
    if all(get_op(o).is_zero for o in ops):
        raise SpikeNASError(f"op set {op_set} has only zero ops: no cell connects input to output")
    edge03 = EDGES.index((0, 3))
    while True:
        genotype = Genotype.from_index(int(rng.integers(num_genotypes(op_set))), op_set)
        if not get_op(genotype.ops[edge03]).is_zero:
            return genotype


def drawable_mask(op_set: str) -> np.ndarray:
    """bool ``[k**6]``: the cells :func:`sample_cell` can draw (edge (0,3) not the zero op)."""
    zero = [i for i, o in enumerate(get_op_set(op_set)) if get_op(o).is_zero]
    return ~np.isin(digits_table(op_set)[:, EDGES.index((0, 3))], zero)


def random_search(
    space: CellSpace,
    evaluator: Evaluator,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    budget: Budget | None = None,
    progress: bool = True,
    executor: Executor | None = None,
    target: object | None = None,
) -> SearchResult:
    """Score ``samples`` random cells of ``space`` (same cell in every position) and keep the best.

    :param executor: where to score the draws (see :mod:`spikenas.executor`); same result without one.
    :param target: a hardware target (:mod:`spikenas.hardware.target`): draws it does not run are redrawn (the
        same seeded sequence of draws, those the target runs kept).
    :raises SpikeNASError: if ``samples < 1``, or if no drawable network fits ``budget`` (then no pick
        could meet it; a budget that some networks fit only decides ``meets_budget``).
    """
    if samples < 1:
        raise SpikeNASError(f"samples must be >= 1, got {samples}")
    op_set = cell_space_of(space, evaluator, strategy="random search")
    message = cell_space_infeasible(
        budget, op_set, evaluator.config, allowed=drawable_mask(op_set), cells="edge (0,3) not zero"
    )
    if message is not None:
        raise SpikeNASError(message)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    if target is None:
        draws = [sample_cell(rng, op_set) for _ in range(samples)]
    else:
        cfg = evaluator.config
        cells = [Genotype.from_index(i, op_set) for i in range(num_genotypes(op_set))]
        runs, reasons = target_mask(target, [(g,) * cfg.num_cells for g in cells], cfg)
        if not (runs & drawable_mask(op_set)).any():
            raise SpikeNASError(no_candidate_message(target, reasons, what=f"op set {op_set} (same cell everywhere)"))
        draws = []
        while len(draws) < samples:
            genotype = sample_cell(rng, op_set)
            if runs[genotype.index(op_set)]:
                draws.append(genotype)
    if executor is not None:
        prefetch(evaluator, [(g,) * evaluator.config.num_cells for g in draws], executor=executor, progress=progress)
    leaders = Leaders()
    with Progress(samples, "random search", enabled=progress) as bar:
        for genotype in draws:
            leaders.offer(evaluator.evaluate((genotype,) * evaluator.config.num_cells))
            bar.update(1, best=f"{max(leaders.first.score, -1e300):.3f}")
    best = evaluator.break_ties(leaders.tied)
    return SearchResult(
        algorithm="random",
        best=best,
        counters=evaluator.counters,
        seconds=time.perf_counter() - start,
        meets_budget=None if budget is None else budget.fits_network(best.cells, evaluator.config),
    )
