"""SpikeNAS's fast memory-aware search (Alg. 1): one cell everywhere, then cell by cell.

Pass 1 enumerates every cell of the op set and puts it in every position. Pass ``i`` (``i = 2..n``)
enumerates cell ``i`` with the cells before it fixed to the best network so far and the cells
after it as in that network (Alg. 1 as printed leaves the last enumerated cell in place; keeping
the best is what its text describes). The memory model prices every candidate first; candidates
over budget are counted as pruned and never built. The best score over all passes wins; candidates
tied at the top are ordered by the tie-break scores of the score configuration, then the first
seen wins, so the result is deterministic for a given seed. An evaluator with
``evaluate_many`` (fast mode, :mod:`spikenas.nas.fast`) receives each pass's in-budget
candidates at once, to share work across them; on an executor that splits shared work (Ray) each
pass is sharded by the op on edge (0,1), each shard shares work on its worker, and the records
equal those of the whole pass scored in this process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from spikenas.errors import SpikeNASError
from spikenas.executor import Executor, check_shardable, prefetch, prefetch_pass
from spikenas.memory import Budget, cell_space_infeasible, enumerate_params
from spikenas.nas.engine import CandidateRecord, Evaluator, Leaders
from spikenas.nas.result import SearchResult
from spikenas.nas.space_api import CellSpace, cell_space_of
from spikenas.nas.target_filter import no_candidate_message, target_mask
from spikenas.progress import Progress
from spikenas.space import Genotype, num_genotypes


def _records(evaluator: Evaluator, candidates: list[tuple[tuple, int]]) -> Iterator[CandidateRecord]:
    """Records of a pass's candidates in enumeration order: all at once through the evaluator's
    ``evaluate_many`` when it shares work across candidates (fast mode), else one by one."""
    if hasattr(evaluator, "evaluate_many"):
        yield from evaluator.evaluate_many([c for c, _ in candidates], params=[p for _, p in candidates])
        return
    for cells, params in candidates:
        yield evaluator.evaluate(cells, params=params)


def consecutive_search(
    space: CellSpace,
    evaluator: Evaluator,
    *,
    budget: Budget | None = None,
    progress: bool = True,
    executor: Executor | None = None,
    target: object | None = None,
) -> SearchResult:
    """Run Alg. 1 over ``space`` (its op set, one cell position after another) with ``evaluator``.

    :param executor: where to score each pass (see :mod:`spikenas.executor`); passes are its sync
        points and the result (best, scores, counters, journal order) is the same as without one.
        An evaluator with ``evaluate_many`` (fast mode) uses it only if it ``splits_shared_work``
        (:class:`~spikenas.executor.RayExecutor`; a plain :class:`~spikenas.executor.LocalExecutor`
        leaves each pass whole, which shares the most work in this process).

    :raises SpikeNASError: if no candidate of the first pass fits ``budget``, or if a fast-mode
        evaluator with a proxy (``proxy_batch``) is given an executor that splits shared work: the
        proxy keeps the top fraction of a whole pass, which shards cannot reproduce.
    :param target: a hardware target (:mod:`spikenas.hardware.target`): candidates it does not run are pruned
        with those over budget, before any is built (:func:`spikenas.nas.target_filter.target_mask`).
    """
    op_set = cell_space_of(space, evaluator, strategy="Alg. 1")
    start = time.perf_counter()
    shared_work = hasattr(evaluator, "evaluate_many")
    if shared_work and not getattr(executor, "splits_shared_work", False):
        executor = None  # the pass is scored whole in this process
    if shared_work and executor is not None:
        check_shardable(evaluator)
    cfg, count = evaluator.config, num_genotypes(op_set)
    genotypes = [Genotype.from_index(i, op_set) for i in range(count)]
    best: CandidateRecord | None = None
    passes = []
    for position in [None, *range(1, cfg.num_cells)]:
        if position is None:
            params = enumerate_params(op_set, cfg)
        else:
            params = enumerate_params(op_set, cfg, position=position, cells=best.cells)
        if budget is None:
            fits = params >= 0
        else:  # priced without building: parameters, weight bytes or on-chip bytes
            fixed = None if best is None else best.cells
            fits = budget.fits_cost(budget.cell_costs(op_set, cfg, position=position, cells=fixed))
        if position is None and not fits.any():
            raise SpikeNASError(cell_space_infeasible(budget, op_set, cfg))
        if target is not None:
            pass_cells = [(g,) * cfg.num_cells if best is None else best.cells[:position] + (g,) +
                          best.cells[position + 1 :] for g in genotypes]
            runs, reasons = target_mask(target, pass_cells, cfg)
            if position is None and not (fits & runs).any():
                raise SpikeNASError(no_candidate_message(target, reasons, what=f"op set {op_set} at {cfg.num_cells} "
                                                         f"cell(s), width {cfg.width}"))
            fits = fits & runs
        label = "pass 1 (all cells)" if position is None else f"pass {position + 1} (cell {position + 1})"
        base = None if best is None else best.cells
        if executor is not None:
            keep = [i for i in range(count) if fits[i]]
            todo = [
                (genotypes[i],) * cfg.num_cells if base is None
                else base[:position] + (genotypes[i],) + base[position + 1 :]
                for i in keep
            ]
            fetch = prefetch_pass if shared_work else prefetch
            fetch(evaluator, todo, params=[int(params[i]) for i in keep], executor=executor, progress=progress)
        candidates = []
        for index, genotype in enumerate(genotypes):
            if not fits[index]:
                evaluator.counters.pruned += 1
            elif base is None:
                candidates.append(((genotype,) * cfg.num_cells, int(params[index])))
            else:
                candidates.append((base[:position] + (genotype,) + base[position + 1 :], int(params[index])))
        leaders = Leaders()
        with Progress(len(candidates), f"{label}", enabled=progress) as bar:
            for record in _records(evaluator, candidates):
                leaders.offer(record)
                bar.update(1, best=f"{max(leaders.first.score, -1e300):.3f}")
        pass_best = evaluator.break_ties(leaders.tied)
        if best is None or pass_best.score > best.score:
            best = pass_best
        elif pass_best.score == best.score:
            best = evaluator.break_ties([best, pass_best])
        passes.append(
            {
                "pass": len(passes) + 1,
                "position": "all" if position is None else position + 1,
                "candidates": count,
                "in_budget": int(fits.sum()),
                "best_of_pass": pass_best.to_json(),
            }
        )
    return SearchResult(
        algorithm="spikenas",
        best=best,
        counters=evaluator.counters,
        seconds=time.perf_counter() - start,
        meets_budget=None if budget is None else budget.fits_network(best.cells, cfg),
        passes=passes,
    )
