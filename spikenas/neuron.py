"""Spiking neuron settings and construction: LIF (the cell space), IAF (the Speck space) and PLIF (the AutoSNN
space), spikingjelly multi-step neurons."""

from __future__ import annotations

from dataclasses import dataclass, replace

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


def make_iaf(config: NeuronConfig) -> neuron.IFNode:
    """A multi-step integrate-and-fire neuron on ``[T, B, ...]`` (float spikes): ``v <- v + x``, a spike when
    ``v >= v_threshold``, then ``v <- v - v_threshold`` (subtractive reset). This is sinabs' ``IAFSqueeze`` with
    ``SingleSpike`` and ``MembraneSubtract`` and no lower bound, step for step; ``tau`` and ``v_reset`` are
    unused."""
    return neuron.IFNode(
        v_threshold=config.v_threshold,
        v_reset=None,
        surrogate_function=surrogate.ATan(alpha=config.surrogate_alpha),
        detach_reset=config.detach_reset,
        step_mode="m",
    )


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
