"""Architecture searches over the cell space: configuration, algorithms and the library entry point.

``run_search(SearchConfig(...))`` is what the CLI (``python -m spikenas search``) calls; other
tools call it, or an algorithm with their own :class:`~spikenas.nas.engine.Evaluator`, directly.
"""

from __future__ import annotations

import collections
import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from spikenas import kernels
from spikenas.data import load_dataset
from spikenas.deployment import DeploymentConfig, deployment_report
from spikenas.errors import SpikeNASError
from spikenas.executor import Executor, LocalExecutor
from spikenas.fingerprint import network_fingerprint
from spikenas.journal import fingerprint_hash
from spikenas.memory import Budget, params_to_bytes
from spikenas.nas.consecutive import consecutive_search
from spikenas.nas.engine import CandidateRecord, Evaluator
from spikenas.nas.evaluators import MODES, make_evaluator
from spikenas.nas.evolution_run import run_evolution
from spikenas.nas.fast import FastConfig
from spikenas.nas.macro import macro_for
from spikenas.nas.ordering import report_ties
from spikenas.nas.random_search import DEFAULT_SAMPLES, random_search
from spikenas.nas.rerank import RerankConfig, rerank_search
from spikenas.nas.result import SearchResult
from spikenas.nas.space_api import CellSpace
from spikenas.network import MacroConfig, build_network
from spikenas.ops import get_op_set
from spikenas.output_lock import OutputLock
from spikenas.resources import SIZE_FIELDS, check_memory, check_memory_before_data
from spikenas.results import versions
from spikenas.scoring import ScoreConfig, get_score
from spikenas.space import Genotype

ALGORITHMS = ("spikenas", "random", "evolution")
__all__ = [
    "ALGORITHMS",
    "PRESETS",
    "CandidateRecord",
    "Evaluator",
    "SearchConfig",
    "SearchResult",
    "consecutive_search",
    "evaluate_architecture",
    "random_search",
    "run_search",
]


@dataclass(frozen=True)
class SearchConfig:
    """A complete, reproducible search request."""

    algorithm: str = "spikenas"  # spikenas (Alg. 1) or random (SNASNet)
    op_set: str = "3O"  # registered op set
    dataset: str = "digits"  # see spikenas.data.DATASETS
    data_dir: str | None = None  # where non-embedded datasets are read from
    num_cells: int = 2  # cells in the network, 1..3
    width: int = 16  # channels of the first cell
    hidden: int = 256  # units of the head's first Linear
    timesteps: int = 5  # T
    input_size: int | None = None  # images resized to this; None: 16 for digits, else native
    batch_size: int = 64  # samples per scoring batch (B)
    num_batches: int = 1  # batches averaged per score
    samples: int = DEFAULT_SAMPLES  # random search only
    budget: float | None = None  # parameters, or bytes when bits is set; None: no budget
    bits: int | None = None  # bits per parameter for a byte budget
    budget_kind: str | None = None  # params, weight_bytes or onchip_bytes; None: params, weight_bytes with bits
    state_bits: int | None = None  # bits per neuron state (on-chip budget and deployment report); None: bits
    activation_bits: int | None = None  # bits per non-spike activation buffer (ditto); None: bits
    buffer_scope: str = "timestep"  # peak buffer of one timestep or of all T (ditto)
    score: ScoreConfig = field(default_factory=ScoreConfig)  # kernel, reduction, BN mode, backend
    mode: str = "exact"  # exact: a fresh network per candidate; fast: shared work (spikenas.nas.fast)
    weight_seeding: str | None = None  # network or per_edge; None: network in exact mode, per_edge in fast
    proxy_batch: int | None = None  # fast mode: rank each pass on this many samples first; None: no proxy
    rescore_fraction: float = 0.05  # fast mode with a proxy: a round of full-size re-scoring, as a fraction
    race_top: int = 10  # fast mode with a proxy: more rounds while one changes the top race_top; 0: one round
    seed: int = 0  # data batches, weight initialisation and random sampling
    space: str = "cell"  # evolution only: cell (SpikeNAS) or autosnn (AutoSNN's block space)
    fitness: str = "score"  # evolution only: score (training-free) or autosnn (super-network accuracy)
    population: int = 20  # evolution only: architectures per iteration (AutoSNN: 20)
    iterations: int = 20  # evolution only: populations evaluated, the first random (AutoSNN: 20)
    supernet_epochs: int = 10  # evolution with fitness autosnn: super-network training epochs
    spike_target: float = 110_000.0  # evolution: spikes in the fitness's spike term (AutoSNN: 110,000)
    train_images: int | None = None  # evolution with fitness autosnn: training images used (None: all)
    rerank: RerankConfig | None = None  # opt-in multi-fidelity stage (spikenas.nas.rerank); None: off

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise SpikeNASError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        get_op_set(self.op_set)
        if self.mode not in MODES:
            raise SpikeNASError(f"mode must be one of {MODES}, got {self.mode!r}")
        self.fast_config()
        if self.bits is not None and self.budget is None:
            raise SpikeNASError("bits needs a budget: --bits sets the width of the byte budget given by --budget")
        if self.budget_kind is not None and self.budget is None:
            raise SpikeNASError(f"budget_kind {self.budget_kind!r} needs a budget (--budget)")
        self.budget_obj()
        self.deployment_target()
        for name in ("batch_size", "num_batches", "samples"):
            if getattr(self, name) < 1:
                raise SpikeNASError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.algorithm == "evolution" and self.fitness == "score" and get_score(self.score.name).kernel is None:
            raise SpikeNASError(
                f"evolution's score fitness needs a spike-kernel score (e.g. sahd), got score {self.score.name!r}"
            )
        if self.batch_size < 2:
            raise SpikeNASError(f"batch_size must be >= 2 for a kernel matrix, got {self.batch_size}")
        if self.rerank is not None and self.algorithm == "evolution":
            raise SpikeNASError("rerank needs algorithm spikenas or random, got algorithm 'evolution'")

    def fast_config(self) -> FastConfig:
        """The fast mode's options."""
        return FastConfig(proxy_batch=self.proxy_batch, rescore_fraction=self.rescore_fraction,
                          race_top=self.race_top)

    def budget_obj(self) -> Budget | None:
        if self.budget is None:
            return None
        if self.budget_kind != "onchip_bytes":
            return Budget(self.budget, self.bits, kind=self.budget_kind)
        return Budget(self.budget, self.bits, kind=self.budget_kind, state_bits=self.state_bits,
                      activation_bits=self.activation_bits, buffer_scope=self.buffer_scope)

    def deployment_target(self) -> DeploymentConfig:
        """Bit widths of the deployment report: ``bits`` (32 without) for weights, state and activations
        unless ``state_bits`` / ``activation_bits`` say otherwise."""
        bits = self.bits or 32
        return DeploymentConfig(weight_bits=bits, state_bits=self.state_bits or bits,
                                activation_bits=self.activation_bits or bits, buffer_scope=self.buffer_scope)

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> SearchConfig:
        return replace(self, **changes)


PRESETS: dict[str, dict] = {
    # Finishes in about a minute on 2 CPU cores: a narrow proxy on the embedded digits.
    "fast": dict(
        dataset="digits", op_set="3O", num_cells=2, width=4, hidden=32, timesteps=4,
        input_size=16, batch_size=32, num_batches=1,
    ),
}


def prepare(config: SearchConfig) -> tuple[MacroConfig, list]:
    """The macro configuration and the seeded scoring batches of a request."""
    sizes = {k: getattr(config, k) for k in SIZE_FIELDS}
    check_memory_before_data(sizes, batch_size=config.batch_size, num_batches=config.num_batches)
    dataset = load_dataset(config.dataset, data_dir=config.data_dir, split="train")
    macro = macro_for(
        config, in_channels=dataset.in_channels, num_classes=dataset.num_classes, native_size=dataset.size
    )
    check_memory(macro, batch_size=config.batch_size, num_batches=config.num_batches)
    batches = dataset.batches(config.batch_size, config.num_batches, seed=config.seed, input_size=macro.input_size)
    return macro, batches


def describe(config: SearchConfig, macro: MacroConfig, record: CandidateRecord, op_set: str | None) -> dict:
    """JSON-ready description of one network: cells, parameters, bytes, score."""
    bits = config.bits or 32
    budget = config.budget_obj()
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
        "meets_budget": None if budget is None else budget.fits_network(record.cells, macro),
        "budget": None if budget is None else budget.describe(),
    }


def deployment_figures(
    config: SearchConfig, macro: MacroConfig, cells: tuple[Genotype, ...], images: torch.Tensor
) -> dict:
    """The deployment report (:mod:`spikenas.deployment`) of ``cells``, its synops measured on ``images``
    (the first scoring batch, ``[B, C, H, W]`` float32) with the weights the search scored it with."""
    seeding = config.weight_seeding or ("per_edge" if config.mode == "fast" else "network")
    network = build_network(list(cells), macro, seed=config.seed, weight_seeding=seeding)
    report = deployment_report(list(cells), macro, config.deployment_target(), model=network, images=images)
    return report.to_dict()


def _payload(config: SearchConfig, macro: MacroConfig, t_data: float) -> dict:
    return {
        "config": config.to_dict(),
        "macro": macro.to_dict(),
        "seed": config.seed,
        "versions": versions(),
        "backend": kernels.resolve_backend(config.score.backend),
        "timings": {"data_s": t_data},
    }


def run_search(
    config: SearchConfig,
    *,
    journal: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
    rerank_dir: str | Path | None = None,
) -> tuple[SearchResult, dict]:
    """Load data, run the configured algorithm, and describe the outcome.

    :param rerank_dir: progress of the multi-fidelity stage (``config.rerank``); None: beside the journal.

    :param executor: where candidates are scored (:mod:`spikenas.executor`); None: in this process.

    :param journal: JSONL file that records every scored candidate as soon as it is finished
        (:mod:`spikenas.journal`); with ``resume`` an earlier journal of the same configuration is
        reused and nothing in it is scored again. Without ``resume`` an existing journal is kept
        until the search's first record, then moved to ``<journal>.previous``. The run holds an
        exclusive lock on it (``<journal>.lock``, :mod:`spikenas.output_lock`), which also covers the
        evolution state and rerank directory beside it.
    :returns: the result and a JSON-ready payload (config, seed, versions, timings, cells, counts).
    :raises SpikeNASError: if another run holds the journal, if a resumed journal is not this
        search's or is damaged, or if no candidate got a finite score (:func:`check_some_scored`).
    """
    with contextlib.ExitStack() as held:
        if journal is not None:  # one run at a time on a journal and what lies beside it
            held.enter_context(OutputLock(journal))
        if config.algorithm == "evolution":
            state = None if journal is None else Path(journal).with_name(Path(journal).stem + ".evolution.json")
            try:
                return run_evolution(config, state=state, resume=resume, progress=progress)
            except KeyboardInterrupt as err:  # the state file is saved after every evaluation
                if state is not None and state.exists():
                    err.saved = f"the evaluations so far are in {state}; rerun with --resume"
                raise
        return _run_cell_search(config, journal=journal, resume=resume, progress=progress, executor=executor,
                                rerank_dir=rerank_dir)


def _run_cell_search(
    config: SearchConfig,
    *,
    journal: str | Path | None,
    resume: bool,
    progress: bool,
    executor: Executor | None,
    rerank_dir: str | Path | None,
) -> tuple[SearchResult, dict]:
    """:func:`run_search` for algorithms spikenas and random, its lock held."""
    if config.rerank is not None and rerank_dir is None and journal is None:
        raise SpikeNASError("rerank needs a directory for its progress: give rerank_dir or journal")
    t0 = time.perf_counter()
    macro, batches = prepare(config)
    payload = _payload(config, macro, time.perf_counter() - t0)
    evaluator = make_evaluator(
        config.mode,
        macro,
        batches,
        config.score,
        seed=config.seed,
        fast=config.fast_config(),
        weight_seeding=config.weight_seeding,
        journal=Path(journal) if journal else None,
        resume=resume,
        fingerprint={"config": config.replace(rerank=None).to_dict(), "macro": macro.to_dict()},
    )
    with evaluator.journal_file or contextlib.nullcontext():
        return _search_and_describe(config, macro, batches, payload, evaluator, t0, journal=journal, resume=resume,
                                    progress=progress, executor=executor, rerank_dir=rerank_dir)


def _search_and_describe(
    config: SearchConfig, macro: MacroConfig, batches: list, payload: dict, evaluator: Evaluator, t0: float, *,
    journal: str | Path | None, resume: bool, progress: bool, executor: Executor | None, rerank_dir: str | Path | None,
) -> tuple[SearchResult, dict]:
    """Run the algorithm with ``evaluator``, check that something scored, and fill ``payload``."""
    budget = config.budget_obj()
    space = CellSpace(macro, op_set=config.op_set)
    if config.algorithm == "spikenas":
        result = consecutive_search(space, evaluator, budget=budget, progress=progress, executor=executor)
    else:
        result = random_search(
            space, evaluator, samples=config.samples, seed=config.seed, budget=budget, progress=progress,
            executor=executor,
        )
    check_some_scored(evaluator.records)
    payload["executor"] = (executor or LocalExecutor()).describe()
    payload["result"] = describe(config, macro, result.best, config.op_set)
    payload["result"]["deployment"] = deployment_figures(config, macro, result.best.cells, batches[0])
    # Every evaluated record with the best score, resolved as the search resolves ties (spikenas.nas.ordering).
    resolution = evaluator.resolve_ties([r for r in evaluator.records if r.score == result.best.score])
    payload["selection"] = report_ties(
        resolution, score=config.score.name, tie_break=config.score.tie_break, bits=config.bits or 32
    )
    if config.rerank is not None:
        t1 = time.perf_counter()
        best, payload["rerank"] = rerank_search(
            evaluator, config.rerank, budget=budget, macro=macro, dataset=config.dataset, data_dir=config.data_dir,
            seed=config.seed, directory=rerank_dir or Path(journal).with_name(Path(journal).stem + ".rerank"),
            resume=resume, executor=executor, progress=progress,
        )
        result = replace(result, best=best)
        payload["result"] = {**describe(config, macro, best, config.op_set), "chosen_by": "rerank"}
        payload["result"]["deployment"] = deployment_figures(config, macro, best.cells, batches[0])
        payload["timings"]["rerank_s"] = time.perf_counter() - t1
    payload["fingerprint"] = {  # what train and export check this file against
        "search": fingerprint_hash(evaluator.fingerprint),  # the hash every record of the journal carries
        "network": network_fingerprint(result.best.cells, macro.to_dict(), op_set=config.op_set),
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


def evaluate_architecture(config: SearchConfig, cells: list[Genotype]) -> tuple[CandidateRecord, dict]:
    """Score one given network (one genotype per cell, or one for all) under ``config``."""
    t0 = time.perf_counter()
    if len(cells) == 1:
        cells = cells * config.num_cells
    if len(cells) != config.num_cells:
        raise SpikeNASError(f"got {len(cells)} genotypes for --cells {config.num_cells}: give 1 or {config.num_cells}")
    macro, batches = prepare(config)
    payload = _payload(config, macro, time.perf_counter() - t0)
    evaluator = make_evaluator(
        config.mode, macro, batches, config.score, seed=config.seed, weight_seeding=config.weight_seeding
    )
    record = evaluator.evaluate(tuple(cells))
    payload["result"] = describe(config, macro, record, config.op_set)
    payload["result"]["deployment"] = deployment_figures(config, macro, record.cells, batches[0])
    payload["timings"].update(score_s=record.seconds, total_s=time.perf_counter() - t0)
    return record, payload
