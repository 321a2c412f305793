"""What a search returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from spikenas.nas.engine import CandidateRecord, Counters


@dataclass
class SearchResult:
    """The chosen network and how it was found."""

    algorithm: str  # registry name of the search algorithm
    best: CandidateRecord  # the chosen network
    counters: Counters  # candidates scored, pruned, memoised, ...
    seconds: float  # wall time of the search (without data loading)
    meets_budget: bool | None = None  # None when no budget was given
    passes: list[dict] = field(default_factory=list)  # per pass of Alg. 1: position, counts, best
    payload: dict = field(default_factory=dict)  # what the command line writes to results.json (run_search fills it)

    @property
    def candidates_seen(self) -> int:
        c = self.counters
        return c.scored + c.resumed + c.memo_hits + c.disconnected + c.failed + c.pruned
