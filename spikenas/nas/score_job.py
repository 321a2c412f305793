"""One scoring run from JSON-ready arguments: the sweep task (:mod:`spikenas.sweep`) that scores a network."""

from __future__ import annotations

from spikenas.nas import SearchRequest, evaluate_architecture
from spikenas.scoring import ScoreConfig
from spikenas.space import Genotype


def score_task(*, cells: list[str], search: dict, seed: int = 0) -> dict:
    """Score one network under a search request (``spikenas.nas.evaluate_architecture``).

    :param search: flat fields of a :class:`~spikenas.nas.request.SearchRequest` except ``score`` and ``seed``
        (:meth:`~spikenas.nas.request.SearchRequest.from_fields`), plus an optional ``score`` dict of
        :class:`~spikenas.scoring.ScoreConfig` fields.
    """
    fields = dict(search)
    score = ScoreConfig(**fields.pop("score", {}))
    request = SearchRequest.from_fields(**fields, score=score, seed=seed)
    record, payload = evaluate_architecture(request, [Genotype.from_nb201(c) for c in cells])
    return {"score": record.score, "status": record.status, "params": record.params, "message": record.message}
