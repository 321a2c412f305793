"""AutoSNN's evolutionary search over any :class:`~spikenas.nas.space_api.SearchSpace`.

Iteration 0 evaluates a random population; every later iteration takes the ``top_k`` fittest
architectures evaluated so far and makes ``mutations`` mutants (probability ``mutation_prob`` per
position) and ``crossovers`` single-point crossovers of them, filled up with random ones to
``population``. Children that are invalid, over the memory budget, or already evaluated (or already
in the new population) are re-drawn and counted, never evaluated: the budget is a hard constraint and
no architecture is evaluated twice. The fitness comes from a callable ``evaluate(arch) -> Evaluation``
(see :mod:`spikenas.autosnn.fitness`). With a ``state`` file the search saves itself after every
evaluation and ``resume`` continues it with the same outcome as an uninterrupted run.

The search returns the record that every search's ordering ranks first (:mod:`spikenas.nas.ordering`),
with the fitness as the score: the highest fitness, then the tie-break scores in turn (a training-free
fitness's), then the final rule (fewest parameters, then a draw seeded by the search seed).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from spikenas.errors import SpikeNASError
from spikenas.memory import Budget, params_to_bytes
from spikenas.nas.ordering import Resolution, report_ties, resolve_ties
from spikenas.nas.space_api import Key, SearchSpace
from spikenas.progress import Progress
from spikenas.results import write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """What a fitness source says about one architecture."""

    fitness: float  # higher is better; -inf for a failed or singular candidate
    spikes: float  # mean spikes per sample over T and all spiking layers
    metrics: dict = field(default_factory=dict)  # e.g. {"accuracy": ...} or {"score": ...}
    status: str = "ok"  # ok | singular | failed


@dataclass
class EvolutionRecord:
    """One evaluated architecture."""

    key: Key  # the space's gene tuple
    params: int  # exact parameter count
    fitness: float  # the search objective
    spikes: float  # AutoSNN's spike count
    metrics: dict  # source-specific values (accuracy, score)
    status: str  # ok | singular | failed
    iteration: int  # iteration that first evaluated it
    seconds: float = 0.0  # evaluation time
    message: str = ""  # why it failed, if it did

    def to_json(self) -> dict:
        return asdict(self) | {"key": list(self.key)}

    @classmethod
    def from_json(cls, data: dict) -> EvolutionRecord:
        data = dict(data)
        data["key"] = tuple(data["key"])
        data["fitness"] = float(data["fitness"])
        data["metrics"] = {k: float(v) if isinstance(v, str) else v for k, v in data["metrics"].items()}
        return cls(**data)

    def objective(self, metric: str) -> float:
        """``fitness``, or one of ``metrics``; -inf when absent."""
        value = self.fitness if metric == "fitness" else self.metrics.get(metric, -math.inf)
        return float(value) if value is not None else -math.inf


@dataclass
class EvolutionCounters:
    """What the search did."""

    evaluated: int = 0  # architectures evaluated in this run
    resumed: int = 0  # records loaded from an earlier run's state
    failed: int = 0  # evaluations that raised (recorded with fitness -inf)
    invalid: int = 0  # drawn children refused by the space's validity check
    pruned: int = 0  # drawn children over the memory budget (never built)
    duplicates: int = 0  # drawn children already evaluated or already in the population

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvolutionResult:
    """Outcome of an evolutionary search."""

    best: EvolutionRecord  # highest fitness, ties resolved by the search ordering (resolution)
    records: list[EvolutionRecord]  # every evaluated architecture, in evaluation order
    pareto: list[EvolutionRecord]  # non-dominated records over (metric up, spikes down, params down)
    history: list[dict]  # per iteration: new evaluations, best fitness so far
    counters: EvolutionCounters
    seconds: float  # wall time of this run
    meets_budget: bool | None = None  # None when no budget was given
    resolution: Resolution[RankedRecord] | None = None  # how the records tied at the top fitness were resolved
    tie_break: tuple[str, ...] = ()  # the tie-break scores the resolution applied in turn

    def selection(self, *, bits: int = 32) -> dict:
        """JSON-ready account of the final choice, the ``selection`` block every search writes to its results
        (:func:`~spikenas.nas.ordering.report_ties`, with ``fitness`` as the score): how many records tied at
        the top fitness and after each tie-break, what decided, and the tied set."""
        if self.resolution is None:
            raise SpikeNASError("this result has no resolution of its final choice (records only)")
        return report_ties(self.resolution, score="fitness", tie_break=self.tie_break, bits=bits)


@dataclass(eq=False)
class RankedRecord:
    """An evaluated record as the search ordering (:mod:`spikenas.nas.ordering`) sees it: its fitness as the
    score, its parameter count, and the architecture's cells (genotypes; an AutoSNN network's block names),
    which the final rule's draw hashes. Equality is identity: distinct records are distinct candidates."""

    record: EvolutionRecord
    score: float  # the record's fitness; -inf for NaN
    params: int
    cells: tuple  # the decoded architecture: Genotype per cell of the cell space, or the space's genes
    tie_scores: dict[str, float] = field(default_factory=dict)  # tie-break scores computed so far


def final_choice(
    records: Sequence[EvolutionRecord],
    space: SearchSpace,
    *,
    seed: int = 0,
    tie_break: Sequence[str] = (),
    tie_value: Callable[[object, str], float] | None = None,
) -> Resolution[RankedRecord]:
    """The record an evolutionary search returns, chosen as every search chooses (:func:`resolve_ties`): among the
    records with the highest fitness, the tie-break scores in turn, then the fewest parameters, then a draw
    seeded by ``seed`` (never the first seen: that rule chose below a random choice on most SpikeNAS-Bench dev
    folds, docs/selection.md).

    :param records: evaluated records in evaluation order; at least one. Failed ones (fitness -inf) compete only
        when no record succeeded.
    :param tie_break: tie-break score names; ``tie_value(arch, name)`` gives a decoded architecture's score
        ``name``, asked only for records still tied when it is applied.
    :raises SpikeNASError: no records, or tie-breaks without ``tie_value``.
    """
    if not records:
        raise SpikeNASError("final_choice needs at least one evaluated record, got none")
    if tie_break and tie_value is None:
        raise SpikeNASError(f"tie_break {tuple(tie_break)} needs tie_value(arch, name) to compute them")
    scores = [-math.inf if math.isnan(r.fitness) else float(r.fitness) for r in records]
    top = max(scores)
    tied = [
        RankedRecord(r, s, int(r.params), tuple(space.decode(r.key)))
        for r, s in zip(records, scores, strict=True)
        if s == top
    ]

    def value(candidate: RankedRecord, name: str) -> float:
        if name not in candidate.tie_scores:
            candidate.tie_scores[name] = float(tie_value(space.decode(candidate.record.key), name))
        return candidate.tie_scores[name]

    return resolve_ties(tied, tuple(tie_break), value, seed=seed)


def pareto_front(records: Sequence[EvolutionRecord], *, metric: str = "fitness") -> list[EvolutionRecord]:
    """Records not dominated in (``metric`` higher, spikes lower, params lower), in input order.

    Records whose metric is -inf (failed, singular) are never on the front.
    """
    points = [(r.objective(metric), -r.spikes, -r.params) for r in records]
    front = []
    for i, (r, p) in enumerate(zip(records, points, strict=True)):
        if p[0] == -math.inf:
            continue
        dominated = any(
            all(a >= b for a, b in zip(q, p, strict=True)) and q != p for j, q in enumerate(points) if j != i
        )
        if not dominated:
            front.append(r)
    return front


def _top(records: Sequence[EvolutionRecord], k: int) -> list[EvolutionRecord]:
    """The ``k`` fittest records (stable: earlier records win ties), failed ones excluded."""
    ok = [r for r in records if r.fitness > -math.inf]
    return sorted(ok, key=lambda r: -r.fitness)[:k]


class _Search:
    """State of one evolutionary search (kept together so it can be saved and resumed)."""

    def __init__(self, space: SearchSpace, budget: Budget | None, seed: int, max_tries: int) -> None:
        self.space, self.budget, self.max_tries = space, budget, max_tries
        self.rng = np.random.default_rng(seed)
        self.memo: dict[Key, EvolutionRecord] = {}
        self.iteration = 0
        self.pending: list[Key] = []
        self.history: list[dict] = []
        self.counters = EvolutionCounters()

    def admit(self, arch: object, taken: set[Key]) -> Key | None:
        """The key of ``arch`` if it may join the population, else None (and counted)."""
        key = self.space.key(arch)
        if key in self.memo or key in taken:
            self.counters.duplicates += 1
            return None
        if not self.space.is_valid(arch):
            self.counters.invalid += 1
            return None
        if self.budget is not None and not self.space.fits_budget(self.budget, arch):
            self.counters.pruned += 1
            return None
        return key

    def draw(self, make: Callable[[], object], count: int, taken: set[Key], out: list[Key]) -> None:
        added, tries = 0, 0
        while added < count and tries < self.max_tries * max(count, 1):
            tries += 1
            key = self.admit(make(), taken)
            if key is not None:
                taken.add(key)
                out.append(key)
                added += 1

    def next_population(self, *, population: int, top_k: int, mutations: int, crossovers: int, p: float) -> list[Key]:
        space, rng = self.space, self.rng
        taken: set[Key] = set()
        out: list[Key] = []
        parents = [space.decode(r.key) for r in _top(list(self.memo.values()), top_k)] if self.iteration else []
        if parents:
            self.draw(lambda: space.mutate(parents[int(rng.integers(len(parents)))], rng, p=p), mutations, taken, out)

            def cross() -> object:
                a, b = rng.integers(len(parents), size=2)
                return space.crossover(parents[int(a)], parents[int(b)], rng)

            self.draw(cross, crossovers, taken, out)
        self.draw(lambda: space.sample(rng), population - len(out), taken, out)
        return out

    def to_json(self, fingerprint: dict) -> dict:
        return {
            "fingerprint": fingerprint,
            "iteration": self.iteration,
            "pending": [list(k) for k in self.pending],
            "rng": self.rng.bit_generator.state,
            "records": [r.to_json() for r in self.memo.values()],
            "history": self.history,
            "counters": self.counters.to_dict(),
        }

    def load(self, data: dict) -> None:
        self.iteration = int(data["iteration"])
        self.pending = [tuple(k) for k in data["pending"]]
        self.rng.bit_generator.state = data["rng"]
        self.memo = {r.key: r for r in (EvolutionRecord.from_json(x) for x in data["records"])}
        self.history = list(data["history"])
        self.counters.resumed = len(self.memo)


def evolution_search(
    space: SearchSpace,
    evaluate: Callable[[object], Evaluation],
    *,
    population: int = 20,
    iterations: int = 20,
    top_k: int = 10,
    mutations: int = 10,
    crossovers: int = 10,
    mutation_prob: float = 0.2,
    budget: Budget | None = None,
    seed: int = 0,
    metric: str = "fitness",
    state: str | Path | None = None,
    resume: bool = False,
    fingerprint: dict | None = None,
    max_tries: int = 200,
    progress: bool = True,
    tie_break: Sequence[str] = (),
    tie_value: Callable[[object, str], float] | None = None,
) -> EvolutionResult:
    """Evolve architectures of ``space`` (AutoSNN's settings are the defaults).

    :param evaluate: fitness source, called once per distinct valid in-budget architecture.
    :param metric: first Pareto objective: ``fitness`` or a key of the sources' ``metrics``.
    :param state: JSON file saved after every evaluation; with ``resume`` an existing one whose
        ``fingerprint`` matches is continued.
    :param max_tries: draws allowed per wanted child before giving up on it (a small or tight space).
    :param tie_break: scores ordering, in turn, the records tied at the top fitness when the final choice is
        made (:func:`final_choice`); ``tie_value(arch, name)`` computes them.
    :raises SpikeNASError: bad options, tie-breaks without ``tie_value``, a budget that no architecture of the
        space fits (naming the smallest one), a state file of another search, or no valid architecture within
        the budget among the draws of the first population.
    """
    for name, value, low in (("population", population, 1), ("iterations", iterations, 1), ("top_k", top_k, 1),
                             ("mutations", mutations, 0), ("crossovers", crossovers, 0), ("max_tries", max_tries, 1)):
        if value < low:
            raise SpikeNASError(f"{name} must be >= {low}, got {value}")
    if mutations + crossovers > population:
        raise SpikeNASError(
            f"mutations + crossovers ({mutations} + {crossovers}) must not exceed population {population}"
        )
    if not 0.0 <= mutation_prob <= 1.0:
        raise SpikeNASError(f"mutation_prob must be in [0, 1], got {mutation_prob}")
    if tie_break and tie_value is None:
        raise SpikeNASError(f"tie_break {tuple(tie_break)} needs tie_value(arch, name) to compute them")
    infeasible = space.infeasible(budget)
    if infeasible is not None:
        raise SpikeNASError(infeasible)
    start = time.perf_counter()
    fingerprint = json.loads(json.dumps(fingerprint or {}))
    search = _Search(space, budget, seed, max_tries)
    path = Path(state) if state else None
    if path is not None and resume and path.exists():
        data = json.loads(path.read_text())
        if data.get("fingerprint") != fingerprint:
            raise SpikeNASError(
                f"cannot resume from {path}: it was written by a different search configuration "
                "(delete it or run without --resume)"
            )
        search.load(data)
    else:
        search.pending = search.next_population(
            population=population, top_k=top_k, mutations=mutations, crossovers=crossovers, p=mutation_prob
        )
        if not search.pending:
            raise SpikeNASError(
                f"no valid architecture of the {space.name} space within the budget "
                f"({budget.describe() if budget else 'none'}) in {max_tries * population} random draws"
            )

    def save() -> None:
        if path is not None:
            write_json(path, search.to_json(fingerprint))

    with Progress(population * iterations, "evolution", enabled=progress) as bar:
        if search.memo:
            bar.update(len(search.memo))
        while search.iteration < iterations:
            for key in search.pending:
                if key in search.memo:
                    continue
                search.memo[key] = _evaluate(space, evaluate, key, search.iteration, search.counters)
                save()
                best = _top(list(search.memo.values()), 1)
                bar.update(1, best=f"{best[0].fitness:.4g}" if best else "-")
            best = _top(list(search.memo.values()), 1)
            search.history.append({
                "iteration": search.iteration,
                "population": len(search.pending),
                "new": sum(1 for k in search.pending if search.memo[k].iteration == search.iteration),
                "evaluated": len(search.memo),
                "best_fitness": best[0].fitness if best else -math.inf,
                "best": list(best[0].key) if best else None,
            })
            search.iteration += 1
            search.pending = []
            if search.iteration < iterations:
                search.pending = search.next_population(
                    population=population, top_k=top_k, mutations=mutations, crossovers=crossovers, p=mutation_prob
                )
                if not search.pending:
                    log.warning("no new admissible architecture left; stopping after %d iterations", search.iteration)
                    search.iteration = iterations
            save()
    records = list(search.memo.values())
    resolution = final_choice(records, space, seed=seed, tie_break=tie_break, tie_value=tie_value)
    best = resolution.pick.record
    return EvolutionResult(
        best=best,
        records=records,
        pareto=pareto_front(records, metric=metric),
        history=search.history,
        counters=search.counters,
        seconds=time.perf_counter() - start,
        meets_budget=None if budget is None else space.fits_budget(budget, space.decode(best.key)),
        resolution=resolution,
        tie_break=tuple(tie_break),
    )


def _evaluate(
    space: SearchSpace, evaluate: Callable[[object], Evaluation], key: Key, iteration: int, counters: EvolutionCounters
) -> EvolutionRecord:
    arch = space.decode(key)
    params = space.params(arch)
    start = time.perf_counter()
    try:
        ev = evaluate(arch)
        fitness, spikes = float(ev.fitness), float(ev.spikes)
        record = EvolutionRecord(key, params, fitness, spikes, dict(ev.metrics), ev.status, iteration)
        counters.evaluated += 1
    except (RuntimeError, SpikeNASError) as err:
        log.warning("candidate %s failed: %s", key, err)
        counters.failed += 1
        record = EvolutionRecord(key, params, -math.inf, 0.0, {}, "failed", iteration, message=str(err))
    record.seconds = time.perf_counter() - start
    return record


def describe_record(
    space: SearchSpace, record: EvolutionRecord, *, bits: int = 32, budget: Budget | None = None
) -> dict:
    """JSON-ready description of one evaluated architecture."""
    return {
        "arch": space.describe(space.decode(record.key)),
        "key": list(record.key),
        "fitness": record.fitness,
        **record.metrics,
        "spikes": record.spikes,
        "params": record.params,
        "bits": bits,
        "bytes": int(params_to_bytes(record.params, bits)),
        "meets_budget": None if budget is None else space.fits_budget(budget, space.decode(record.key)),
        "status": record.status,
        "iteration": record.iteration,
    }
