"""Intel Loihi 2: neuro cores holding neurons and the synapses that end on them.

Model (:mod:`spikenas.hardware.populations`): every population (a spiking layer, or the readout) takes whole
neuro cores, enough that each core's even share of its neurons and of its synapses stays within a core's; the
network fits one chip when its neurons, its synapses and the cores its populations take stay within the chip's.
Synapses are counted as connections (every connection of a convolution, no weight sharing), so convolutions are
priced at their expanded size, an upper bound where a compiler shares convolution weights.

Stated constants (Intel's Loihi 2 technology brief, 2021): 128 neuro cores, up to 1 million neurons and 120
million synapses per chip. The per-core limits are derived: the chip's figures divided by its 128 cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from spikenas.hardware.populations import Split, cores_needed, populations, split
from spikenas.hardware.target import Source, Target, TargetFit, positive_int, register_target

if TYPE_CHECKING:
    from spikenas.layer_graph import LayerGraph

BRIEF = Source(
    title="Intel Labs, \"Taking Neuromorphic Computing to the Next Level with Loihi 2\", Technology Brief (2021)",
    where="https://download.intel.com/newsroom/2021/new-technologies/neuromorphic-computing-loihi-2-brief.pdf "
          "(also https://www.intel.com/content/dam/www/central-libraries/us/en/documents/"
          "neuromorphic-computing-loihi-2-brief.pdf), the chip overview",
    says="a Loihi 2 chip has 128 neuromorphic cores and 6 embedded x86 cores, and supports up to 1 million "
         "neurons and 120 million synapses",
    constants=("cores", "neurons_per_chip", "synapses_per_chip"),
)
PER_CORE = Source(
    title="derived from the Loihi 2 technology brief's chip figures",
    where="this module: neurons_per_chip // cores and synapses_per_chip // cores",
    says="1,000,000 neurons / 128 cores = 7,812 (rounded down) neurons per core; 120,000,000 synapses / 128 "
         "cores = 937,500 synapses per core. Intel's brief gives no per-core figures; secondary descriptions "
         "(e.g. WikiChip's Loihi 2 page) give 8,192 neurons per core, 1,048,576 per chip",
    constants=("neurons_per_core", "synapses_per_core"),
    derived=True,
)


@dataclass(frozen=True)
class Loihi2Target(Target):
    """One Loihi 2 chip: populations over neuro cores, limited in neurons and synapses."""

    cores: int = 128
    neurons_per_chip: int = 1_000_000
    synapses_per_chip: int = 120_000_000
    neurons_per_core: int = 1_000_000 // 128
    synapses_per_core: int = 120_000_000 // 128
    name: str = "loihi2"
    description: str = ("Intel Loihi 2, one chip: 128 neuro cores, up to 1M neurons and 120M synapses; each layer "
                        "takes whole cores holding its neurons and their incoming synapses")
    exporter: str = "nir"

    sources: ClassVar[tuple[Source, ...]] = (BRIEF, PER_CORE)

    def __post_init__(self) -> None:
        for key in ("cores", "neurons_per_chip", "synapses_per_chip", "neurons_per_core", "synapses_per_core"):
            positive_int(self.name, key, getattr(self, key))

    def refusal(self, graph: LayerGraph) -> str | None:
        """Loihi 2's neuro cores run any layer of neurons with dense or convolutional synapses."""
        return None

    def place(self, graph: LayerGraph, *, timesteps: int) -> TargetFit:
        """Neurons and synapses per population and core, against the chip's (``timesteps`` does not change
        them)."""
        pops = populations(graph)
        cores_of = {p.name: cores_needed(p, [(p.neurons, self.neurons_per_core),
                                             (p.synapses, self.synapses_per_core)]) for p in pops}
        placed = split(pops, cores_of)
        units = [{
            "cores": [s.first_core, s.first_core + s.cores - 1], "layer": s.population.name,
            "weight_layers": list(s.population.weight_layers), "neurons": s.population.neurons,
            "neurons_per_core": s.per_core(s.population.neurons), "neurons_per_core_limit": self.neurons_per_core,
            "synapses": s.population.synapses, "synapses_per_core": s.per_core(s.population.synapses),
            "synapses_per_core_limit": self.synapses_per_core,
        } for s in placed]
        neurons = sum(p.neurons for p in pops)
        synapses = sum(p.synapses for p in pops)
        cores = sum(s.cores for s in placed)
        totals = {"neurons": neurons, "neurons_limit": self.neurons_per_chip, "synapses": synapses,
                  "synapses_limit": self.synapses_per_chip, "cores": cores, "cores_limit": self.cores,
                  "populations": len(pops)}
        reason = self._reason(placed, neurons, synapses, cores)
        return TargetFit(self.name, reason is None, reason, units, totals)

    def _reason(self, placed: list[Split], neurons: int, synapses: int, cores: int) -> str | None:
        if neurons > self.neurons_per_chip:
            return (f"{self.name}: the network has {neurons:,} neurons, more than the {self.neurons_per_chip:,} "
                    f"a chip holds")
        if synapses > self.synapses_per_chip:
            return (f"{self.name}: the network has {synapses:,} synapses, more than the {self.synapses_per_chip:,} "
                    f"a chip holds")
        for s in placed:
            pop = s.population
            if s.per_core(pop.synapses) > self.synapses_per_core:
                return (f"{self.name}: layer {pop.name!r} has {pop.synapses:,} synapses on {pop.neurons:,} neurons; "
                        f"even one neuron per core leaves {s.per_core(pop.synapses):,} synapses on a core, more "
                        f"than its {self.synapses_per_core:,}")
        if cores > self.cores:
            return (f"{self.name}: the network's {len(placed)} layers of neurons take {cores:,} neuro cores "
                    f"(up to {self.neurons_per_core:,} neurons and {self.synapses_per_core:,} synapses each), "
                    f"more than the chip's {self.cores}")
        return None


register_target(Loihi2Target())
