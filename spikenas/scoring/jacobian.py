"""Jacobian covariance (Mellor et al. 2020, the first version of NASWOT), through the surrogate gradient.

For each sample the gradient of the summed network outputs with respect to its input is taken (one
backward pass for the batch); a network whose input Jacobians are less correlated between samples can
tell them apart, and is expected to train better. The score is ``-sum_i (log(s_i + k) + 1 / (s_i + k))``
over the eigenvalues ``s_i`` of the samples' Jacobian correlation matrix, ``k = 1e-5``.
"""

from __future__ import annotations

import copy
import math

import torch
from spikingjelly.activation_based import functional
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.scoring.recorder import set_bn_mode
from spikenas.scoring.recordings import mean_finite
from spikenas.scoring.registry import Candidate, register_score

K = 1e-5  # the paper's offset of the eigenvalues


def input_jacobians(network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """float32 ``[B, C H W]``: d(sum of outputs)/d(input) per sample, BN on batch statistics, on a copy."""
    model = copy.deepcopy(network)
    set_bn_mode(model, "train")
    x = batch.detach().clone().requires_grad_(True)
    functional.reset_net(model)
    model(x).sum().backward()
    functional.reset_net(model)
    if x.grad is None:  # the output does not depend on the input (a cell whose output node receives nothing)
        return torch.zeros(len(batch), batch[0].numel())
    return x.grad.detach().reshape(len(batch), -1)


def jacobian_score(jacobians: torch.Tensor) -> float:
    """``-sum(log(s + k) + 1 / (s + k))`` over eigenvalues s of the row correlation of ``jacobians`` ``[B, D]``.

    Correlations with an all-constant row (a sample whose gradient vanished) are set to 0, which gives it a
    zero eigenvalue and the largest penalty.
    """
    corr = torch.nan_to_num(torch.corrcoef(jacobians.to(torch.float64)), nan=0.0)
    s = torch.linalg.eigvalsh(corr)
    value = float(-(torch.log(s + K) + 1.0 / (s + K)).sum())
    return value if math.isfinite(value) else float("-inf")


@register_score(
    "jacob_cov",
    doc="""Jacobian covariance (NASWOT's first version) through the ATan surrogate: from the correlation matrix
    of the samples' input gradients, -Σ log(s+k) + 1/(s+k) over its eigenvalues. Large when the network's local
    linear maps differ between samples, i.e. it does not treat different inputs alike.""",
    needs=("backward",),
)
def _jacob_cov(candidate: Candidate) -> float:
    if candidate.network is None or not candidate.batches:
        raise SpikeNASError("jacob_cov differentiates the network: the candidate needs its network and batches")
    return mean_finite([jacobian_score(input_jacobians(candidate.network, b)) for b in candidate.batches])
