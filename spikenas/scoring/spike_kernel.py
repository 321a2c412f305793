"""Spike-kernel scores: log|det K| of a Hamming kernel of the LIF spike patterns over a batch.

Each LIF call (layer x timestep) of a :class:`~spikenas.scoring.recorder.Probe` gives a ``[B, B]``
kernel from its Hamming distances (formulas: :func:`spikenas.kernels.kernel_from_hamming`); the calls
are combined by mean (SNASNet's code) or sum (its paper, NASWOT) and the batch's score is
``log|det K|``. SNASNet's score is the entry ``sahd``; the others vary which LIFs count and how.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from spikenas import kernels
from spikenas.errors import SpikeNASError
from spikenas.scoring.recorder import KINDS, Probe
from spikenas.scoring.registry import Candidate, register_score

ALPHA = 0.5  # SNASNet's weight on the normalised Hamming distance
EPS = 1e-3  # SNASNet's guard in the expected-distance denominator
REDUCTIONS = ("mean", "sum")


def probe_kernel(
    probe: Probe,
    *,
    kind: str = "sahd",
    kinds: Iterable[str] = KINDS,
    reduce: str = "mean",
    per_layer: bool = False,
    over_time: bool = False,
    alpha: float = ALPHA,
) -> torch.Tensor | None:
    """The combined float64 ``[B, B]`` kernel of one batch over the calls whose module kind is in ``kinds``.

    :param reduce: ``mean`` (SNASNet's code) or ``sum`` (its paper, NASWOT) over the calls.
    :param per_layer: divide each call's kernel by its N first, so every layer weighs the same.
    :param over_time: one kernel per LIF module from its spikes concatenated over the T timesteps
        (Hamming distances and counts add up, N becomes T N), instead of one per timestep.
    :returns: None when no call is selected.
    """
    if reduce not in REDUCTIONS:
        raise SpikeNASError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    kinds = set(kinds)
    keep = np.array([probe.kinds[m] in kinds for m in probe.call_module], dtype=bool)
    if not keep.any():
        return None
    hamming, counts, sizes = probe.hamming[keep], probe.counts[keep], probe.sizes[keep]
    if over_time:
        modules = probe.call_module[keep]
        order = np.unique(modules)
        hamming = np.stack([hamming[modules == m].astype(np.int64).sum(axis=0) for m in order])
        counts = np.stack([counts[modules == m].astype(np.int64).sum(axis=0) for m in order])
        sizes = np.array([sizes[modules == m].sum() for m in order])
    n = torch.from_numpy(np.ascontiguousarray(sizes))
    per_call = kernels.kernel_from_hamming(
        torch.from_numpy(np.ascontiguousarray(hamming)), torch.from_numpy(np.ascontiguousarray(counts)), n,
        kind=kind, alpha=alpha, eps=EPS,
    )
    if per_layer:
        per_call = per_call / n.to(torch.float64)[:, None, None]
    total = per_call.sum(dim=0)
    return total / len(per_call) if reduce == "mean" else total


def probe_slogdet(probe: Probe, *, backend: str | None = None, **formula: object) -> tuple[float, float]:
    """(sign, log|det K|) of one batch's kernel (:func:`probe_kernel`); (0, -inf) when no call is selected."""
    total = probe_kernel(probe, **formula)
    if total is None:
        return 0.0, float("-inf")
    sign, logdet = kernels.slogdet(total, backend=backend)
    return float(sign), float(logdet)


def probe_kernel_score(probe: Probe, **formula: object) -> float:
    """``log|det K|`` of one batch (SNASNet ignores the sign); -inf when singular or nothing is selected."""
    sign, logdet = probe_slogdet(probe, **formula)
    return logdet if sign != 0 and math.isfinite(logdet) else float("-inf")


def kernel_formula(candidate: Candidate, spec_kernel: dict) -> dict:
    """The formula of a kernel entry with the candidate's ``alpha`` / ``reduce`` options applied."""
    formula = dict(spec_kernel)
    for key in ("alpha", "reduce"):
        if candidate.options.get(key) is not None:
            formula[key] = candidate.options[key]
    return formula


def _over_batches(candidate: Candidate, spec_kernel: dict) -> float:
    if not candidate.probes:
        raise SpikeNASError("this score needs spike probes: record them with prepare_candidate(needs=['spikes'])")
    formula = kernel_formula(candidate, spec_kernel)
    values = [probe_kernel_score(p, **formula) for p in candidate.probes]
    return float(np.mean(values)) if all(math.isfinite(v) for v in values) else float("-inf")


def register_kernel_score(name: str, doc: str, **formula: object) -> None:
    """Register a spike-kernel score with the given :func:`probe_kernel` settings."""
    spec_kernel = {"kind": "sahd", "kinds": KINDS, "reduce": "mean", "per_layer": False, "over_time": False,
                   "alpha": ALPHA, **formula}
    spec_kernel["kinds"] = tuple(spec_kernel["kinds"])
    register_score(name, doc=doc, needs=("spikes",), kernel=spec_kernel)(lambda c: _over_batches(c, spec_kernel))


register_kernel_score(
    "sahd",
    """SNASNet's score: sparsity-aware Hamming kernel over every LIF call (cells, downconv, head), averaged
    over calls, log|det K|. Rewards networks whose spike patterns separate the samples more than their firing
    rates alone would; on SpikeNAS-Bench it mostly counts spiking layers.""",
    kind="sahd",
)
register_kernel_score(
    "sahd_sum",
    """SAHD with per-call kernels summed rather than averaged (SNASNet's paper): adds B log(calls), a bonus
    for networks with more LIF calls.""",
    kind="sahd",
    reduce="sum",
)
register_kernel_score(
    "hamming",
    """NASWOT's plain Hamming kernel N - H over every LIF call, summed over calls as NASWOT does: large when
    patterns differ and layers are wide.""",
    kind="hamming",
    reduce="sum",
)
register_kernel_score(
    "hamming_mean",
    """Plain Hamming kernel N - H averaged over calls.""",
    kind="hamming",
)
register_kernel_score(
    "sahd_rate",
    """SAHD without the factor N in the expected distance, over every LIF call, averaged: the normalised
    distance term then dominates N, so the kernel measures pattern decorrelation rather than layer size.""",
    kind="sahd_rate",
)
register_kernel_score(
    "sahd_live",
    """SAHD over the LIFs on cell edges that lie on an input-to-output path only: LIFs of dead edges and of
    the macro (the same in every candidate) do not dilute the cell's contribution.""",
    kind="sahd",
    kinds=("live",),
)
register_kernel_score(
    "sahd_live_rate",
    """SAHD on live cell LIFs without the factor N in the normaliser, averaged over calls.""",
    kind="sahd_rate",
    kinds=("live",),
)
register_kernel_score(
    "sahd_live_rate_sum",
    """As sahd_live_rate with kernels summed over calls: more live spiking layers, larger score.""",
    kind="sahd_rate",
    kinds=("live",),
    reduce="sum",
)
register_kernel_score(
    "sahd_layernorm",
    """SAHD with each call's kernel divided by its N before averaging, so wide and narrow layers (cell LIFs
    versus the head) weigh the same.""",
    kind="sahd",
    per_layer=True,
)
register_kernel_score(
    "sahd_time",
    """SAHD with each LIF's spikes concatenated over the T timesteps (one kernel per layer, N -> T N), so
    temporal codes count and static repeats do not multiply a layer's weight.""",
    kind="sahd",
    over_time=True,
)
register_kernel_score(
    "sahd_live_time",
    """sahd_time restricted to live cell LIFs, with the rate normaliser.""",
    kind="sahd_rate",
    kinds=("live",),
    over_time=True,
)
