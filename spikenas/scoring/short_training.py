"""Short-training proxy: a few hundred SGD steps of a narrow copy of the proxy network.

The benchmark's own learning curves show that a little training ranks architectures better than any
training-free score. This family trains the candidate's cells in a narrow network (``width``
channels, small inputs, a small head) for ``steps`` SGD steps on the scoring data and measures how fast it
fits (the training loss of the last quarter of the steps) and, on held-out samples, how well it generalises.
It is seeded end to end (split, weights, mini-batch order, dropout).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from spikingjelly.activation_based import functional
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig, build_network, derived_seed, head_init
from spikenas.scoring.registry import Candidate, register_score
from spikenas.space import Genotype


@dataclass(frozen=True)
class ShortTraining:
    """How the proxy is trained."""

    width: int = 4  # channels of the first cell (the candidate's macro is narrowed to it)
    input_size: int = 16  # images are resized to this side
    hidden: int = 64  # units of the head's first Linear
    steps: int = 150  # SGD steps
    batch_size: int = 32  # samples per step
    lr: float = 0.1  # SGD learning rate (momentum 0.9, weight decay 5e-4, cosine decay to 0), SNASNet's
    holdout: float = 0.25  # fraction of the labelled samples kept for scoring

    def __post_init__(self) -> None:
        for name in ("width", "input_size", "hidden", "steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpikeNASError(f"{name} must be an int >= 1, got {value!r}")
        if not self.lr > 0:
            raise SpikeNASError(f"lr must be > 0, got {self.lr!r}")
        if not 0 < self.holdout < 1:
            raise SpikeNASError(f"holdout must be in (0, 1), got {self.holdout!r}")


@dataclass(frozen=True)
class ShortTrainingResult:
    """What one short training run measured."""

    train_loss: float  # mean cross-entropy of the mini-batches of the last quarter of the steps
    accuracy: float  # held-out accuracy in [0, 1]
    loss: float  # held-out mean cross-entropy
    seconds: float  # wall time


def short_training(
    cells: tuple[Genotype, ...],
    macro: MacroConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int,
    config: ShortTraining | None = None,
) -> ShortTrainingResult:
    """Train ``cells`` in ``macro`` narrowed by ``config`` on part of (``images`` float ``[n, C, H, W]``,
    ``labels`` int64 ``[n]``) and evaluate on the rest (a seeded split).

    :raises SpikeNASError: for mismatched or too few samples.
    """
    config = config or ShortTraining()
    if images.dim() != 4 or labels.shape != (len(images),):
        raise SpikeNASError(f"images must be [n, C, H, W] and labels [n]; got {tuple(images.shape)} and "
                            f"{tuple(labels.shape)}")
    n_test = int(round(config.holdout * len(images)))
    if n_test < 1 or len(images) - n_test < 2:
        raise SpikeNASError(f"{len(images)} labelled samples are too few for holdout {config.holdout}")
    batch_size = min(config.batch_size, len(images) - n_test)
    size = min(config.input_size, images.shape[-1])
    start = time.perf_counter()
    rng = np.random.default_rng(derived_seed(seed, "short_training", "data"))
    order = torch.from_numpy(rng.permutation(len(images)))
    x = images
    if size != images.shape[-1]:
        x = nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    test_x, test_y = x[order[:n_test]], labels[order[:n_test]]
    train_x, train_y = x[order[n_test:]], labels[order[n_test:]]
    narrow = macro.replace(width=config.width, input_size=size, hidden=config.hidden)
    model = build_network(list(cells), narrow, seed=derived_seed(seed, "short_training", "weights"))
    head_init(model, seed=derived_seed(seed, "short_training", "head"))
    optimiser = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps)
    generator = torch.Generator().manual_seed(derived_seed(seed, "short_training", "batches"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, "short_training", "dropout"))
        model.train()
        tail: list[float] = []
        for step in range(config.steps):
            pick = torch.randint(0, len(train_x), (batch_size,), generator=generator)
            optimiser.zero_grad(set_to_none=True)
            batch_loss = nn.functional.cross_entropy(model(train_x[pick]), train_y[pick])
            batch_loss.backward()
            optimiser.step()
            if 4 * step >= 3 * config.steps:
                tail.append(float(batch_loss.detach()))
            schedule.step()
            functional.reset_net(model)
    model.eval()
    with torch.no_grad():
        logits = model(test_x)
        functional.reset_net(model)
    loss = float(nn.functional.cross_entropy(logits, test_y))
    accuracy = float((logits.argmax(dim=1) == test_y).double().mean())
    train_loss = float(np.mean(tail))
    return ShortTrainingResult(
        train_loss if math.isfinite(train_loss) else float("inf"),
        accuracy,
        loss if math.isfinite(loss) else float("inf"),
        time.perf_counter() - start,
    )


def scoring_data(candidate: Candidate) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images [n, C, H, W], labels [n])`` from the candidate's batches: ``(images, labels)`` pairs, or image
    tensors, which get fixed class-balanced labels ``y_i = i mod classes`` (as the gradient scores use)."""
    if not candidate.batches:
        raise SpikeNASError("short_training trains on the scoring data: the candidate has no batches")
    if all(isinstance(b, tuple) and len(b) == 2 for b in candidate.batches):
        return torch.cat([b[0] for b in candidate.batches]), torch.cat([b[1] for b in candidate.batches])
    if not all(isinstance(b, torch.Tensor) for b in candidate.batches):
        raise SpikeNASError("batches must all be image tensors or all (images, labels) pairs, got "
                            f"{[type(b).__name__ for b in candidate.batches]}")
    images = torch.cat(list(candidate.batches))
    return images, torch.arange(len(images)) % candidate.macro.num_classes


@register_score(
    "short_training",
    doc="""Minus the training loss of the last quarter of 150 SGD steps of the candidate's cells in a width-4
    network on 16x16 inputs (three quarters of the scoring data; fixed balanced labels when the batches carry
    none, real ones when they are (images, labels) pairs): how fast the architecture learns, the cheapest
    multi-fidelity signal, which the benchmark's learning curves show ranks architectures better than
    training-free scores. About 10 s per candidate on one idle CPU core.""",
    needs=("training",),
)
def _short_training(candidate: Candidate) -> float:
    images, labels = scoring_data(candidate)
    return -short_training(candidate.cells, candidate.macro, images, labels, seed=candidate.seed).train_loss
