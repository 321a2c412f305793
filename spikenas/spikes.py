"""Spike counting (AutoSNN's convention): spikes per sample, summed over timesteps and layers.

For each spikingjelly neuron module (a "spiking layer") the count is the number of spikes it emits
for one sample over all T timesteps, averaged over the samples seen; the network's count is the sum
over its spiking layers. Firing rate = count / (neurons of the layer x T). The spikes are counted by
:class:`spikenas.scoring.recorder.SpikeTally`, the project's one recorder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from spikenas.scoring.recorder import SpikeTally, neuron_pass


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

    @classmethod
    def from_tally(cls, tally: SpikeTally, samples: int) -> SpikeStats:
        """Statistics of what ``tally`` counted over ``samples`` samples (all that passed while it was entered)."""
        out = cls(samples=samples)
        for name, spikes in tally.spikes.items():
            out.per_layer[name] = spikes / samples
            out.rates[name] = spikes / tally.slots[name] if tally.slots[name] else 0.0
        return out


def count_spikes(model: nn.Module, batches: Iterable[torch.Tensor]) -> SpikeStats:
    """Run ``model`` (eval mode, no gradients, from reset neuron states) over image batches ``[B, ...]`` and
    count its spikes; the model's train/eval mode is restored afterwards."""
    samples = 0
    with SpikeTally(model) as tally:
        for x in batches:
            with neuron_pass(model, bn_mode="eval", no_grad=True):
                model(x)
            samples += x.shape[0]
    return SpikeStats.from_tally(tally, samples)
