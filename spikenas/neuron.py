"""Spiking neuron settings and construction: LIF (the cell space), IAF (the Speck space) and PLIF (the AutoSNN
space), spikingjelly multi-step neurons."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from spikingjelly.activation_based import neuron, surrogate


@dataclass(frozen=True)
class NeuronConfig:
    """SNASNet's LIF: V <- V + (X - V) / tau, spike at V >= v_threshold, hard reset to v_reset."""

    tau: float = 4.0 / 3.0  # membrane time constant; spikingjelly requires tau > 1
    v_threshold: float = 1.0  # firing threshold
    v_reset: float = 0.0  # hard-reset potential
    detach_reset: bool = True  # no gradient through the reset
    surrogate_alpha: float = 2.0  # sharpness of the ATan surrogate gradient

    def with_threshold(self, v_threshold: float) -> NeuronConfig:
        """A copy with another firing threshold."""
        return replace(self, v_threshold=v_threshold)


def make_lif(config: NeuronConfig) -> neuron.LIFNode:
    """A multi-step LIF on ``[T, B, ...]`` inputs, returning float spikes of the same shape."""
    return neuron.LIFNode(
        tau=config.tau,
        decay_input=True,
        v_threshold=config.v_threshold,
        v_reset=config.v_reset,
        surrogate_function=surrogate.ATan(alpha=config.surrogate_alpha),
        detach_reset=config.detach_reset,
        step_mode="m",
    )


class IAFNode(neuron.IFNode):
    """Multi-step integrate-and-fire neurons on ``[T, B, ...]`` (float spikes): ``v <- v + x``; a spike when
    ``v >= v_threshold``, then ``v <- max(v - v_threshold, -v_threshold)`` (subtractive reset, and a floor one
    threshold below zero). This is sinabs' ``IAFSqueeze(spike_fn=SingleSpike, reset_fn=MembraneSubtract(),
    min_v_mem=-v_threshold)`` step for step, the neuron Speck runs: its membrane has a lower bound, and sinabs
    discretises weights and thresholds for the chip over the range [floor, threshold]."""

    def __init__(self, config: NeuronConfig) -> None:
        super().__init__(v_threshold=config.v_threshold, v_reset=None,
                         surrogate_function=surrogate.ATan(alpha=config.surrogate_alpha),
                         detach_reset=config.detach_reset, step_mode="m")

    def single_step_functional_forward(self, inputs: tuple[torch.Tensor, ...], states: tuple[object, ...],
                                       **kwargs: object) -> tuple[tuple[torch.Tensor, ...], tuple[object, ...]]:
        """spikingjelly's IF step (charge, fire, subtractive reset), then the floor."""
        outputs, (v, *rest) = super().single_step_functional_forward(inputs, states, **kwargs)
        return outputs, (torch.clamp_min(v, -self.v_threshold), *rest)

    def multi_step_functional_forward(self, inputs: tuple[torch.Tensor, ...], states: tuple[object, ...],
                                      **kwargs: object) -> tuple[tuple[torch.Tensor, ...], tuple[object, ...]]:
        """:meth:`single_step_functional_forward` over the T steps of ``inputs`` (``[T, ...]`` each)."""
        spikes = []
        for t in range(inputs[0].shape[0]):
            (spike,), states = self.single_step_functional_forward(tuple(x[t] for x in inputs), states, **kwargs)
            spikes.append(spike)
        return (torch.stack(spikes),), states


def make_iaf(config: NeuronConfig) -> IAFNode:
    """The Speck space's integrate-and-fire neurons with ``config``'s threshold and surrogate (``tau`` and
    ``v_reset`` are unused); see :class:`IAFNode`."""
    return IAFNode(config)


@dataclass(frozen=True)
class PLIFConfig:
    """spikingjelly ParametricLIFNode settings (AutoSNN's)."""

    init_tau: float = 2.0  # initial membrane time constant; tau is learned through w = -log(tau - 1)
    v_threshold: float = 1.0  # firing threshold
    v_reset: float = 0.0  # hard-reset potential
    detach_reset: bool = True  # no gradient through the reset
    surrogate_alpha: float = 2.0  # sharpness of the ATan surrogate gradient


def make_plif(config: PLIFConfig) -> neuron.ParametricLIFNode:
    """A multi-step PLIF on ``[T, B, ...]``, returning float spikes; one learnable parameter."""
    return neuron.ParametricLIFNode(
        init_tau=config.init_tau,
        v_threshold=config.v_threshold,
        v_reset=config.v_reset,
        surrogate_function=surrogate.ATan(alpha=config.surrogate_alpha),
        detach_reset=config.detach_reset,
        step_mode="m",
    )
