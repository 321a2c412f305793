"""Spike counting (AutoSNN's convention): spikes per sample, summed over timesteps and layers.

For each spikingjelly neuron module (a "spiking layer") the count is the number of spikes it emits
for one sample over all T timesteps, averaged over the samples seen; the network's count is the sum
over its spiking layers. Firing rate = count / (neurons of the layer x T).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from spikingjelly.activation_based import functional
from torch import nn

from spikenas.scoring import spiking_neurons


@dataclass
class SpikeStats:
    """Spike counts of a network over the samples it was run on."""

    samples: int = 0  # samples seen
    per_layer: dict[str, float] = field(default_factory=dict)  # mean spikes per sample, summed over T
    rates: dict[str, float] = field(default_factory=dict)  # mean firing rate per neuron and timestep

    @property
    def total(self) -> float:
        """Mean spikes per sample over all spiking layers and timesteps (AutoSNN's ``spikes``)."""
        return float(sum(self.per_layer.values()))

    def to_dict(self) -> dict:
        return {"samples": self.samples, "total": self.total, "per_layer": self.per_layer, "rates": self.rates}


class SpikeCounter:
    """Context manager that hooks every spikingjelly neuron of a model and accumulates its spikes::

        with SpikeCounter(model) as counter:
            model(x)            # any number of forward passes
        stats = counter.stats(samples=len(x))
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._spikes: dict[str, float] = {}  # name -> spikes emitted
        self._slots: dict[str, int] = {}  # name -> neuron-timestep-sample slots seen
        self._handles: list = []

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            out = (output[0] if isinstance(output, tuple) else output).detach()
            self._spikes[name] = self._spikes.get(name, 0.0) + float((out != 0).sum())
            self._slots[name] = self._slots.get(name, 0) + out.numel()

        return hook

    def __enter__(self) -> SpikeCounter:
        for name, module in spiking_neurons(self.model):
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def stats(self, samples: int) -> SpikeStats:
        """Statistics over ``samples`` samples (all that passed through the model while hooked)."""
        out = SpikeStats(samples=samples)
        for name, spikes in self._spikes.items():
            out.per_layer[name] = spikes / samples
            out.rates[name] = spikes / self._slots[name] if self._slots[name] else 0.0
        return out


def count_spikes(model: nn.Module, batches: Iterable[torch.Tensor]) -> SpikeStats:
    """Run ``model`` (eval mode, no gradients) over image batches ``[B, ...]`` and count its spikes."""
    was_training = model.training
    model.eval()
    samples = 0
    try:
        with SpikeCounter(model) as counter, torch.no_grad():
            for x in batches:
                functional.reset_net(model)
                model(x)
                samples += x.shape[0]
        return counter.stats(samples)
    finally:
        functional.reset_net(model)
        model.train(was_training)
