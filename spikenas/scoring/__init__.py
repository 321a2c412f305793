"""Training-free scores of SNN candidates: one config, one recorder, one registry.

* :mod:`~spikenas.scoring.config`: :class:`ScoreConfig`, a registered score's name and its options;
* :mod:`~spikenas.scoring.recorder`: the forward-hook recorder of spike patterns (probes);
* :mod:`~spikenas.scoring.registry`: :func:`register_score`, :func:`get_score`, :func:`list_scores`;
* :mod:`~spikenas.scoring.spike_kernel`: log|det K| of spike-pattern kernels (SNASNet's ``sahd`` and kin);
* :mod:`~spikenas.scoring.structural`: scores of the cells alone (``conv_depth``, ``params``, ...);
* :mod:`~spikenas.scoring.gradient`: surrogate-gradient scores (``grad_norm``, ``synflow``);
* :mod:`~spikenas.scoring.result`: :class:`ScoreResult` and its statuses;
* :mod:`~spikenas.scoring.evaluate`: :func:`score_network` (any spikingjelly model) and
  :func:`score_candidate` (cells of the SpikeNAS space, what the search calls).
"""

from __future__ import annotations

from spikenas.scoring import (  # noqa: F401  (they register their scores)
    analog_kernel,
    gradient,
    jacobian,
    pattern_count,
    potential,
    short_training,
    spike_kernel,
    structural,
    zico,
)
from spikenas.scoring.config import ScoreConfig
from spikenas.scoring.evaluate import kernel_matrix, prepare_candidate, score_candidate, score_network
from spikenas.scoring.recorder import Probe, load_probe, record_probe, save_probe, spiking_neurons
from spikenas.scoring.registry import Candidate, ScoreSpec, get_score, list_scores, needs_network, register_score
from spikenas.scoring.result import STATUSES, ScoreResult


def list_kernel_scores(pattern: str = "*") -> list[str]:
    """Registered spike-kernel scores (those :func:`score_network` computes) matching ``pattern``."""
    return [n for n in list_scores(pattern) if get_score(n).kernel is not None]


__all__ = [
    "STATUSES",
    "Candidate",
    "Probe",
    "ScoreConfig",
    "ScoreResult",
    "ScoreSpec",
    "get_score",
    "kernel_matrix",
    "list_kernel_scores",
    "list_scores",
    "load_probe",
    "needs_network",
    "prepare_candidate",
    "record_probe",
    "register_score",
    "save_probe",
    "score_candidate",
    "score_network",
    "spiking_neurons",
]
