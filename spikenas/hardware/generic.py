"""The ``generic`` target: a chip described only by an on-chip memory budget and the bit widths it stores at.

Its figures are those of the deployment model (:func:`spikenas.deployment.memory_figures`): weights + neuron
state + the peak buffer, in bytes. Without a budget every network fits and :meth:`GenericTarget.fit` only
reports the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from spikenas.hardware.target import Source, Target, TargetFit, positive_int, register_target

if TYPE_CHECKING:
    from spikenas.deployment import DeploymentConfig
    from spikenas.layer_graph import LayerGraph


@dataclass(frozen=True)
class GenericTarget(Target):
    """On-chip bytes (weights + neuron state + peak buffer) against an optional budget."""

    families: ClassVar[tuple[str, ...]] = ("snasnet", "speck")  # any network's bytes can be counted

    budget_bytes: int | None = None  # on-chip memory; None: no limit
    weight_bits: int = 8
    state_bits: int = 16
    activation_bits: int = 8
    buffer_scope: str = "timestep"  # "timestep" or "all" (see spikenas.deployment)
    name: str = "generic"
    description: str = "any chip: on-chip bytes (weights + neuron state + peak buffer) against a budget"
    exporter: str = "nir"

    sources: ClassVar[tuple[Source, ...]] = (
        Source(
            title="SpikeNAS deployment model (spikenas.deployment.DeploymentConfig)",
            where="spikenas/deployment.py",
            says="settings, not chip figures: the budget is the user's, the bit widths default to the library's "
                 "DeploymentConfig (8-bit weights, 16-bit state, 8-bit activations, one timestep buffered)",
            constants=("budget_bytes", "weight_bits", "state_bits", "activation_bits", "buffer_scope"),
        ),
    )

    def __post_init__(self) -> None:
        positive_int(self.name, "budget_bytes", self.budget_bytes, allow_none=True)
        self.config()  # checks the bit widths and the scope

    def config(self) -> DeploymentConfig:
        """The deployment model's settings of this target.

        :raises SpikeNASError: a bit width outside 1..64 or an unknown buffer scope.
        """
        # imported here: spikenas.hardware's __init__ imports this module, and the deployment model imports
        # the network modules, which may import spikenas.hardware
        from spikenas.deployment import DeploymentConfig

        return DeploymentConfig(weight_bits=self.weight_bits, state_bits=self.state_bits,
                                activation_bits=self.activation_bits, buffer_scope=self.buffer_scope)

    def refusal(self, graph: LayerGraph) -> str | None:
        """A generic target stores any network."""
        return None

    def place(self, graph: LayerGraph, *, timesteps: int) -> TargetFit:
        """Weights, state and peak buffer of ``graph`` (:func:`spikenas.deployment.memory_figures`)."""
        from spikenas.deployment import memory_figures

        m = memory_figures(graph.layers, self.config(), timesteps)
        totals = {
            "weights": m.weights, "weight_bytes": m.weight_bytes, "neurons": m.neurons, "plif_time_constants": m.taus,
            "state_bytes": m.state_bytes, "peak_buffer_layer": m.peak_buffer_layer,
            "peak_buffer_bytes": m.peak_buffer_bytes, "onchip_bytes": m.onchip_bytes,
            "budget_bytes": self.budget_bytes,
        }
        units = [{"unit": "on-chip memory", "holds": "weights + neuron state + peak buffer",
                  "bytes": m.onchip_bytes, "limit_bytes": self.budget_bytes}]
        if self.budget_bytes is None or m.onchip_bytes <= self.budget_bytes:
            return TargetFit(self.name, True, None, units, totals)
        reason = (f"{self.name}: the network needs {m.onchip_bytes:,} B on chip (weights {m.weight_bytes:,} B + "
                  f"state {m.state_bytes:,} B + peak buffer {m.peak_buffer_bytes:,} B), over the budget of "
                  f"{self.budget_bytes:,} B")
        return TargetFit(self.name, False, reason, units, totals)


register_target(GenericTarget())
