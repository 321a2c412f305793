"""ZiCo-style score through the surrogate gradient: mean over standard deviation of weight gradients.

ZiCo (Li et al., ICLR 2023) computes each weight's gradient on several mini-batches and sums, over
layers, ``log sum_w mean|g_w| / std(g_w)``: networks whose gradients are large and consistent across
batches train faster and generalise better. For a spiking network the gradients flow through the LIFs'
surrogate (ATan) derivative. One scoring batch is split into :data:`CHUNKS` equal mini-batches.
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

CHUNKS = 4  # mini-batches per scoring batch


def weight_layers(model: nn.Module) -> list[nn.Parameter]:
    """The weights of every convolution and linear layer of ``model``, in registration order."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def zico(network: nn.Module, batch: torch.Tensor, *, chunks: int = CHUNKS) -> float:
    """ZiCo of ``network`` on one float batch ``[B, C, H, W]``, split into ``chunks`` mini-batches of B // chunks.

    Labels are fixed and class-balanced (``y_i = i mod classes``), as :func:`~spikenas.scoring.gradient.gradient_stats`
    uses, so that no data labels are needed; BN uses each mini-batch's statistics. Runs on a copy of
    ``network``. Weights whose gradient does not vary across mini-batches are left out (ZiCo's rule); a layer
    whose sum is 0 adds nothing.
    :raises SpikeNASError: for ``chunks < 2`` or a batch of fewer than 2 ``chunks`` samples.
    """
    if chunks < 2 or len(batch) < 2 * chunks:
        raise SpikeNASError(f"zico needs chunks >= 2 and a batch of >= 2 * chunks samples; got chunks={chunks!r}, "
                            f"batch of {len(batch)}")
    model = copy.deepcopy(network)
    set_bn_mode(model, "train")
    weights = weight_layers(model)
    size = len(batch) // chunks
    grads: list[list[torch.Tensor]] = [[] for _ in weights]
    for i in range(chunks):
        x = batch[i * size : (i + 1) * size]
        model.zero_grad(set_to_none=True)
        functional.reset_net(model)
        logits = model(x)
        labels = (torch.arange(size) + i * size) % logits.shape[-1]
        nn.functional.cross_entropy(logits, labels).backward()
        for g, w in zip(grads, weights, strict=True):
            g.append(torch.zeros_like(w).flatten() if w.grad is None else w.grad.detach().flatten().clone())
    functional.reset_net(model)
    return zico_from_gradients([torch.stack(g) for g in grads])


def zico_from_gradients(layers: list[torch.Tensor]) -> float:
    """ZiCo's reduction: per layer, gradients float ``[chunks, weights]`` ->
    ``sum over layers of log(sum over weights with std > 0 of mean|g| / std(g))`` (population std; a layer whose
    sum is 0 adds nothing); -inf if not finite."""
    total = 0.0
    for g in layers:
        stacked = g.to(torch.float64)
        std = stacked.std(dim=0, unbiased=False)
        mean_abs = stacked.abs().mean(dim=0)
        varying = std > 0
        layer_sum = float((mean_abs[varying] / std[varying]).sum())
        if layer_sum > 0:
            total += math.log(layer_sum)
    return total if math.isfinite(total) else float("-inf")


@register_score(
    "zico",
    doc="""ZiCo through the ATan surrogate: over the conv and linear layers, the sum of log Σ mean|g| / std(g)
    of each weight's cross-entropy gradient across 4 mini-batches of the scoring batch (fixed balanced labels).
    High when gradients are both large and consistent between batches, which ZiCo links to fast convergence
    and good generalisation; in an SNN it also measures how much gradient the surrogate lets through.""",
    needs=("backward",),
)
def _zico(candidate: Candidate) -> float:
    if candidate.network is None or not candidate.batches:
        raise SpikeNASError("zico differentiates the network: the candidate needs its network and batches")
    return mean_finite([zico(candidate.network, b) for b in candidate.batches])
