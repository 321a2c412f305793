"""AutoSNN's spike-aware fitness, its training-free counterpart, and the two fitness sources.

AutoSNN ranks a candidate by ``acc * (spikes / target) ** lam`` with ``lam = -0.08`` and
``target = 110,000`` (CIFAR-10 at AutoSNN's full width; narrower networks spike far less, so set
``target`` to a typical count of the network at hand). ``target`` only rescales every fitness by
the same factor ``target ** -lam``: it changes reported values, never the ranking.

Zero spikes: ``spikes`` is clamped to at least 1 before the power, so a silent network gets the
finite fitness ``acc * target ** -lam`` (a silent SNN predicts nothing useful, its accuracy is
what penalises it) instead of an infinite one.

Training-free variant: the score ``s = log|det K|`` plays the role of accuracy. It is a log-quantity
(a sum of ``B`` log-eigenvalues for a ``B``-sample batch) and may be negative, so the product form
is taken in the log domain::

    score_fitness = s + scale * lam * log(max(spikes, 1) / target)

which is ``scale * log(fitness)`` with ``s / scale`` in place of ``log(acc)``. ``scale`` defaults to
the batch size ``B`` (the score per sample is then weighed against the spike term exactly as
AutoSNN weighs log-accuracy). A ``-inf`` score (singular kernel) stays ``-inf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from spikenas.autosnn.supernet import SuperNetwork, evaluate_path
from spikenas.errors import SpikeNASError
from spikenas.nas.evolution import Evaluation
from spikenas.nas.space_api import CellSpace, SearchSpace
from spikenas.scoring import ScoreConfig, get_score, list_kernel_scores, needs_network, score_candidate, score_network
from spikenas.scoring.recorder import SpikeTally
from spikenas.spikes import SpikeStats

TARGET_SPIKES = 110_000.0  # AutoSNN's spike target on CIFAR-10
LAMBDA = -0.08  # AutoSNN's spike exponent


def _check(spikes: float, target: float) -> float:
    if not (isinstance(spikes, (int, float)) and math.isfinite(spikes) and spikes >= 0):
        raise SpikeNASError(f"spikes must be a finite number >= 0, got {spikes!r}")
    if not (math.isfinite(target) and target > 0):
        raise SpikeNASError(f"target must be a finite number > 0, got {target!r}")
    return max(float(spikes), 1.0)


def spike_aware_fitness(acc: float, spikes: float, *, target: float = TARGET_SPIKES, lam: float = LAMBDA) -> float:
    """AutoSNN's fitness ``acc * (max(spikes, 1) / target) ** lam``.

    :param acc: accuracy in [0, 1]; :param spikes: mean spikes per sample (>= 0).
    :raises SpikeNASError: accuracy outside [0, 1], negative or non-finite spikes, target <= 0.
    """
    if not (math.isfinite(acc) and 0.0 <= acc <= 1.0):
        raise SpikeNASError(f"acc must be in [0, 1], got {acc!r}")
    return float(acc) * (_check(spikes, target) / target) ** lam


def score_fitness(
    score: float, spikes: float, *, target: float = TARGET_SPIKES, lam: float = LAMBDA, scale: float = 1.0
) -> float:
    """Training-free fitness ``score + scale * lam * log(max(spikes, 1) / target)`` (see the module doc).

    :raises SpikeNASError: NaN or +inf score, negative or non-finite spikes, target or scale <= 0.
    """
    if math.isnan(score) or score == math.inf:
        raise SpikeNASError(f"score must be finite or -inf, got {score!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise SpikeNASError(f"scale must be a finite number > 0, got {scale!r}")
    spikes = _check(spikes, target)
    if score == -math.inf:
        return -math.inf
    return float(score) + scale * lam * math.log(spikes / target)


class SupernetFitness:
    """AutoSNN's source: accuracy and spikes of a path with weights inherited from a trained super-network.

    :param images: float32 ``[N, C, H, W]`` validation images; ``labels`` int64 ``[N]``.
    :param calibration: float32 training images for per-path BatchNorm re-estimation, or ``None``.
    """

    metric = "fitness"  # the Pareto front's first objective

    def __init__(
        self,
        supernet: SuperNetwork,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        target: float = TARGET_SPIKES,
        lam: float = LAMBDA,
        calibration: torch.Tensor | None = None,
        batch_size: int = 256,
    ) -> None:
        self.supernet, self.images, self.labels = supernet, images, labels
        self.target, self.lam, self.calibration, self.batch_size = target, lam, calibration, batch_size

    def __call__(self, arch: Sequence[str]) -> Evaluation:
        result = evaluate_path(
            self.supernet, tuple(arch), self.images, self.labels,
            batch_size=self.batch_size, calibration=self.calibration,
        )
        fitness = spike_aware_fitness(result.accuracy, result.spikes, target=self.target, lam=self.lam)
        return Evaluation(fitness=fitness, spikes=result.spikes, metrics={"accuracy": result.accuracy})


class ScoreFitness:
    """Training-free source over any space: the network at its seeded initialisation, its score on
    fixed batches, and the spikes it emits during that same scoring pass (AutoSNN's count).

    :param batches: float32 ``[B, C, H, W]`` image batches, the same for every candidate.
    :param scale: weight of the spike term (default: the batch size B, see the module doc).
    """

    metric = "score"

    def __init__(
        self,
        space: SearchSpace,
        batches: list[torch.Tensor],
        *,
        score_config: ScoreConfig | None = None,
        seed: int = 0,
        target: float = TARGET_SPIKES,
        lam: float = LAMBDA,
        scale: float | None = None,
    ) -> None:
        if not batches:
            raise SpikeNASError("batches is empty: give at least one scoring batch")
        self.space, self.batches, self.seed = space, batches, seed
        self.score_config = score_config or ScoreConfig(name="sahd")
        if get_score(self.score_config.name).kernel is None:
            raise SpikeNASError(
                f"the score fitness runs a spike-kernel score on each network (e.g. sahd); {self.score_config.name!r} "
                f"is not one (kernel scores: {', '.join(list_kernel_scores())})"
            )
        self.target, self.lam = target, lam
        self.scale = float(batches[0].shape[0]) if scale is None else float(scale)

    def __call__(self, arch: object) -> Evaluation:
        network = self.space.build(arch, seed=self.seed)
        with SpikeTally(network) as tally:
            result = score_network(network, self.batches, config=self.score_config)
        spikes = SpikeStats.from_tally(tally, samples=sum(len(b) for b in self.batches)).total
        fitness = score_fitness(result.score, spikes, target=self.target, lam=self.lam, scale=self.scale)
        return Evaluation(fitness=fitness, spikes=spikes, metrics={"score": result.score}, status=result.status)

    @property
    def tie_break(self) -> tuple[str, ...]:
        """The score config's tie-break scores that this space can compute, in order: every one in the cell space
        (as a search's), only spike-kernel scores in another space (structural scores read cells)."""
        if isinstance(self.space, CellSpace):
            return self.score_config.tie_break
        return tuple(n for n in self.score_config.tie_break if get_score(n).kernel is not None)

    def tie_score(self, arch: object, name: str) -> float:
        """Tie-break score ``name`` of ``arch`` (one of :attr:`tie_break`), at the seeded initialisation and on the
        batches the fitness uses, as the search engine computes it."""
        config = self.score_config.for_score(name)
        if isinstance(self.space, CellSpace):
            network = self.space.build(arch, seed=self.seed) if needs_network(name) else None
            result = score_candidate(tuple(arch), network, self.batches, config=config, macro=self.space.macro,
                                     seed=self.seed)
            return result.score
        return score_network(self.space.build(arch, seed=self.seed), self.batches, config=config).score
