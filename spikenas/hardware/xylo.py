"""SynSense Xylo Audio 2 (SYNS61201): one layer of hidden neurons with dense input, recurrent and output weights.

Rockpool's mapper for the chip (rockpool 3.1.0, ``rockpool/devices/xylo/syns61201/xylo_mapper.py``) places a
network's neurons on the chip's hidden and output neurons and its weights in three dense matrices: input ->
hidden, hidden -> hidden (every hidden-to-hidden weight, so feed-forward hidden layers too) and hidden ->
output. It maps dense weights and neurons only, so a network with a convolution or a pooling layer is refused.

Model: the network's output population (its output layer's neurons, or the readout Linear's outputs) takes the
output neurons, every other population hidden neurons, and the weight layers reading the network input take
input channels; each must stay within the chip's. The weight matrices are sized by those counts, so they hold
any network whose neurons fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from spikenas.hardware.populations import WEIGHT_KINDS, populations
from spikenas.hardware.target import Source, Target, TargetFit, positive_int, register_target

if TYPE_CHECKING:
    from spikenas.layer_graph import LayerGraph

MAPPER = Source(
    title="SynSense, rockpool 3.1.0, Xylo Audio 2 mapper",
    where="https://github.com/synsense/rockpool, rockpool/devices/xylo/syns61201/xylo_mapper.py, mapper()",
    says="mapper(graph, weight_dtype, threshold_dtype, dash_dtype, max_hidden_neurons: int = 1000, "
         "max_output_neurons: int = 8): 'Default: 1000, matching Xylo hardware', 'Default: 8, matching Xylo "
         "hardware'; weight_dtype 'Data type for mapped weight parameters. Default: \"int8\"'; it builds the "
         "weights_in, weights_rec and weights_out matrices from LinearWeights modules only",
    constants=("max_hidden_neurons", "max_output_neurons", "weight_bits"),
)
DRC = Source(
    title="SynSense, rockpool 3.1.0, Xylo design rules (used by the Xylo Audio 2 mapper)",
    where="https://github.com/synsense/rockpool, rockpool/devices/xylo/syns61300/xylo_mapper.py, xylo_drc "
          "(le_16_input_channels, first_module_is_a_weight, no_consecutive_weights, "
          "at_least_two_neuron_layers_needed)",
    says="'Xylo only supports up to 16 input channels.'; 'The network input must go first through a weight.'; "
         "'Inputs to linear weights may not be linear weights.'; 'At least two layers of neurons are required "
         "to map to hidden and output layers on Xylo.'",
    constants=("max_input_channels",),
)

#: kinds that only route values between weights and neurons (BatchNorm folds into the weights before it)
PASS_THROUGH = ("identity", "flatten", "dropout", "sum", "bn")
#: the torch module a refused kind stands for, as a user knows it
MODULES = {"conv": "Conv2d", "avgpool": "AvgPool2d", "maxpool": "MaxPool2d", "sumpool": "SumPool2d"}


@dataclass(frozen=True)
class XyloTarget(Target):
    """Xylo Audio 2: hidden, output and input limits of rockpool's mapper."""

    max_hidden_neurons: int = 1000
    max_output_neurons: int = 8
    max_input_channels: int = 16
    weight_bits: int = 8
    name: str = "xylo"
    description: str = ("SynSense Xylo Audio 2 (SYNS61201): up to 1000 hidden and 8 output neurons, 16 input "
                        "channels, int8 dense weights; no convolutions")
    exporter: str = "nir"

    sources: ClassVar[tuple[Source, ...]] = (MAPPER, DRC)

    def __post_init__(self) -> None:
        for key in ("max_hidden_neurons", "max_output_neurons", "max_input_channels", "weight_bits"):
            positive_int(self.name, key, getattr(self, key))

    def refusal(self, graph: LayerGraph) -> str | None:
        """The first layer rockpool's Xylo mapper has no mapping for, as one line; None if every layer maps."""
        mapper = "Xylo's mapper (rockpool 3.1.0) maps dense and recurrent weights only"
        for layer in graph.layers:
            if layer.neurons > 0:
                if not layer.inputs:
                    return (f"{self.name} cannot run layer {layer.name!r} ({layer.kind}): the network input must go "
                            f"first through a weight on Xylo")
                continue
            if layer.kind in WEIGHT_KINDS and layer.kind != "conv":
                if layer.inputs and not layer.in_spikes:
                    return (f"{self.name} cannot run layer {layer.name!r} (Linear): its input is not spikes, and "
                            f"{mapper} between layers of neurons")
                continue
            if layer.kind in PASS_THROUGH:
                continue
            module = MODULES.get(layer.kind, layer.kind)
            return (f"{self.name} cannot run layer {layer.name!r} ({module}): {mapper}; a network with convolutions "
                    f"or pooling needs a convolutional chip")
        count = len(populations(graph))
        if count < 2:
            return (f"{self.name} needs a layer of hidden neurons and one of output neurons; the network has "
                    f"{count} layer{'s' if count != 1 else ''} of neurons")
        return None

    def place(self, graph: LayerGraph, *, timesteps: int) -> TargetFit:
        """Hidden neurons, output neurons and input channels against the chip's (``timesteps`` does not change
        them)."""
        pops = populations(graph)
        output = next(p for p in pops if p.name == graph.output)
        hidden = sum(p.neurons for p in pops if p is not output)
        inputs = max((math.prod(layer.in_shape) for layer in graph.layers
                      if layer.kind in WEIGHT_KINDS and not layer.inputs), default=0)
        weights = sum(p.weights for p in pops)
        units = [
            {"unit": "hidden neurons", "layers": [p.name for p in pops if p is not output], "used": hidden,
             "limit": self.max_hidden_neurons},
            {"unit": "output neurons", "layers": [output.name], "used": output.neurons,
             "limit": self.max_output_neurons},
            {"unit": "input channels", "used": inputs, "limit": self.max_input_channels},
        ]
        totals = {"neurons": hidden + output.neurons, "hidden_neurons": hidden, "output_neurons": output.neurons,
                  "input_channels": inputs, "synapses": sum(p.synapses for p in pops), "weights": weights,
                  "weight_bytes": -(-weights * self.weight_bits // 8)}
        reason = None
        for unit in units:
            if unit["used"] > unit["limit"]:
                reason = (f"{self.name}: the network needs {unit['used']:,} {unit['unit']}, more than the "
                          f"{unit['limit']:,} of Xylo Audio 2")
                break
        return TargetFit(self.name, reason is None, reason, units, totals)


register_target(XyloTarget())
