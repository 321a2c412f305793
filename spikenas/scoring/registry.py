"""The registry of training-free scores.

A score maps one :class:`Candidate` (its cells, macro configuration and what was recorded while the
network ran) to a float, higher meaning "predicted to train better". Each registered
:class:`ScoreSpec` says what must be recorded before its function runs (``needs``), which options of
:class:`~spikenas.scoring.config.ScoreConfig` it reads (``options``) and, for spike-kernel scores, the
kernel formula (``kernel``). Register new scores with :func:`register_score`; look them up with
:func:`get_score` and :func:`list_scores`. Rationale and figures of every score: docs/selection.md.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig
from spikenas.space import Genotype

#: What a score needs before its function runs: ``spikes``, Hamming probes of every LIF call (``probes``);
#: ``gradients``, the gradient statistics of :func:`~spikenas.scoring.gradient.gradient_stats`; ``raw_spikes``,
#: ``potentials`` and ``nodes``, the raw spike tensors, membrane potentials and cell node values recorded by
#: :func:`~spikenas.scoring.recorder.record_values` (``records``, or from ``network`` and ``batches``);
#: ``backward``, a backward pass of its own through ``network``; ``training``, a short training run of its own.
NEEDS = ("spikes", "gradients", "raw_spikes", "potentials", "nodes", "backward", "training")
#: Options of a ScoreConfig, and the scores they apply to.
RUN_OPTIONS = ("bn_mode", "backend")  # any score that runs the network
KERNEL_OPTIONS = ("alpha", "reduce")  # spike-kernel scores only


@dataclass
class Candidate:
    """Everything a score may look at."""

    cells: tuple[Genotype, ...]  # genotype per cell position
    macro: MacroConfig  # the proxy network's configuration
    probes: list = field(default_factory=list)  # [Probe] one per batch, when a score needs spikes
    gradients: list[dict[str, float]] = field(default_factory=list)  # one per batch, when it needs gradients
    records: list = field(default_factory=list)  # [Recording] one per batch: potentials / node values
    options: Mapping[str, Any] = field(default_factory=dict)  # the resolved options of the ScoreConfig
    network: Any = None  # the built network, for scores that train or differentiate it
    batches: list = field(default_factory=list)  # the scoring batches, float [B, C, H, W]
    seed: int = 0  # weight and data seed of the candidate


ScoreFn = Callable[[Candidate], float]


@dataclass(frozen=True)
class ScoreSpec:
    """A registered score."""

    name: str  # registry key (ScoreConfig.name, --score)
    fn: ScoreFn  # candidate -> float, higher is better; -inf when undefined (e.g. singular kernel)
    doc: str  # one-paragraph rationale
    needs: frozenset[str]  # subset of NEEDS: what must be recorded before fn runs
    kernel: Mapping[str, Any] | None = None  # spike-kernel formula (kind, reduce, kinds, ...) or None

    @property
    def runs_network(self) -> bool:
        """Whether the score runs the network (structural scores only read the cells)."""
        return bool(self.needs)

    @property
    def options(self) -> frozenset[str]:
        """The ScoreConfig options this score reads."""
        names: set[str] = set()
        if self.runs_network:
            names.update(RUN_OPTIONS)
        if self.kernel is not None:
            names.update(KERNEL_OPTIONS)
        return frozenset(names)


_SCORES: dict[str, ScoreSpec] = {}


def register_score(
    name: str, *, doc: str, needs: Iterable[str] = (), kernel: Mapping[str, Any] | None = None
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator registering ``fn(candidate) -> float`` as score ``name``; re-registering warns.

    :param needs: what must be recorded first, a subset of :data:`NEEDS`.
    :param kernel: for spike-kernel scores, the formula's settings (see
        :func:`spikenas.scoring.spike_kernel.probe_kernel_score`); makes ``alpha`` and ``reduce`` options.
    """
    needs = frozenset(needs)
    if not needs <= set(NEEDS):
        raise SpikeNASError(f"score {name!r}: needs must be a subset of {NEEDS}, got {sorted(needs)}")
    frozen_kernel = None if kernel is None else MappingProxyType(dict(kernel))

    def decorator(fn: ScoreFn) -> ScoreFn:
        if name in _SCORES:
            warnings.warn(f"score {name!r} is already registered; replacing it", stacklevel=2)
        _SCORES[name] = ScoreSpec(name, fn, " ".join(doc.split()), needs, frozen_kernel)
        return fn

    return decorator


def get_score(name: str) -> ScoreSpec:
    """The score registered as ``name``."""
    if name not in _SCORES:
        raise SpikeNASError(f"unknown score {name!r}; registered scores: {', '.join(list_scores())}")
    return _SCORES[name]


def list_scores(pattern: str = "*") -> list[str]:
    """Registered score names matching a shell-style ``pattern``, in registration order."""
    return [n for n in _SCORES if fnmatch.fnmatch(n, pattern)]


def needs_network(name: str) -> bool:
    """Whether score ``name`` runs the network (structural scores only read the cells)."""
    return get_score(name).runs_network
