"""The mode part of a search request (:class:`ModeOptions`) and which evaluator a mode uses:
:class:`~spikenas.nas.engine.Evaluator` (a fresh network per candidate) or
:class:`~spikenas.nas.fast.SharedEvaluator` (a pass's candidates share their work)."""

from __future__ import annotations

from dataclasses import dataclass, field

from spikenas.errors import SpikeNASError
from spikenas.nas.engine import Evaluator
from spikenas.nas.fast import FastConfig, SharedEvaluator
from spikenas.network import WEIGHT_SEEDINGS
from spikenas.scoring import needs_network
from spikenas.typecheck import check_fields

MODES = ("exact", "fast")


@dataclass(frozen=True, kw_only=True)
class ModeOptions:
    """How the candidates of a cell-space search are scored: ``exact`` builds a fresh network per candidate,
    ``fast`` shares work between the candidates of a pass (:mod:`spikenas.nas.fast`, options ``fast``)."""

    name: str = "exact"  # one of MODES
    weight_seeding: str | None = None  # network or per_edge; None: network in exact mode, per_edge in fast
    fast: FastConfig = field(default_factory=FastConfig)  # fast mode's options (proxy batch, re-scoring race)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.name not in MODES:
            raise SpikeNASError(f"mode must be one of {MODES}, got {self.name!r}")
        if self.weight_seeding is not None and self.weight_seeding not in WEIGHT_SEEDINGS:
            raise SpikeNASError(f"weight_seeding must be one of {WEIGHT_SEEDINGS}, got {self.weight_seeding!r}")
        if self.name == "fast" and self.weight_seeding not in (None, "per_edge"):
            raise SpikeNASError(f"fast mode needs weight_seeding per_edge, got {self.weight_seeding!r}")

    def seeding(self) -> str:
        """The weight seeding the mode's networks are built with (``weight_seeding``, or the mode's default)."""
        return self.weight_seeding or ("per_edge" if self.name == "fast" else "network")

    def make_evaluator(self, *args, **kwargs) -> Evaluator:
        """:func:`make_evaluator` for this mode; ``args`` and ``kwargs`` are
        :class:`~spikenas.nas.engine.Evaluator`'s."""
        return make_evaluator(self.name, *args, fast=self.fast, weight_seeding=self.weight_seeding, **kwargs)


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
        macro = kwargs.get("config", args[0] if args else None)
        if getattr(macro, "family", "snasnet") != "snasnet":
            raise SpikeNASError(f"fast mode shares the work of SNASNet-family networks (direct input, LIF cells); "
                                f"the {macro.family} family's networks are scored in exact mode: drop --mode fast")
        return SharedEvaluator(*args, fast=fast, **kwargs)
    raise SpikeNASError(f"mode must be one of {MODES}, got {mode!r}")
