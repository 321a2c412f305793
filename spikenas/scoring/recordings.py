"""The raw recordings a score family reads: from the candidate when present, else one forward pass each batch."""

from __future__ import annotations

import math

import numpy as np

from spikenas.errors import SpikeNASError
from spikenas.scoring.recorder import Recording, record_values
from spikenas.scoring.registry import Candidate

WHAT = ("spikes", "potentials", "nodes")


def has(recording: Recording, what: str) -> bool:
    """Whether ``recording`` holds ``what`` (one of :data:`WHAT`) for every call."""
    if what == "nodes":
        return recording.nodes_recorded
    attr = "spikes" if what == "spikes" else "potential"
    return bool(recording.calls) and all(getattr(c, attr) is not None for c in recording.calls)


def candidate_recordings(candidate: Candidate, *, need: tuple[str, ...]) -> list[Recording]:
    """One :class:`Recording` per scoring batch holding everything in ``need`` (a subset of :data:`WHAT`).

    ``candidate.records`` is used when every entry holds it (a caller that scores several families of one
    candidate records once); otherwise each of ``candidate.batches`` is run through ``candidate.network``.
    :raises SpikeNASError: when neither records nor a network with batches are given.
    """
    bad = set(need) - set(WHAT)
    if bad:
        raise SpikeNASError(f"need must be a subset of {WHAT}, got {sorted(bad)}")
    records = [r for r in candidate.records if isinstance(r, Recording)]
    if records and len(records) == len(candidate.records) and all(has(r, w) for r in records for w in need):
        return records
    if candidate.network is None or not candidate.batches:
        raise SpikeNASError("this score records the network: the candidate needs its network and batches")
    bn_mode = candidate.options.get("bn_mode") or "train"
    return [
        record_values(candidate.network, b, spikes="spikes" in need, potentials="potentials" in need,
                      nodes="nodes" in need, bn_mode=bn_mode)
        for b in candidate.batches
    ]


def mean_finite(values: list[float]) -> float:
    """Mean of per-batch values; -inf when any is not finite (an undefined score stays undefined)."""
    return float(np.mean(values)) if values and all(math.isfinite(v) for v in values) else float("-inf")
