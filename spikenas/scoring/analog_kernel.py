"""NASWOT on the analog values of the cell nodes.

NASWOT (Mellor et al. 2021) codes each sample by which ReLUs it switches on and scores ``log|det K|`` of
``K = sum over layers of (N - Hamming distance)`` between the samples' codes. In a spiking cell the
nodes (sums of the edges' analog outputs) are where a ReLU network's activations would be; here each
cell node's value at every timestep is coded by its sign (``x > 0``, the ReLU's on/off), packed into
bits, and its Hamming matrix computed through the :mod:`spikenas.kernels` dispatch.
"""

from __future__ import annotations

import math

import torch

from spikenas import kernels
from spikenas.scoring.recorder import Recording
from spikenas.scoring.recordings import candidate_recordings, mean_finite
from spikenas.scoring.registry import Candidate, register_score


def node_code_kernel(recording: Recording, *, backend: str | None = None) -> torch.Tensor | None:
    """float64 ``[B, B]``: sum over recorded cell nodes of ``N - H`` on the codes ``x > 0`` of each sample's
    node values over all timesteps (N = T C H W bits); None when no node was recorded."""
    total = None
    for value in recording.nodes.values():
        codes = (value > 0).transpose(0, 1).reshape(value.shape[1], -1)  # bool [B, T C H W]
        n = codes.shape[-1]
        hamming = kernels.hamming_gram(kernels.pack_bits(codes, backend=backend), n, backend=backend)
        k = n - hamming.to(torch.float64)
        total = k if total is None else total + k
    return total


def recording_naswot(recording: Recording, *, backend: str | None = None) -> float:
    """``log|det K|`` of :func:`node_code_kernel`; -inf when K is singular or no node was recorded."""
    k = node_code_kernel(recording, backend=backend)
    if k is None:
        return float("-inf")
    sign, logdet = kernels.slogdet(k, backend=backend)
    return float(logdet) if float(sign) != 0 and math.isfinite(float(logdet)) else float("-inf")


@register_score(
    "naswot_nodes",
    doc="""NASWOT on the cell nodes' analog values: each sample is coded by the sign of every cell node value
    (the on/off a ReLU would apply) at every timestep, and the score is log|det K| of the summed kernels
    N - Hamming. Unlike the spike kernels it sees the analog sums where edges meet, before any threshold, so
    skip edges and the mixing of paths count even where no LIF reads the node.""",
    needs=("nodes",),
)
def _naswot_nodes(candidate: Candidate) -> float:
    backend = candidate.options.get("backend")
    return mean_finite([recording_naswot(r, backend=backend) for r in candidate_recordings(candidate, need=("nodes",))])
