"""SWAP-style scores: distinct spike patterns of the neurons over a batch (Peng et al. 2024, for spikes).

A neuron's *pattern* is the bit string of its spikes over the B samples of a batch. SWAP counts the
distinct patterns among a layer's neurons: a layer whose neurons respond to different subsets of
samples (more distinct patterns) partitions the input space more finely. The patterns are packed into
64-bit words and counted through :func:`spikenas.kernels.count_distinct` (dispatch on packed bits).
Three groupings of the spikes, each a registered score:

* ``swap_call``: per neuron call and timestep, patterns of B bits, summed over every call;
* ``swap_time``: per neuron call, patterns over all T timesteps (T B bits), summed over calls;
* ``swap_node``: per cell node, the spikes of every live cell LIF reading that node concatenated
  (L T B bits for L such LIFs), summed over nodes.
"""

from __future__ import annotations

import torch

from spikenas import kernels
from spikenas.scoring.recorder import Recording
from spikenas.scoring.recordings import candidate_recordings, mean_finite
from spikenas.scoring.registry import Candidate, register_score

GROUPINGS = ("call", "time", "node")
#: The raw spike tensors of :func:`~spikenas.scoring.recorder.record_values` (not the Hamming probes of ``spikes``).
RAW_SPIKES = ("raw_spikes",)


def distinct_patterns(spikes: torch.Tensor, *, backend: str | None = None) -> torch.Tensor:
    """Distinct neuron patterns: spikes ``[..., S, N]`` (S samples/bits per neuron, N neurons; nonzero =
    spike) -> int64 ``[...]``, the number of distinct columns of each ``[S, N]`` matrix."""
    packed = kernels.pack_bits(spikes.transpose(-1, -2), backend=backend)  # int64 [..., N, ceil(S / 64)]
    return kernels.count_distinct(packed, spikes.shape[-2], backend=backend)


def recording_pattern_count(recording: Recording, grouping: str, *, backend: str | None = None) -> float:
    """The SWAP count of one batch's :class:`Recording` (with spikes) for ``grouping`` in :data:`GROUPINGS`."""
    if grouping == "call":
        return float(sum(int(distinct_patterns(c.spikes, backend=backend).sum()) for c in recording.calls))
    if grouping == "time":
        total = 0
        for c in recording.calls:
            t, b, n = c.spikes.shape
            total += int(distinct_patterns(c.spikes.reshape(t * b, n), backend=backend))
        return float(total)
    groups: dict[int, list[torch.Tensor]] = {}
    for c in recording.calls:
        if recording.kinds[c.module] == "live":
            groups.setdefault(c.source, []).append(c.spikes)
    total = 0
    for calls in groups.values():
        stacked = torch.cat(calls, dim=0)  # [L T, B, N]: all calls reading this node
        total += int(distinct_patterns(stacked.reshape(-1, stacked.shape[-1]), backend=backend))
    return float(total)


def _score(candidate: Candidate, grouping: str) -> float:
    backend = candidate.options.get("backend")
    recordings = candidate_recordings(candidate, need=("spikes",))
    return mean_finite([recording_pattern_count(r, grouping, backend=backend) for r in recordings])


@register_score(
    "swap_call",
    doc="""SWAP for spikes: per LIF call and timestep, the number of distinct spike patterns of its neurons
    over the batch (each neuron's spikes on the B samples as one B-bit string), summed over every call. More
    distinct patterns: the layer's neurons split the samples in more ways, a finer partition of input space.""",
    needs=RAW_SPIKES,
)
def _swap_call(candidate: Candidate) -> float:
    return _score(candidate, "call")


@register_score(
    "swap_time",
    doc="""SWAP over time: per LIF call, each neuron's pattern is its spikes on the B samples at every
    timestep (T B bits), so neurons that differ only in when they fire count as distinct; summed over calls.""",
    needs=RAW_SPIKES,
)
def _swap_time(candidate: Candidate) -> float:
    return _score(candidate, "time")


@register_score(
    "swap_node",
    doc="""SWAP per cell node: the live cell LIFs that read the same node (its input tensor) are pooled, each
    neuron position's pattern being its spikes in all of them over T timesteps and B samples; the distinct
    patterns are summed over nodes. Measures how finely what leaves each node is coded, counting a node once
    however many edges read it.""",
    needs=RAW_SPIKES,
)
def _swap_node(candidate: Candidate) -> float:
    return _score(candidate, "node")
