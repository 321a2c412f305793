"""Gradient scores through the LIFs' surrogate gradient: gradient norm and SynFlow."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from spikingjelly.activation_based import functional
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.scoring.recorder import set_bn_mode
from spikenas.scoring.registry import Candidate, register_score


def gradient_stats(network: nn.Module, batch: torch.Tensor) -> dict[str, float]:
    """Label-free gradient statistics through the LIFs' surrogate gradient, on a copy of ``network``.

    ``grad_norm``: ``log ||d/dθ CE(f(x), y)||`` on the real batch (float ``[B, C, H, W]``) with fixed
    class-balanced labels ``y_i = i mod classes`` (no data labels needed; at initialisation the logits
    barely depend on them), BN in train mode.
    ``synflow``: ``log Σ |θ ⊙ dR/dθ|`` with ``R = Σ f(1)`` for |θ| weights, an all-ones input and BN in
    eval mode (SynFlow, Tanaka et al. 2020). ``seconds``: wall time of both. Non-finite -> -inf.
    """
    start = time.perf_counter()
    out: dict[str, float] = {}
    model = copy.deepcopy(network)
    params = [p for p in model.parameters() if p.requires_grad]
    set_bn_mode(model, "train")
    model.zero_grad(set_to_none=True)
    functional.reset_net(model)
    logits = model(batch)
    labels = torch.arange(len(batch)) % logits.shape[-1]
    nn.functional.cross_entropy(logits, labels).backward()
    norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None))
    out["grad_norm"] = math.log(norm) if norm > 0 and math.isfinite(norm) else float("-inf")

    model = copy.deepcopy(network)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in params:
            p.abs_()
    model.eval()
    model.zero_grad(set_to_none=True)
    functional.reset_net(model)
    model(torch.ones_like(batch[:1])).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in params if p.grad is not None)
    out["synflow"] = math.log(total) if total > 0 and math.isfinite(total) else float("-inf")
    functional.reset_net(model)
    out["seconds"] = time.perf_counter() - start
    return out


def _mean_gradient(candidate: Candidate, key: str) -> float:
    if not candidate.gradients:
        raise SpikeNASError("this score needs gradients: record them with prepare_candidate(needs=['gradients'])")
    values = [g[key] for g in candidate.gradients]
    return float(np.mean(values)) if all(math.isfinite(v) for v in values) else float("-inf")


@register_score(
    "grad_norm",
    doc="""log of the norm of the cross-entropy gradient with respect to every weight, through the ATan
    surrogate, on the real batch with fixed labels: how much signal trains the network at initialisation.""",
    needs=("gradients",),
)
def _grad_norm(candidate: Candidate) -> float:
    return _mean_gradient(candidate, "grad_norm")


@register_score(
    "synflow",
    doc="""SynFlow (Tanaka et al. 2020) through the surrogate gradient: log Σ|θ ⊙ dR/dθ| with |θ| weights and
    an all-ones input; data-free, measures the synaptic flow of every path.""",
    needs=("gradients",),
)
def _synflow(candidate: Candidate) -> float:
    return _mean_gradient(candidate, "synflow")
