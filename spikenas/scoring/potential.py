"""MeCo-style score on membrane potentials: the minimum eigenvalue of channel correlations.

MeCo (Jiang et al., NeurIPS 2023) sums, over layers, the smallest eigenvalue of the Pearson correlation
matrix between a layer's channels; a layer whose channels are less redundant (none is a near-linear
combination of the others) has a larger minimum eigenvalue and trains better. Here a layer is a LIF call
on a feature map, and its channels' values are the membrane potentials (spikingjelly's ``v_seq``, after
the reset of neurons that fired) at every timestep, sample and position.
"""

from __future__ import annotations

import torch

from spikenas.scoring.recorder import Recording
from spikenas.scoring.recordings import candidate_recordings, mean_finite
from spikenas.scoring.registry import Candidate, register_score


def min_channel_eigenvalue(values: torch.Tensor) -> float:
    """Smallest eigenvalue of the channel correlation matrix of ``values`` float ``[T, B, C, ...]``.

    Each channel's observations are its values over T, B and the positions ``...``. Correlations with a
    constant channel (undefined) are set to 0, as MeCo's code does, which makes the matrix singular there.
    """
    c = values.shape[2]
    x = values.to(torch.float64).movedim(2, 0).reshape(c, -1)
    corr = torch.nan_to_num(torch.corrcoef(x), nan=0.0)
    return float(torch.linalg.eigvalsh(corr)[0])


def recording_meco(recording: Recording) -> float:
    """Sum over the LIF calls on feature maps (potentials ``[T, B, C, H, W]``, C >= 2) of
    :func:`min_channel_eigenvalue`; calls on flat layers (the head's Linear LIFs) are left out."""
    return float(sum(min_channel_eigenvalue(c.potential) for c in recording.calls
                     if c.potential.dim() >= 4 and c.potential.shape[2] >= 2))


@register_score(
    "meco_potential",
    doc="""MeCo on membrane potentials: for every LIF call on a feature map, the smallest eigenvalue of the
    Pearson correlation between its channels' membrane potentials (over timesteps, samples and positions),
    summed over calls. Channels that are not near-linear combinations of each other carry more independent
    information; a layer whose channels are redundant scores near 0.""",
    needs=("potentials",),
)
def _meco_potential(candidate: Candidate) -> float:
    return mean_finite([recording_meco(r) for r in candidate_recordings(candidate, need=("potentials",))])
