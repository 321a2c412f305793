"""Which evaluator a search mode uses: :class:`~spikenas.nas.engine.Evaluator` (a fresh network per
candidate) or :class:`~spikenas.nas.fast.SharedEvaluator` (a pass's candidates share their work)."""

from __future__ import annotations

from spikenas.errors import SpikeNASError
from spikenas.nas.engine import Evaluator
from spikenas.nas.fast import FastConfig, SharedEvaluator
from spikenas.scoring import needs_network

MODES = ("exact", "fast")


def make_evaluator(
    mode: str, *args, fast: FastConfig | None = None, weight_seeding: str | None = None, **kwargs
) -> Evaluator:
    """An evaluator for ``mode``: ``exact`` builds a fresh network per candidate (weights seeded per
    network unless ``weight_seeding='per_edge'``); ``fast`` shares work (always per-edge seeding) for
    spike-kernel scores, and is the plain evaluator for structural scores, which run no network.
    ``args`` and ``kwargs`` are :class:`~spikenas.nas.engine.Evaluator`'s."""
    if mode == "exact":
        return Evaluator(*args, weight_seeding=weight_seeding or "network", **kwargs)
    if mode == "fast":
        if weight_seeding not in (None, "per_edge"):
            raise SpikeNASError(f"fast mode needs weight_seeding per_edge, got {weight_seeding!r}")
        score_config = kwargs.get("score_config", args[2] if len(args) > 2 else None)
        if score_config is not None and not needs_network(score_config.name):
            # A structural score runs no network: there is nothing to share, every candidate is already cheap.
            return Evaluator(*args, weight_seeding="per_edge", **kwargs)
        return SharedEvaluator(*args, fast=fast, **kwargs)
    raise SpikeNASError(f"mode must be one of {MODES}, got {mode!r}")
