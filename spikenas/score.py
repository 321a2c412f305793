"""Training-free score of a spiking network: log|det K| of its spike-pattern kernel.

Every spikingjelly neuron is hooked; each call of a neuron at each timestep gives binary patterns
``x`` of shape ``[B, N]`` (one row per sample). From its Hamming distances ``H`` a ``B x B`` kernel
is built (see :func:`kernels.spike_gram` for the formulas), accumulated over all calls (summed, or
averaged as SNASNet's code does), and the score of a batch is ``log|det K|``. The score of a model is
the mean over batches. Kernel computation goes through :mod:`kernels`, whose backend is chosen by
name, by ``$SPIKENAS_BACKEND``, or automatically (the fastest available).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.neuron import BaseNode
from torch import nn

import kernels
from spikenas.errors import SpikeNASError

KERNELS = ("sahd", "sahd_rate", "hamming")
REDUCTIONS = ("mean", "sum")
BN_MODES = ("train", "eval")
NeuronFilter = Callable[[str, nn.Module], bool]


@dataclass(frozen=True)
class ScoreConfig:
    """How a network is scored (the batches themselves are chosen by the caller)."""

    kernel: str = "sahd"  # sahd (SNASNet), sahd_rate (no N in the normaliser), hamming (NASWOT)
    alpha: float = 0.5  # SAHD's weight on the normalised Hamming distance
    reduce: str = "mean"  # combine per-call kernels by mean (SNASNet's code) or sum (its paper)
    bn_mode: str = "train"  # BatchNorm uses batch statistics (train) or running ones (eval)
    backend: str | None = None  # kernel backend: torch, cpp, triton; None = $SPIKENAS_BACKEND or auto
    name: str = "conv_depth"  # registered score (spikenas.scores); "sahd": SNASNet's reference with the options above
    tie_break: tuple[str, ...] = ("depth_skip", "hamming")  # scores ordering, in turn, the candidates tied at the top

    def __post_init__(self) -> None:
        for name, allowed in (("kernel", KERNELS), ("reduce", REDUCTIONS), ("bn_mode", BN_MODES)):
            if getattr(self, name) not in allowed:
                raise SpikeNASError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not self.alpha > 0:
            raise SpikeNASError(f"alpha must be > 0, got {self.alpha!r}")
        object.__setattr__(self, "tie_break", tuple(self.tie_break))
        if self.backend not in (None, "auto", *kernels.BACKENDS):
            raise SpikeNASError(f"backend must be one of {kernels.BACKENDS} or auto, got {self.backend!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScoreResult:
    """Outcome of scoring one network on one or more batches."""

    score: float  # mean over batches of log|det K|; -inf if any K is singular
    logdets: list[float] = field(default_factory=list)  # log|det K| per batch
    signs: list[float] = field(default_factory=list)  # sign of det K per batch (0: singular)
    num_calls: int = 0  # neuron calls (layers x timesteps) per batch
    seconds: float = 0.0  # wall time of the forward passes and kernels
    status: str = "ok"  # ok | singular | no_neurons

    def to_dict(self) -> dict:
        return asdict(self)


def spiking_neurons(model: nn.Module) -> list[tuple[str, BaseNode]]:
    """The spikingjelly neurons of ``model`` with their qualified names, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BaseNode)]


class _KernelAccumulator:
    """Forward hooks that fold each neuron call's spikes into a running ``[B, B]`` kernel."""

    def __init__(self, config: ScoreConfig) -> None:
        self.config = config
        self.total: torch.Tensor | None = None
        self.calls = 0

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(output, tuple):
            output = output[0]
        if getattr(module, "step_mode", "s") == "m":
            spikes = output.reshape(output.shape[0], output.shape[1], -1)  # [T, B, N]
        else:
            spikes = output.reshape(1, output.shape[0], -1)  # one timestep per call
        part = kernels.spike_gram_dense(
            spikes, kind=self.config.kernel, alpha=self.config.alpha, backend=self.config.backend
        )
        self.total = part if self.total is None else self.total + part
        self.calls += spikes.shape[0]


def set_bn_mode(model: nn.Module, bn_mode: str) -> None:
    """Put ``model`` in eval mode, with its BatchNorm layers in train mode when ``bn_mode`` is ``train``."""
    model.eval()
    if bn_mode == "train":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()


def hooked_forward(
    model: nn.Module, inputs: torch.Tensor, neurons: list[nn.Module], hook: Callable, *, bn_mode: str
) -> None:
    """One no-grad forward pass of ``model`` with ``hook`` on ``neurons``, from reset neuron states.

    The model's train/eval mode and its BatchNorm running statistics are left as they were found.
    """
    handles = [m.register_forward_hook(hook) for m in neurons]
    was_training = model.training
    saved = {k: v.clone() for k, v in model.state_dict().items() if not v.is_floating_point() or "running" in k}
    try:
        set_bn_mode(model, bn_mode)
        with torch.no_grad():
            functional.reset_net(model)
            model(inputs)
            functional.reset_net(model)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        if saved:
            model.load_state_dict(saved, strict=False)


def kernel_matrix(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    config: ScoreConfig = ScoreConfig(),
    neuron_filter: NeuronFilter | None = None,
) -> tuple[torch.Tensor, int]:
    """The combined kernel of one batch.

    :param model: any module containing spikingjelly neurons (single- or multi-step).
    :param inputs: what ``model`` takes; its first dimension (for multi-step neurons the second)
        is the batch B, B >= 1.
    :param neuron_filter: keep only neurons for which ``filter(name, module)`` is true.
    :returns: (float64 ``[B, B]`` kernel, number of neuron calls folded into it).
    :raises SpikeNASError: if no neuron fired a call (no spikingjelly neuron was run).
    """
    neurons = [(n, m) for n, m in spiking_neurons(model) if neuron_filter is None or neuron_filter(n, m)]
    if not neurons:
        raise SpikeNASError(f"{type(model).__name__} has no spikingjelly neurons to score")
    accumulator = _KernelAccumulator(config)
    hooked_forward(model, inputs, [m for _, m in neurons], accumulator, bn_mode=config.bn_mode)
    if accumulator.total is None:
        raise SpikeNASError(f"no neuron of {type(model).__name__} was called during the forward pass")
    total = accumulator.total
    if config.reduce == "mean":
        total = total / accumulator.calls
    return total, accumulator.calls


def score_network(
    model: nn.Module,
    batches: torch.Tensor | Iterable[torch.Tensor],
    *,
    config: ScoreConfig = ScoreConfig(),
    neuron_filter: NeuronFilter | None = None,
) -> ScoreResult:
    """Score ``model`` on one batch or several: the mean of ``log|det K|`` over batches.

    A singular K (for example two identical samples in a batch) makes that batch's log|det| -inf,
    the score -inf and the status ``singular``; the sign of det K is kept in ``signs``.
    """
    if isinstance(batches, torch.Tensor):
        batches = [batches]
    start = time.perf_counter()
    result = ScoreResult(score=0.0)
    for batch in batches:
        matrix, calls = kernel_matrix(model, batch, config=config, neuron_filter=neuron_filter)
        sign, logdet = kernels.slogdet(matrix, backend=config.backend)
        result.signs.append(float(sign))
        result.logdets.append(float(logdet))
        result.num_calls = calls
    if not result.logdets:
        raise SpikeNASError("batches is empty: give at least one input batch")
    result.seconds = time.perf_counter() - start
    if any(s == 0 or not math.isfinite(v) for s, v in zip(result.signs, result.logdets, strict=True)):
        result.score, result.status = float("-inf"), "singular"
    else:
        result.score = sum(result.logdets) / len(result.logdets)
    return result
