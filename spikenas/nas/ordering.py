"""The order in which a search ranks candidates, in one place.

A search ranks candidates by their score. Candidates tied at the top score are ordered by the tie-break
scores of :attr:`~spikenas.scoring.ScoreConfig.tie_break`, each maximised in turn over the candidates still
tied. Among the candidates still tied after every tie-break (the tied set a search reports) the final rule
chooses: the fewest parameters, then a seeded draw (:func:`draw_key`, a hash of the cells and the search
seed). The draw stands where no measured signal is left: on the SpikeNAS-Bench dev folds the first-seen
(enumeration-order) choice among such ties picked below a random choice on most folds (docs/selection.md),
and a draw is a random choice that a seed reproduces. Written out, the order is the lexicographic order of
``(score, tie_break[0], ..., -params, -draw_key)``.

The search engine (:class:`~spikenas.nas.engine.Evaluator` ``break_ties`` / ``resolve_ties`` and
:class:`Leaders`) and the selection study (:mod:`spikenas.analyze.selection`) both call this module, so
the study measures exactly the order a search uses: :func:`resolve_ties` chooses among tied candidates,
:func:`search_order` lists candidates in that order (a search's top-k, for a multi-fidelity stage), and
:func:`ordering_rank` ranks a whole set of candidates the same way (for rank correlations). The final rule is a
choice among candidates the ordering leaves tied, not a ranking signal, so :func:`ordering_rank` includes its
parameter count only on request and never the draw.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np

from spikenas.errors import SpikeNASError
from spikenas.memory import params_to_bytes
from spikenas.space import Genotype

#: What chooses among candidates still tied after every tie-break, and why (docs/selection.md).
FINAL_RULE = "fewest_params"
DRAW = "seeded_draw"  # decided_by when several tied candidates have the fewest parameters
FINAL_RULE_DOC = (
    "among the candidates still tied after every tie-break, the one with the fewest parameters (the smallest "
    "network among equally ranked ones, which serves a memory-constrained user), then a draw seeded by the "
    "search seed (no tie-break left has shown signal, so the choice among them is uniform and reproducible)"
)


def cell_text(cell: Genotype | str) -> str:
    """A cell's NAS-Bench-201 string; a string (a gene of another space, e.g. an AutoSNN block) as it is."""
    return cell if isinstance(cell, str) else cell.to_nb201()


def draw_key(cells: Sequence[Genotype | str], seed: int) -> int:
    """A uniform pseudo-random 64-bit integer fixed by ``cells`` (their :func:`cell_text`) and ``seed``:
    the final rule keeps the candidate with the smallest one, so the choice does not depend on which other
    candidates are compared (a search resolves ties per pass and across passes with the same outcome)."""
    text = f"{int(seed)}|" + "+".join(cell_text(g) for g in cells)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class Ranked(Protocol):
    """What the ordering reads from a candidate: its score, parameter count and cells."""

    score: float  # training-free score, higher is better; -inf for failed or disconnected candidates
    params: int  # parameter count (memory model)
    cells: tuple[Genotype | str, ...]  # genotype (or gene) per position (the final rule's draw hashes them)


R = TypeVar("R", bound=Ranked)


class Leaders(Generic[R]):
    """The candidates tied at the top score so far, in the order they were offered."""

    def __init__(self) -> None:
        self.tied: list[R] = []

    def offer(self, record: R) -> None:
        """Take ``record`` into account: a higher score replaces the leaders, an equal one joins them."""
        if not self.tied or record.score > self.tied[0].score:
            self.tied = [record]
        elif record.score == self.tied[0].score and record not in self.tied:
            self.tied.append(record)

    @property
    def first(self) -> R | None:
        """The first-seen leader, or None before any offer."""
        return self.tied[0] if self.tied else None


@dataclass
class Resolution(Generic[R]):
    """How a set of candidates tied at the top score was resolved."""

    pick: R  # the chosen candidate
    tied: list[R]  # the candidates tied at the top score, in first-seen order
    stages: list[tuple[str, int]]  # per tie-break applied: (its name, candidates still tied after it)
    entering: list[list[R]]  # per tie-break applied: the candidates it was applied to
    remaining: list[R]  # candidates still tied after every tie-break (the final rule chose among them)
    decided_by: str  # "score" (no tie), the tie-break that left one, FINAL_RULE, or DRAW
    smallest: list[R] | None = None  # candidates of ``remaining`` with the fewest parameters (the draw chose)

    def summary(self) -> dict:
        """JSON-ready counts: tied at the top, left after each tie-break, and what decided."""
        return {
            "tied_at_top": len(self.tied),
            "stages": [{"tie_break": name, "left": left} for name, left in self.stages],
            "tied_after_tie_breaks": len(self.remaining),
            "with_fewest_params": len(self.smallest) if self.smallest is not None else 1,
            "decided_by": self.decided_by,
            "final_rule": FINAL_RULE_DOC,
        }


def _comparable(value: float) -> float:
    """NaN (an undefined tie-break value) ranks below every number, as -inf does."""
    value = float(value)
    return float("-inf") if math.isnan(value) else value


def resolve_ties(
    tied: Sequence[R], tie_break: Sequence[str], value: Callable[[R, str], float], *, seed: int = 0
) -> Resolution[R]:
    """Choose among candidates with equal scores as a search does.

    :param tied: candidates with equal ``score``, in first-seen (enumeration) order; at least one.
    :param tie_break: tie-break score names, applied in turn (each keeps the candidates with its maximum).
    :param value: ``value(candidate, name)``: the tie-break score ``name`` of a candidate; called only for
        candidates still tied when ``name`` is applied (a costly tie-break is computed for few candidates).
    :param seed: the search seed, which fixes the final rule's draw (:func:`draw_key`).
    :raises SpikeNASError: if ``tied`` is empty or its scores differ.
    """
    tied = list(tied)
    if not tied:
        raise SpikeNASError("resolve_ties needs at least one candidate, got tied=[]")
    if len({r.score for r in tied}) > 1:
        scores = sorted({r.score for r in tied})
        raise SpikeNASError(f"resolve_ties needs records with equal scores, got scores {scores}")
    if len(tied) == 1:
        return Resolution(tied[0], tied, [], [], tied, "score", tied)
    left, stages, entering = tied, [], []
    if tied[0].score != float("-inf"):  # failed or disconnected candidates are not worth ordering
        for name in tie_break:
            entering.append(left)
            values = [_comparable(value(r, name)) for r in left]
            best = max(values)
            left = [r for r, v in zip(left, values, strict=True) if v == best]
            stages.append((name, len(left)))
            if len(left) == 1:
                return Resolution(left[0], tied, stages, entering, left, name, left)
    fewest = min(r.params for r in left)
    smallest = [r for r in left if r.params == fewest]
    if len(smallest) == 1:
        return Resolution(smallest[0], tied, stages, entering, left, FINAL_RULE, smallest)
    pick = min(smallest, key=lambda r: draw_key(r.cells, seed))
    return Resolution(pick, tied, stages, entering, left, DRAW, smallest)


def search_order(
    candidates: Sequence[R],
    tie_break: Sequence[str],
    value: Callable[[R, str], float],
    *,
    seed: int = 0,
    limit: int | None = None,
) -> list[R]:
    """``candidates`` in the search's order, best first: score, then each tie-break in turn, then the final rule
    (fewest parameters, then the seeded draw). Its first element is what :func:`resolve_ties` picks among the
    candidates tied at the top score, and every prefix is the search's top-k (e.g. for a multi-fidelity stage).

    :param candidates: in first-seen order; their scores may differ.
    :param value: as in :func:`resolve_ties`; asked only for candidates still tied where the order of the first
        ``limit`` candidates depends on it (candidates past ``limit`` keep a coarser order).
    :param limit: how many leading candidates must be fully ordered; None: all.
    """
    keys: list[Callable[[R], float]] = [lambda r: r.score]
    keys += [lambda r, name=name: _comparable(value(r, name)) for name in tie_break]
    keys += [lambda r: -r.params, lambda r: -draw_key(r.cells, seed)]
    final = 1 + len(tie_break)  # the first key of the final rule

    def order(group: list[R], stage: int, need: int) -> list[R]:
        if len(group) < 2 or need <= 0 or stage == len(keys):
            return group
        if 0 < stage < final and group[0].score == float("-inf"):
            stage = final  # failed or disconnected candidates get no tie-break, as in resolve_ties
        values = [keys[stage](r) for r in group]
        out: list[R] = []
        for v in sorted(set(values), reverse=True):
            bucket = [r for r, w in zip(group, values, strict=True) if w == v]
            out += order(bucket, stage + 1, need - len(out))
        return out

    candidates = list(candidates)
    return order(candidates, 0, len(candidates) if limit is None else limit)


def report_ties(resolution: Resolution, *, score: str, tie_break: Sequence[str], bits: int) -> dict:
    """JSON-ready account of a search's choice, for results.json: the score and tie-breaks, how many candidates
    tied at the top and after each tie-break, what decided, and the whole set the tie-breaks left tied (each
    with its NAS-Bench-201 cells, parameters, bytes at ``bits`` bits and tie-break scores).

    :param resolution: of candidates with ``cells`` (genotypes, or genes of another space), ``params`` and
        ``tie_scores``, as the search engine's records have.
    """
    return {
        "score": score,
        "tie_break": list(tie_break),
        **resolution.summary(),
        "tied_set": [
            {
                "cells": [cell_text(g) for g in r.cells],
                "params": int(r.params),
                "bytes": int(params_to_bytes(r.params, bits)),
                "tie_scores": {k: v if math.isfinite(v) else str(v) for k, v in r.tie_scores.items()},
                "chosen": r is resolution.pick,
            }
            for r in resolution.remaining
        ],
    }


def ordering_rank(score: np.ndarray, tie_values: Sequence[np.ndarray], params: np.ndarray | None = None) -> np.ndarray:
    """Dense ranks of candidates in the search's order: the lexicographic order of
    ``(score, tie_values[0], ...)``, and ``-params`` last when ``params`` is given (the final rule). Higher is
    better; exact ties share a rank (the first-seen rule that settles them in a search carries no information
    about the candidates, so rank correlations leave them tied).

    :param score: float ``[N]`` scores (NaN ranks with -inf, below every finite value).
    :param tie_values: float ``[N]`` arrays, one per tie-break score, in tie-break order.
    :param params: int ``[N]`` parameter counts, or None to leave the ties of the tie-breaks tied.
    :returns: int64 ``[N]`` ranks, 1 for the lowest.
    """
    score = np.asarray(score, dtype=np.float64)
    columns = [score, *(np.asarray(v, dtype=np.float64) for v in tie_values)]
    if params is not None:
        columns.append(-np.asarray(params, dtype=np.float64))
    for column in columns:
        if column.shape != score.shape or column.ndim != 1:
            shapes = [c.shape for c in columns]
            raise SpikeNASError(f"ordering_rank needs 1-D arrays of one length, got shapes {shapes}")
    columns = [np.where(np.isnan(c), -np.inf, c) for c in columns]
    if score.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(columns[::-1])  # the last key given to lexsort is the primary one
    keys = np.stack(columns, axis=1)[order]
    new = np.concatenate(([True], (keys[1:] != keys[:-1]).any(axis=1)))
    ranks = np.empty(score.size, dtype=np.int64)
    ranks[order] = np.cumsum(new)
    return ranks
