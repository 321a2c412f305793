"""SpiNNaker2: processing elements (ARM Cortex-M4F cores), each with its own SRAM for code and data.

Model (:mod:`spikenas.hardware.populations`): every population (a spiking layer, or the readout) takes whole
processing elements (PEs), enough that each PE's even share of the population's bytes (neuron state at
``state_bits`` per neuron, plus the stored weights of its incoming weight layers at ``weight_bits``) fits the
PE's SRAM less ``code_bytes_per_pe``; the network fits one chip when its populations take at most the chip's
PEs. A PE runs software, so a convolution's kernel is stored once (weights, not connections). Everything is
held in the PEs' SRAM; the chip's external LPDDR4 DRAM is not counted.

Stated constants (SpiNNaker2 datasheet v0.03, 2021): 152 ARM Cortex-M4F processors per chip, each with 128
Kbytes of local code and data memory (taken as 128 x 1,024 bytes). The bit widths and the code reserve are
settings.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from spikenas.errors import SpikeNASError
from spikenas.hardware.populations import Population, cores_needed, populations, split
from spikenas.hardware.target import Source, Target, TargetFit, positive_int, register_target

if TYPE_CHECKING:
    from spikenas.layer_graph import LayerGraph

DATASHEET = Source(
    title="\"SpiNNaker2 - a chip multiprocessor for neural network simulation. Datasheet.\", version 0.03 "
          "(August 19, 2021), attached to an issue of SpiNNakerManchester/SpiNNMachine",
    where="https://github.com/SpiNNakerManchester/SpiNNMachine/files/14848134/SpiNN2datasheet.pdf, Features, "
          "item 1",
    says="152 ARM Cortex M4F processors, each with 128 Kbytes of local code and data memory (and a multicast "
         "router, 2 LPDDR4 PHYs for external SDRAM)",
    constants=("pes", "sram_bytes_per_pe"),
)
SETTINGS = Source(
    title="SpikeNAS settings (spikenas.deployment.DeploymentConfig defaults)",
    where="spikenas/deployment.py",
    says="not chip figures: weights at 8 bits and neuron state at 16 bits, as the deployment model's defaults; "
         "no SRAM reserved for code (the figures are a lower bound on the memory a PE needs)",
    constants=("weight_bits", "state_bits", "code_bytes_per_pe"),
)


@dataclass(frozen=True)
class SpiNNaker2Target(Target):
    """One SpiNNaker2 chip: populations over processing elements, limited by each PE's SRAM."""

    pes: int = 152
    sram_bytes_per_pe: int = 128 * 1024
    weight_bits: int = 8
    state_bits: int = 16
    code_bytes_per_pe: int = 0  # SRAM each PE keeps for its program
    name: str = "spinnaker2"
    description: str = ("SpiNNaker2, one chip: 152 ARM Cortex-M4F processing elements with 128 KB SRAM each; each "
                        "layer takes whole PEs holding its neuron state and the weights it receives")
    exporter: str = "nir"

    sources: ClassVar[tuple[Source, ...]] = (DATASHEET, SETTINGS)

    def __post_init__(self) -> None:
        for key in ("pes", "sram_bytes_per_pe", "weight_bits", "state_bits"):
            positive_int(self.name, key, getattr(self, key))
        code = self.code_bytes_per_pe
        if isinstance(code, bool) or not isinstance(code, numbers.Integral) or not 0 <= code < self.sram_bytes_per_pe:
            raise SpikeNASError(f"{self.name}: code_bytes_per_pe must be an integer in 0..{self.sram_bytes_per_pe - 1}"
                                f", got {code!r}")

    @property
    def data_bytes_per_pe(self) -> int:
        """SRAM bytes a PE has for neuron state and weights."""
        return self.sram_bytes_per_pe - self.code_bytes_per_pe

    def population_bytes(self, pop: Population) -> tuple[int, int]:
        """Bytes of ``pop``'s neuron state and of its weights (each rounded up to whole bytes)."""
        return -(-pop.neurons * self.state_bits // 8), -(-pop.weights * self.weight_bits // 8)

    def refusal(self, graph: LayerGraph) -> str | None:
        """SpiNNaker2's PEs run software neurons and synapses: any layer can be mapped."""
        return None

    def place(self, graph: LayerGraph, *, timesteps: int) -> TargetFit:
        """Bytes per population and PE, against a PE's SRAM and the chip's PEs (``timesteps`` does not change
        them)."""
        pops = populations(graph)
        sizes = {p.name: self.population_bytes(p) for p in pops}
        limit = self.data_bytes_per_pe
        cores_of = {p.name: cores_needed(p, [(sum(sizes[p.name]), limit)]) for p in pops}
        placed = split(pops, cores_of)
        units = []
        for s in placed:
            state, weights = sizes[s.population.name]
            units.append({
                "pes": [s.first_core, s.first_core + s.cores - 1], "layer": s.population.name,
                "weight_layers": list(s.population.weight_layers), "neurons": s.population.neurons,
                "weights": s.population.weights, "state_bytes": state, "weight_bytes": weights,
                "bytes_per_pe": s.per_core(state + weights), "bytes_per_pe_limit": limit,
                "neurons_per_pe": s.per_core(s.population.neurons),
            })
        used = sum(s.cores for s in placed)
        state_total = sum(v[0] for v in sizes.values())
        weight_total = sum(v[1] for v in sizes.values())
        totals = {"neurons": sum(p.neurons for p in pops), "weights": sum(p.weights for p in pops),
                  "synapses": sum(p.synapses for p in pops), "state_bytes": state_total,
                  "weight_bytes": weight_total, "bytes": state_total + weight_total,
                  "bytes_limit": self.pes * limit, "pes": used, "pes_limit": self.pes, "populations": len(pops)}
        reason = None
        over = [s for s in placed if s.per_core(sum(sizes[s.population.name])) > limit]
        if over:
            s = over[0]
            state, weights = sizes[s.population.name]
            reason = (f"{self.name}: layer {s.population.name!r} needs {state + weights:,} B (state {state:,} B + "
                      f"weights {weights:,} B) for {s.population.neurons:,} neurons; even one neuron per PE leaves "
                      f"{s.per_core(state + weights):,} B on a PE, more than its {limit:,} B of SRAM")
        elif used > self.pes:
            reason = (f"{self.name}: the network's {len(placed)} layers of neurons take {used:,} PEs ("
                      f"{state_total + weight_total:,} B, up to {limit:,} B each), more than the chip's {self.pes}")
        return TargetFit(self.name, reason is None, reason, units, totals)


register_target(SpiNNaker2Target())
