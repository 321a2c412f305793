"""Candidate evaluation shared by every search algorithm.

:class:`Evaluator` turns a tuple of cell genotypes into a scored record: it refuses disconnected
cells without building them, builds the network with a fixed weight seed, scores it, memoises
identical networks, and appends every record to a journal (:mod:`spikenas.journal`), flushed as
soon as the candidate is finished, so an interrupted search resumes without rescoring anything
(``--resume``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from spikenas.errors import SpikeNASError
from spikenas.journal import Journal
from spikenas.memory import network_params
from spikenas.nas.ordering import Leaders, Resolution, resolve_ties  # noqa: F401  (searches import Leaders here)
from spikenas.network import MacroConfig, build_network
from spikenas.scoring import ScoreConfig, needs_network, score_candidate
from spikenas.space import Genotype

log = logging.getLogger(__name__)
Cells = tuple[Genotype, ...]


@dataclass
class CandidateRecord:
    """One evaluated network."""

    cells: Cells  # genotype of each cell position
    params: int  # parameter count (memory model)
    score: float  # training-free score; -inf for disconnected, singular or failed candidates
    status: str  # ok | singular | disconnected | failed
    seconds: float = 0.0  # build + score time
    message: str = ""  # why it failed, if it did
    proxy_score: float | None = None  # fast mode: score on the cheap proxy that ranked it, if one did
    proxy_pass: str | None = None  # fast mode with a proxy: key of the screened pass it belongs to
    tie_scores: dict[str, float] = field(default_factory=dict)  # tie-break scores computed for it, by name

    def to_json(self) -> dict:
        data = {
            "cells": [g.to_nb201() for g in self.cells],
            "params": self.params,
            "score": self.score if self.score != float("-inf") else "-inf",
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "message": self.message,
        }
        if self.proxy_score is not None:
            data["proxy_score"] = self.proxy_score if self.proxy_score != float("-inf") else "-inf"
        if self.proxy_pass is not None:
            data["proxy_pass"] = self.proxy_pass
        if self.tie_scores:
            data["tie_scores"] = {k: v if v != float("-inf") else "-inf" for k, v in self.tie_scores.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> CandidateRecord:
        return cls(
            cells=tuple(Genotype.from_nb201(s) for s in data["cells"]),
            params=int(data["params"]),
            score=float(data["score"]),
            status=data["status"],
            seconds=float(data.get("seconds", 0.0)),
            message=data.get("message", ""),
            proxy_score=None if data.get("proxy_score") is None else float(data["proxy_score"]),
            proxy_pass=None if data.get("proxy_pass") is None else str(data["proxy_pass"]),
        )


@dataclass
class Counters:
    """What an evaluator did."""

    scored: int = 0  # networks built and scored in this run
    resumed: int = 0  # records taken from the journal of an earlier run
    memo_hits: int = 0  # repeated networks answered from memory
    disconnected: int = 0  # candidates refused because a cell's input cannot reach its output
    failed: int = 0  # candidates whose build or score raised
    pruned: int = 0  # candidates over budget, never built (counted by the algorithms)
    screened: int = 0  # fast mode: candidates ranked out by the proxy, never scored at full size

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evaluator:
    """Scores candidates of one macro configuration on fixed batches.

    :param batches: float ``[B, C, H, W]`` image batches, the same for every candidate.
    :param seed: weight-initialisation seed of every candidate network.
    :param journal: JSONL file receiving every record; with ``resume`` its records are reused.
    """

    config: MacroConfig
    batches: list[torch.Tensor]
    score_config: ScoreConfig
    seed: int = 0
    journal: Path | None = None
    resume: bool = False
    fingerprint: dict = field(default_factory=dict)  # identifies the search in the journal header
    counters: Counters = field(default_factory=Counters)
    weight_seeding: str = "network"  # build_network's weight_seeding: network, or per_edge (as fast mode)

    def __post_init__(self) -> None:
        self._memo: dict[Cells, CandidateRecord] = {}
        self._parked: dict[Cells, CandidateRecord] = {}  # scored elsewhere (spikenas.executor.prefetch)
        self._order: dict[Cells, None] = {}  # candidates in the order the search first asked for them
        self._shipped: Evaluator | None = None  # the detached copy sent to workers (see shipped())
        self._journal: Journal | None = None
        if self.journal is None:
            return
        self.journal = Path(self.journal)
        # Without resume nothing is written until the first record: an existing journal stays intact
        # while arguments are checked and data is loaded (spikenas.journal.Journal).
        self._journal = Journal(self.journal, self.fingerprint, resume=self.resume)
        for number, data in enumerate(self._journal.resumed, start=2):
            try:
                record = CandidateRecord.from_json(data)
            except (ValueError, KeyError, TypeError) as err:
                raise SpikeNASError(f"{self.journal}, line {number}: not a candidate record ({err})") from None
            self._memo[record.cells] = record
        self.counters.resumed = len(self._memo)

    @property
    def journal_file(self) -> Journal | None:
        """The open journal (:class:`spikenas.journal.Journal`), or None without one; ``with`` it around a
        search to close it and to tell an interrupt how many records it holds."""
        return self._journal

    def _append(self, record: CandidateRecord) -> None:
        if self._journal is not None:
            self._journal.append(record.to_json())

    def _append_all(self, records: list[CandidateRecord]) -> None:
        """Journal ``records`` with one write (a unit that is kept or lost together)."""
        if self._journal is not None and records:
            self._journal.append_many([r.to_json() for r in records])

    def evaluate(self, cells: Cells, *, params: int | None = None) -> CandidateRecord:
        """Score the network with these cells (memoised)."""
        cells = tuple(cells)
        self._asked(cells)
        if cells in self._memo:
            self.counters.memo_hits += 1
            return self._memo[cells]
        if cells in self._parked:  # journaled when it was parked
            record = self._parked.pop(cells)
            if record.status == "failed":
                self.counters.failed += 1
            else:
                self.counters.scored += 1
            self._memo[cells] = record
            return record
        if params is None:
            params = network_params(cells, self.config)
        start = time.perf_counter()
        if not all(g.is_connected() for g in cells):
            self.counters.disconnected += 1
            record = CandidateRecord(cells, params, float("-inf"), "disconnected")
        else:
            try:
                result = self._score(cells, self.score_config)
                record = CandidateRecord(cells, params, result.score, result.status)
                self.counters.scored += 1
            except (RuntimeError, SpikeNASError) as err:
                log.warning("candidate %s failed: %s", [str(g) for g in cells], err)
                self.counters.failed += 1
                record = CandidateRecord(cells, params, float("-inf"), "failed", message=str(err))
        record.seconds = time.perf_counter() - start
        self._memo[cells] = record
        self._append(record)
        return record

    def tie_score(self, record: CandidateRecord, name: str) -> float:
        """Score ``name`` of an evaluated candidate (kept in ``record.tie_scores``)."""
        if name not in record.tie_scores:
            record.tie_scores[name] = self._score(record.cells, self.score_config.for_score(name)).score
        return record.tie_scores[name]

    def _score(self, cells: Cells, config: ScoreConfig):
        """Build the network only for scores that run it, and score it."""
        network = None
        if needs_network(config.name):
            network = build_network(list(cells), self.config, seed=self.seed, weight_seeding=self.weight_seeding)
        return score_candidate(cells, network, self.batches, config=config, macro=self.config, seed=self.seed)

    def resolve_ties(self, tied: list[CandidateRecord]) -> Resolution[CandidateRecord]:
        """How :mod:`spikenas.nas.ordering` resolves ``tied`` (records with equal scores, in search order):
        the scores of ``score_config.tie_break`` in turn, then the final rule (fewest parameters, then a draw
        seeded by ``seed``).

        A coarse score (a structural count, say) ties many candidates at the top; the tie-break
        scores are computed for those candidates only.
        """
        return resolve_ties(tied, self.score_config.tie_break, self.tie_score, seed=self.seed)

    def break_ties(self, tied: list[CandidateRecord]) -> CandidateRecord:
        """The one of ``tied`` (records with equal scores, in search order) that the search chooses
        (:meth:`resolve_ties`)."""
        return self.resolve_ties(tied).pick

    def detached(self) -> Evaluator:
        """A journal-less, memo-less copy with fresh counters, to score candidates in another process
        (:mod:`spikenas.executor`); subclasses with more constructor options override it."""
        return replace(self, journal=None, resume=False, counters=Counters(), fingerprint={})

    def shipped(self) -> Evaluator:
        """The detached copy sent to workers, made once per evaluator so an object store holds it once."""
        if self._shipped is None:
            self._shipped = self.detached()
        return self._shipped

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_shipped"] = None
        state["_journal"] = None  # only this process writes the journal
        return state

    def is_known(self, cells: Cells) -> bool:
        """Whether ``evaluate(cells)`` would answer without scoring (memoised, resumed or parked)."""
        return cells in self._memo or cells in self._parked

    def park(self, records: list[CandidateRecord]) -> None:
        """Journal records scored elsewhere at once (as they arrive) and hold them until ``evaluate``
        asks for them; they are counted then, in the search's own order. Records already known are
        ignored."""
        new = [r for r in records if r.cells not in self._memo and r.cells not in self._parked]
        self._append_all(new)
        for record in new:
            self._parked[record.cells] = record

    def _asked(self, cells: Cells) -> None:
        """Note that the search asked for ``cells`` (the order of :attr:`records`)."""
        self._order.setdefault(cells, None)

    @property
    def records(self) -> list[CandidateRecord]:
        """Every distinct candidate evaluated, in the order the search first asked for it, then any
        resumed from the journal that it has not asked for; the journal's own order (records scored in
        workers are journaled as they arrive) never enters."""
        asked = [self._memo[c] for c in self._order if c in self._memo]
        return asked + [r for c, r in self._memo.items() if c not in self._order]
