"""Architecture searches over the cell space: the request, algorithms and the library entry point.

``run_search(SearchRequest(...))`` (:mod:`spikenas.nas.request`; ``SearchConfig`` is the same class) is what
the CLI (``python -m spikenas search``) and ``spikenas.search(...)`` call; other tools call it, or an
algorithm with their own :class:`~spikenas.nas.engine.Evaluator`, directly. Each step below receives the
parts of the request it reads, not the whole request.
"""

from __future__ import annotations

import collections
import contextlib
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from spikenas import kernels
from spikenas.data import load_dataset
from spikenas.deployment import deployment_report
from spikenas.errors import SpikeNASError
from spikenas.executor import Executor, LocalExecutor
from spikenas.fingerprint import network_fingerprint
from spikenas.hardware.target import Target
from spikenas.journal import fingerprint_hash
from spikenas.layer_graph import cell_network_graph
from spikenas.memory import params_to_bytes
from spikenas.nas.calibrate import CalibrateConfig, calibrate_search, guard_margin
from spikenas.nas.consecutive import consecutive_search
from spikenas.nas.engine import CandidateRecord, Evaluator
from spikenas.nas.evaluators import ModeOptions
from spikenas.nas.evolution_run import EvolutionOptions, run_evolution
from spikenas.nas.macro import MacroOptions, macro_for
from spikenas.nas.ordering import report_ties
from spikenas.nas.pick_worth import pick_worth
from spikenas.nas.random_search import random_search
from spikenas.nas.request import (
    ALGORITHMS,
    BudgetOptions,
    DataOptions,
    RandomOptions,
    SearchConfig,
    SearchRequest,
    SpikeNASOptions,
)
from spikenas.nas.rerank import AUTO_MARGIN, RerankConfig, rerank_search
from spikenas.nas.result import SearchResult
from spikenas.nas.space_api import CellSpace
from spikenas.nas.target_filter import check_target_space
from spikenas.network import MacroConfig, build_network
from spikenas.ops import get_op_set
from spikenas.output_lock import OutputLock
from spikenas.resources import check_memory, check_memory_before_data
from spikenas.results import versions
from spikenas.space import Genotype

__all__ = [
    "ALGORITHMS",
    "PRESETS",
    "BudgetOptions",
    "CalibrateConfig",
    "CandidateRecord",
    "DataOptions",
    "Evaluator",
    "EvolutionOptions",
    "MacroOptions",
    "ModeOptions",
    "RandomOptions",
    "RerankConfig",
    "SearchConfig",
    "SearchRequest",
    "SearchResult",
    "SpikeNASOptions",
    "consecutive_search",
    "evaluate_architecture",
    "random_search",
    "run_search",
]


#: Flat fields (:meth:`SearchRequest.from_fields`) of named requests; ``--fast`` is ``PRESETS["fast"]``.
PRESETS: dict[str, dict] = {
    # Finishes in about a minute on 2 CPU cores: a narrow proxy on the embedded digits.
    "fast": dict(
        dataset="digits", op_set="3O", num_cells=2, width=4, hidden=32, timesteps=4,
        input_size=16, batch_size=32, num_batches=1,
    ),
}


def prepare(macro: MacroOptions, data: DataOptions, *, seed: int) -> tuple[MacroConfig, list]:
    """The network configuration of ``macro`` on ``data``'s dataset and its seeded scoring batches
    (``data.num_batches`` float32 tensors ``[B, C, H, W]``), memory checked before and after loading."""
    check_memory_before_data(macro.sizes(), batch_size=data.batch_size, num_batches=data.num_batches)
    dataset = load_dataset(data.dataset, data_dir=data.data_dir, split="train")
    config = macro_for(
        macro, data.dataset, in_channels=dataset.in_channels, num_classes=dataset.num_classes, native_size=dataset.size
    )
    check_memory(config, batch_size=data.batch_size, num_batches=data.num_batches)
    batches = dataset.batches(data.batch_size, data.num_batches, seed=seed, input_size=config.input_size)
    return config, batches


def describe(budget: BudgetOptions, macro: MacroConfig, record: CandidateRecord, op_set: str | None) -> dict:
    """JSON-ready description of one network: cells, parameters, bytes (at ``budget.bits``, 32 without),
    score and whether it meets the budget."""
    bits = budget.bits or 32
    limit = budget.build()
    cells = []
    for i, g in enumerate(record.cells):
        cell = {"position": i + 1, "nb201": g.to_nb201(), "ops": list(g.ops)}
        if op_set is not None and all(o in get_op_set(op_set) for o in g.ops):
            cell["index"] = g.index(op_set)
        cells.append(cell)
    return {
        "cells": cells,
        "params": record.params,
        "bits": bits,
        "bytes": int(params_to_bytes(record.params, bits)),
        "score": record.score,
        "status": record.status,
        "meets_budget": None if limit is None else limit.fits_network(record.cells, macro),
        "budget": None if limit is None else limit.describe(),
    }


def deployment_figures(
    mode: ModeOptions, budget: BudgetOptions, macro: MacroConfig, cells: tuple[Genotype, ...], images: torch.Tensor,
    *, seed: int,
) -> dict:
    """The deployment report (:mod:`spikenas.deployment`) of ``cells`` at ``budget``'s bit widths, its synops
    measured on ``images`` (the first scoring batch, ``[B, C, H, W]`` float32) with the weights the search scored
    it with (``mode``'s weight seeding, ``seed``)."""
    network = build_network(list(cells), macro, seed=seed, weight_seeding=mode.seeding())
    report = deployment_report(list(cells), macro, budget.deployment_target(), model=network, images=images)
    return report.to_dict()


def target_figures(target: Target, macro: MacroConfig, cells: tuple[Genotype, ...]) -> dict:
    """How ``cells`` sit on ``target``: its fit (per core or unit, totals) and the target's constants."""
    fit = target.fit(cell_network_graph(list(cells), macro), timesteps=macro.timesteps)
    return {**fit.to_dict(), "constants": target.to_dict()["constants"]}


def _payload(request: SearchRequest, macro: MacroConfig, t_data: float) -> dict:
    return {
        "config": request.to_dict(),
        "macro": macro.to_dict(),
        "seed": request.seed,
        "versions": versions(),
        "backend": kernels.resolve_backend(request.score.backend),
        "timings": {"data_s": t_data},
    }


def run_search(
    request: SearchRequest,
    *,
    journal: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
    rerank_dir: str | Path | None = None,
    calibrate_dir: str | Path | None = None,
) -> tuple[SearchResult, dict]:
    """Load data, run the requested algorithm, and describe the outcome.

    :param rerank_dir: progress of the multi-fidelity stage (``request.rerank``); None: beside the journal.
    :param calibrate_dir: progress of the calibration (``request.calibrate``); None: beside the journal.

    :param executor: where candidates are scored (:mod:`spikenas.executor`); None: in this process.

    :param journal: JSONL file that records every scored candidate as soon as it is finished
        (:mod:`spikenas.journal`); with ``resume`` an earlier journal of the same request is
        reused and nothing in it is scored again. Without ``resume`` an existing journal is kept
        until the search's first record, then moved to ``<journal>.previous``. The run holds an
        exclusive lock on it (``<journal>.lock``, :mod:`spikenas.output_lock`), which also covers the
        evolution state and rerank directory beside it.
    :returns: the result and a JSON-ready payload (config: ``request.to_dict()``, seed, versions, timings,
        cells, counts).
    :raises SpikeNASError: if another run holds the journal, if a resumed journal is not this
        search's or is damaged, or if no candidate got a finite score (:func:`check_some_scored`).
    """
    with contextlib.ExitStack() as held:
        if journal is not None:  # one run at a time on a journal and what lies beside it
            held.enter_context(OutputLock(journal))
        if isinstance(request.algorithm, EvolutionOptions):
            state = None if journal is None else Path(journal).with_name(Path(journal).stem + ".evolution.json")
            try:
                return run_evolution(
                    request.algorithm, macro=request.macro, data=request.data, budget=request.budget,
                    score=request.score, seed=request.seed, described=request.to_dict(), state=state, resume=resume,
                    progress=progress,
                )
            except KeyboardInterrupt as err:  # the state file is saved after every evaluation
                if state is not None and state.exists():
                    err.saved = f"the evaluations so far are in {state}; rerun with --resume"
                raise
        return _run_cell_search(request, journal=journal, resume=resume, progress=progress, executor=executor,
                                rerank_dir=rerank_dir, calibrate_dir=calibrate_dir)


def journal_fingerprint(request: SearchRequest, macro: MacroConfig) -> dict:
    """What a cell search's journal is checked against on resume: the request's flat form without its rerank
    stage and calibration (the journal's records depend on neither) and the network configuration."""
    config = {k: v for k, v in request.to_dict().items() if k != "calibrate"}
    return {"config": {**config, "rerank": None}, "macro": macro.to_dict()}


def _run_cell_search(
    request: SearchRequest,
    *,
    journal: str | Path | None,
    resume: bool,
    progress: bool,
    executor: Executor | None,
    rerank_dir: str | Path | None,
    calibrate_dir: str | Path | None = None,
) -> tuple[SearchResult, dict]:
    """:func:`run_search` for algorithms spikenas and random, its lock held."""
    if request.rerank is not None and rerank_dir is None and journal is None:
        raise SpikeNASError("rerank needs a directory for its progress: give rerank_dir or journal")
    if request.calibrate is not None and calibrate_dir is None and journal is None:
        raise SpikeNASError("calibrate needs a directory for its progress: give calibrate_dir or journal")
    t0 = time.perf_counter()
    macro, batches = prepare(request.macro, request.data, seed=request.seed)
    payload = _payload(request, macro, time.perf_counter() - t0)
    evaluator = request.mode.make_evaluator(
        macro,
        batches,
        request.score,
        seed=request.seed,
        journal=Path(journal) if journal else None,
        resume=resume,
        fingerprint=journal_fingerprint(request, macro),
    )
    with evaluator.journal_file or contextlib.nullcontext():
        return _search_and_describe(request, macro, batches, payload, evaluator, t0, journal=journal, resume=resume,
                                    progress=progress, executor=executor, rerank_dir=rerank_dir,
                                    calibrate_dir=calibrate_dir)


def _search_and_describe(
    request: SearchRequest, macro: MacroConfig, batches: list, payload: dict, evaluator: Evaluator, t0: float, *,
    journal: str | Path | None, resume: bool, progress: bool, executor: Executor | None, rerank_dir: str | Path | None,
    calibrate_dir: str | Path | None = None,
) -> tuple[SearchResult, dict]:
    """Run the algorithm with ``evaluator``, check that something scored, and fill ``payload``."""
    budget = request.budget.build()
    op_set = request.macro.op_set
    space = CellSpace(macro, op_set=op_set)
    target = request.budget.hardware()
    if target is not None:
        check_target_space(target, op_set, macro)
    if isinstance(request.algorithm, RandomOptions):
        result = random_search(
            space, evaluator, samples=request.algorithm.samples, seed=request.seed, budget=budget, progress=progress,
            executor=executor, target=target,
        )
    else:
        result = consecutive_search(space, evaluator, budget=budget, progress=progress, executor=executor,
                                    target=target)
    check_some_scored(evaluator.records)

    def network(best: CandidateRecord) -> dict:
        described = describe(request.budget, macro, best, op_set)
        described["deployment"] = deployment_figures(request.mode, request.budget, macro, best.cells, batches[0],
                                                     seed=request.seed)
        if target is not None:
            described["target"] = target_figures(target, macro, best.cells)
        return described

    payload["executor"] = (executor or LocalExecutor()).describe()
    payload["result"] = network(result.best)
    # Every evaluated record with the best score, resolved as the search resolves ties (spikenas.nas.ordering).
    resolution = evaluator.resolve_ties([r for r in evaluator.records if r.score == result.best.score])
    payload["selection"] = report_ties(
        resolution, score=request.score.name, tie_break=request.score.tie_break, bits=request.budget.bits or 32
    )
    worth = pick_worth(op_set, macro.num_cells, request.score.name, request.score.tie_break)
    if worth is not None:
        payload["selection"]["worth"] = worth.to_dict()
    # Calibration runs first: the rerank guard takes its margin from the seed noise it measures.
    if request.calibrate is not None:
        t2 = time.perf_counter()
        payload["calibration"] = calibrate_search(
            evaluator, request.calibrate, budget=budget, macro=macro, dataset=request.data.dataset,
            data_dir=request.data.data_dir, seed=request.seed,
            directory=calibrate_dir or Path(journal).with_name(Path(journal).stem + ".calibrate"),
            resume=resume, executor=executor, progress=progress,
        )
        payload["timings"]["calibrate_s"] = time.perf_counter() - t2
    if request.rerank is not None:
        t1 = time.perf_counter()
        rerank_config, margin_source = request.rerank, None
        if rerank_config.margin == AUTO_MARGIN and "calibration" in payload:
            # The seed noise measured on the user's data replaces the CIFAR-10 prior as the guard's margin.
            margin, margin_source = guard_margin(payload["calibration"])
            rerank_config = replace(rerank_config, margin=margin)
        best, payload["rerank"] = rerank_search(
            evaluator, rerank_config, budget=budget, macro=macro, dataset=request.data.dataset,
            data_dir=request.data.data_dir, seed=request.seed,
            directory=rerank_dir or Path(journal).with_name(Path(journal).stem + ".rerank"),
            resume=resume, executor=executor, progress=progress, margin_source=margin_source,
        )
        result = replace(result, best=best)
        described = network(best)
        payload["result"] = {**{k: v for k, v in described.items() if k != "deployment"}, "chosen_by": "rerank",
                             "deployment": described["deployment"]}
        payload["timings"]["rerank_s"] = time.perf_counter() - t1
    payload["fingerprint"] = {  # what train and export check this file against
        "search": fingerprint_hash(evaluator.fingerprint),  # the hash every record of the journal carries
        "network": network_fingerprint(result.best.cells, macro.to_dict(), op_set=op_set),
    }
    payload["counters"] = result.counters.to_dict()
    payload["passes"] = result.passes
    payload["timings"].update(search_s=result.seconds, total_s=time.perf_counter() - t0)
    return result, payload


def check_some_scored(records: list[CandidateRecord]) -> None:
    """Raise unless some candidate of a finished search has a finite score.

    :raises SpikeNASError: naming how many candidates there were, how many ended in each status, and
        the first failure's message (or status), when every one failed, was disconnected, had no
        neurons, or was otherwise left without a score.
    """
    if any(math.isfinite(r.score) for r in records):
        return
    statuses = collections.Counter(r.status for r in records)
    counts = ", ".join(f"{n} {status}" for status, n in statuses.most_common())
    first = next((r for r in records if r.status == "failed"), records[0] if records else None)
    why = "" if first is None else f"; first failure ({[str(g) for g in first.cells]}): {first.message or first.status}"
    raise SpikeNASError(f"no candidate was scored: {len(records)} evaluated, none with a finite score ({counts}){why}")


def evaluate_architecture(request: SearchRequest, cells: list[Genotype]) -> tuple[CandidateRecord, dict]:
    """Score one given network (one genotype per cell, or one for all) as ``request``'s search would."""
    t0 = time.perf_counter()
    num_cells = request.macro.num_cells
    if len(cells) == 1:
        cells = cells * num_cells
    if len(cells) != num_cells:
        raise SpikeNASError(f"got {len(cells)} genotypes for --cells {num_cells}: give 1 or {num_cells}")
    macro, batches = prepare(request.macro, request.data, seed=request.seed)
    payload = _payload(request, macro, time.perf_counter() - t0)
    evaluator = request.mode.make_evaluator(macro, batches, request.score, seed=request.seed)
    record = evaluator.evaluate(tuple(cells))
    payload["result"] = describe(request.budget, macro, record, request.macro.op_set)
    payload["result"]["deployment"] = deployment_figures(request.mode, request.budget, macro, record.cells, batches[0],
                                                         seed=request.seed)
    target = request.budget.hardware()
    if target is not None:
        check_target_space(target, request.macro.op_set, macro)
        payload["result"]["target"] = target_figures(target, macro, record.cells)
    payload["timings"].update(score_s=record.seconds, total_s=time.perf_counter() - t0)
    return record, payload
