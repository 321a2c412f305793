"""Deployment memory and energy model, computed without building the network (like :mod:`spikenas.memory`).

What an embedded SNN target stores and spends for one inference of one sample:

* **weights**: every trained parameter of the memory model (Eq. 6-8: conv and Linear weights and biases,
  BatchNorm weight and bias as stored before folding) at ``weight_bits`` each, except PLIF's learned time
  constants, which count as neuron state. For the cell space this is exactly
  ``params_to_bytes(network_params(...), bits)``; a ``weight_bytes`` budget over the AutoSNN space keeps
  counting its PLIF constants as parameters, as its parameter model does.
* **neuron state**: one membrane potential per neuron of every LIF/PLIF layer (the shape of spikingjelly's
  ``v`` for one sample), plus one learned time constant per PLIF layer, at ``state_bits`` each.
* **peak buffer**: the largest tensor passed from one layer to the next (every layer's output: spikes at 1 bit,
  every other activation at ``activation_bits``), for one timestep (``buffer_scope="timestep"``, a target
  that runs the network step by step) or for all T (``"all"``, layer by layer). The stem runs once per
  inference (its output is repeated over T), so its buffer is the same in both scopes. A cell's node
  values have the cell's shape and are stood for by the cell output.
* **synaptic operations** (synops): for every conv or Linear layer whose input is spikes, the input's
  spikes times their fan-out (the outputs each input position reaches; border positions of a padded
  conv reach fewer; an average pool straight before a Linear is folded into it, so each pooled spike
  reaches every output). Spike maps are measured on a batch (:func:`measure_spike_maps`) or assumed from
  a firing rate per neuron and timestep when no data is given.
* **MACs**: multiply-accumulates of every conv or Linear layer whose input is not spikes (the stem, once
  per inference; in the AutoSNN space also layers after a skip's projection), counted densely as a
  FLOP counter does: ``C_out * H_out * W_out * C_in * k * k`` per timestep.
* **energy**: ``synops * E_AC + MACs * E_MAC`` with :class:`EnergyCosts` (45 nm defaults).

Every figure is derived from the layers of the network's layer graph (:class:`spikenas.layers.Layer` records of
:func:`spikenas.layer_graph.cell_network_graph`, or of the AutoSNN space's graph), named after the modules of the
built network, so tests can compare each one with forward hooks. A cell op's layers are those it registered
with (:func:`spikenas.ops.register_op`). :func:`enumerate_states_and_peaks` counts every cell of
an op set at once, so :class:`spikenas.memory.Budget` prices on-chip budgets before building anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.layer_graph import cell_network_graph, fixed_layers, is_cell_edge
from spikenas.layers import Layer
from spikenas.network import MacroConfig
from spikenas.ops import get_op, get_op_set
from spikenas.space import Genotype, digits_table, num_genotypes

DEFAULT_FIRING_RATE = 0.1  # spikes per neuron and timestep assumed when no data is given
BUFFER_SCOPES = ("timestep", "all")  # a buffer holds one timestep, or all T


@dataclass(frozen=True)
class EnergyCosts:
    """Energy per operation in picojoules.

    Defaults: Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm CMOS, 32-bit floating point: an add
    costs 0.9 pJ and a multiply 3.7 pJ, so an accumulate (AC, what a synaptic operation does) is 0.9 pJ and a
    multiply-accumulate (MAC) 4.6 pJ. This is the usual convention of SNN energy estimates (e.g. Spikformer,
    Zhou et al., ICLR 2023): ``E = E_MAC * MACs + E_AC * synops``.
    """

    ac_pj: float = 0.9  # one accumulate (one synaptic operation)
    mac_pj: float = 4.6  # one multiply-accumulate

    def __post_init__(self) -> None:
        for name in ("ac_pj", "mac_pj"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise SpikeNASError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class DeploymentConfig:
    """Bit widths and energy costs of a deployment target (these library defaults; the search and train
    commands report at ``--bits`` for every part unless told otherwise)."""

    weight_bits: int = 8  # k: bits per weight
    state_bits: int = 16  # m: bits per membrane potential and per PLIF time constant
    activation_bits: int = 8  # bits per non-spike activation in a buffer (spikes take 1 bit)
    buffer_scope: str = "timestep"  # timestep: buffers hold one timestep; all: all T
    energy: EnergyCosts = field(default_factory=EnergyCosts)  # per-operation energy

    def __post_init__(self) -> None:
        for name in ("weight_bits", "state_bits", "activation_bits"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 1 <= value <= 64):
                raise SpikeNASError(f"{name} must be an integer in 1..64, got {value!r}")
        if self.buffer_scope not in BUFFER_SCOPES:
            raise SpikeNASError(f"buffer_scope must be one of {BUFFER_SCOPES}, got {self.buffer_scope!r}")


def cell_network_layers(genotypes: Genotype | Sequence[Genotype], config: MacroConfig) -> list[Layer]:
    """Every layer of ``build_network(genotypes, config)`` (its layer graph's), in module-creation order."""
    return list(cell_network_graph(genotypes, config).layers)


# ----------------------------------------------------------------------------------------------------------
# Memory of one network


def _bytes(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


@dataclass(frozen=True)
class MemoryFigures:
    """Memory of one network on the target (bytes rounded up per part)."""

    weights: int  # parameters stored as weights (PLIF time constants excluded)
    neurons: int  # membrane potentials
    taus: int  # learned time constants (PLIF)
    peak_buffer_layer: str  # module whose output is the largest buffer
    peak_buffer_bits: int  # its size in bits (one timestep or all T, as the scope says)
    weight_bytes: int
    state_bytes: int
    peak_buffer_bytes: int

    @property
    def onchip_bytes(self) -> int:
        """Weights + neuron state + peak buffer."""
        return self.weight_bytes + self.state_bytes + self.peak_buffer_bytes


def memory_figures(layers: Sequence[Layer], target: DeploymentConfig, timesteps: int) -> MemoryFigures:
    """Weights, neuron state and peak buffer of a layer list on ``target``."""
    weights = sum(layer.params for layer in layers)
    neurons = sum(layer.neurons for layer in layers)
    taus = sum(layer.taus for layer in layers)
    peak, peak_name = 0, ""
    for layer in layers:
        bits = _scoped_bits(layer, target, timesteps)
        if bits > peak:
            peak, peak_name = bits, layer.name
    return MemoryFigures(
        weights=weights, neurons=neurons, taus=taus, peak_buffer_layer=peak_name, peak_buffer_bits=peak,
        weight_bytes=_bytes(weights, target.weight_bits), state_bytes=_bytes(neurons + taus, target.state_bits),
        peak_buffer_bytes=_bytes(peak, 1),
    )


# ----------------------------------------------------------------------------------------------------------
# Operations and energy


def spike_sources(layers: Sequence[Layer]) -> list[str]:
    """Names of the layers whose spikes some conv or Linear layer reads."""
    return sorted({layer.source for layer in layers if layer.in_spikes})


def measure_spike_maps(
    model: nn.Module, images: torch.Tensor, layers: Sequence[Layer]
) -> dict[str, np.ndarray]:
    """Run ``model`` (eval mode, no gradients) on ``images`` ``[B, C, H, W]`` float32 and return, for every
    spike source of ``layers``, float64 spikes per sample summed over timesteps and channels: ``[H, W]`` for a
    ``(C, H, W)`` output, ``[N]`` for an ``(N,)`` one."""
    sources = spike_sources(layers)
    modules = dict(model.named_modules())
    missing = [s for s in sources if s not in modules]
    if missing:
        raise SpikeNASError(f"the model has no modules {missing}: it does not match the deployment layers")
    # imported here: spikenas.scoring imports spikenas.memory, which imports this module
    from spikenas.scoring.recorder import OutputRecorder, neuron_pass

    names = {id(modules[name]): name for name in sources}
    maps: dict[str, np.ndarray] = {}

    def record(module: nn.Module, output: torch.Tensor) -> None:
        name = names[id(module)]
        out = output.detach().double()  # [T, B, C, H, W] or [T, B, N]
        summed = out.sum(dim=(0, 1, 2)) if out.dim() == 5 else out.sum(dim=(0, 1))
        maps[name] = maps.get(name, 0.0) + summed.numpy()

    with OutputRecorder([modules[name] for name in sources], record), neuron_pass(model, bn_mode="eval", no_grad=True):
        model(images)
    return {name: m / images.shape[0] for name, m in maps.items()}


def assumed_spike_maps(
    layers: Sequence[Layer], timesteps: int, rate: float | Mapping[str, float] = DEFAULT_FIRING_RATE
) -> dict[str, np.ndarray]:
    """Spike maps (as :func:`measure_spike_maps`) when every source neuron fires at ``rate`` spikes per
    timestep (one rate, or one per source name)."""
    by_name = {layer.name: layer for layer in layers}
    maps = {}
    for name in spike_sources(layers):
        r = rate[name] if isinstance(rate, Mapping) else rate
        if not (0.0 <= r <= 1.0):
            raise SpikeNASError(f"firing rate of {name} must be in [0, 1], got {r!r}")
        shape = by_name[name].out_shape
        spatial = shape[1:] if len(shape) == 3 else shape
        channels = shape[0] if len(shape) == 3 else 1
        maps[name] = np.full(spatial, r * timesteps * channels)
    return maps


@dataclass(frozen=True)
class OperationFigures:
    """Operations of one inference of one sample."""

    synops: float  # synaptic operations (accumulates) driven by spikes
    macs: int  # multiply-accumulates of layers with non-spike input
    energy_pj: float  # synops * ac_pj + macs * mac_pj
    per_layer_synops: dict[str, float]  # conv/linear name -> synops


def operation_figures(
    layers: Sequence[Layer], spike_maps: Mapping[str, np.ndarray], target: DeploymentConfig, timesteps: int
) -> OperationFigures:
    """Synops from spike maps times fan-out, MACs of non-spike-input layers, and the energy."""
    synops: dict[str, float] = {}
    macs = 0
    for layer in layers:
        if layer.kind not in ("conv", "linear"):
            continue
        if layer.in_spikes:
            if layer.source not in spike_maps:
                raise SpikeNASError(f"no spike map for {layer.source!r}, the input of {layer.name!r}")
            synops[layer.name] = float((np.asarray(spike_maps[layer.source]) * layer.fanout()).sum())
        else:
            macs += layer.dense_macs() * (timesteps if layer.per_step else 1)
    total = float(sum(synops.values()))
    energy = total * target.energy.ac_pj + macs * target.energy.mac_pj
    return OperationFigures(synops=total, macs=macs, energy_pj=energy, per_layer_synops=synops)


@dataclass(frozen=True)
class DeploymentReport:
    """All deployment figures of one network on one target."""

    target: DeploymentConfig
    timesteps: int
    memory: MemoryFigures
    operations: OperationFigures
    synops_source: str  # "measured on N samples" or "assumed firing rate r"

    def to_dict(self) -> dict:
        """JSON-ready figures (bytes, counts, picojoules and microjoules)."""
        m, o = self.memory, self.operations
        return {
            "target": asdict(self.target),
            "timesteps": self.timesteps,
            "weights": m.weights,
            "weight_bytes": m.weight_bytes,
            "neurons": m.neurons,
            "plif_time_constants": m.taus,
            "state_bytes": m.state_bytes,
            "peak_buffer_layer": m.peak_buffer_layer,
            "peak_buffer_bytes": m.peak_buffer_bytes,
            "onchip_bytes": m.onchip_bytes,
            "synops": o.synops,
            "synops_source": self.synops_source,
            "macs": o.macs,
            "energy_pj": o.energy_pj,
            "energy_uj": o.energy_pj * 1e-6,
            "per_layer_synops": o.per_layer_synops,
        }

    def summary(self) -> str:
        """One line for a terminal."""
        return deployment_summary(self.to_dict())


def deployment_summary(figures: dict) -> str:
    """One line for a terminal from :meth:`DeploymentReport.to_dict`'s figures."""
    t = figures["target"]
    return (
        f"on-chip {figures['onchip_bytes']:,} B = weights {figures['weight_bytes']:,} B ({t['weight_bits']} bit) + "
        f"state {figures['state_bytes']:,} B ({t['state_bits']} bit) + peak buffer {figures['peak_buffer_bytes']:,} B "
        f"({t['buffer_scope']}); {figures['synops']:,.0f} synops + {figures['macs']:,} MACs = "
        f"{figures['energy_uj']:.4f} uJ per inference ({figures['synops_source']})"
    )


def report_from_layers(
    layers: Sequence[Layer],
    timesteps: int,
    target: DeploymentConfig | None = None,
    *,
    model: nn.Module | None = None,
    images: torch.Tensor | None = None,
    firing_rate: float | Mapping[str, float] = DEFAULT_FIRING_RATE,
) -> DeploymentReport:
    """The deployment figures of the network whose deployed layers are ``layers`` (T = ``timesteps``).

    :param model: the built network (any weights); with ``images`` ``[B, C, H, W]`` float32, synops come
        from the spikes it emits on them. Without both, every spike source fires at ``firing_rate``.
    """
    target = target or DeploymentConfig()
    if (model is None) != (images is None):
        raise SpikeNASError("measured synops need both a model and images; give both or neither")
    if model is not None:
        maps = measure_spike_maps(model, images, layers)
        source = f"measured on {images.shape[0]} samples"
    else:
        maps = assumed_spike_maps(layers, timesteps, firing_rate)
        source = f"assumed firing rate {firing_rate}" if not isinstance(firing_rate, Mapping) else (
            "assumed firing rates per layer")
    return DeploymentReport(
        target=target, timesteps=timesteps, memory=memory_figures(layers, target, timesteps),
        operations=operation_figures(layers, maps, target, timesteps), synops_source=source,
    )


def deployment_report(
    genotypes: Genotype | Sequence[Genotype],
    config: MacroConfig,
    target: DeploymentConfig | None = None,
    *,
    model: nn.Module | None = None,
    images: torch.Tensor | None = None,
    firing_rate: float | Mapping[str, float] = DEFAULT_FIRING_RATE,
) -> DeploymentReport:
    """The deployment figures of ``build_network(genotypes, config)`` on ``target`` (default
    :class:`DeploymentConfig`); ``model``, ``images`` and ``firing_rate`` as in :func:`report_from_layers`.
    The AutoSNN space has :func:`spikenas.autosnn.deployment.deployment_report`."""
    return report_from_layers(
        cell_network_layers(genotypes, config), config.timesteps, target, model=model, images=images,
        firing_rate=firing_rate,
    )


# ----------------------------------------------------------------------------------------------------------
# Vectorised over the cells of an op set (spikenas.memory.Budget prices on-chip budgets with these)


def _scoped_bits(layer: Layer, target: DeploymentConfig, timesteps: int) -> int:
    bits = layer.buffer_bits(target.activation_bits)
    return bits * timesteps if target.buffer_scope == "all" and layer.per_step else bits


def cell_tables(
    op_set: str, config: MacroConfig, target: DeploymentConfig, position: int
) -> tuple[np.ndarray, np.ndarray]:
    """int64 ``[k**6]`` neuron states and int64 ``[k**6]`` peak buffer bits of every cell of ``op_set`` (index
    order) placed at cell ``position`` (0-based), counting only the cell's edge ops."""
    ops = get_op_set(op_set)
    c, size = config.cell_widths[position], config.cell_sizes[position]
    op_states = np.zeros(len(ops), dtype=np.int64)
    op_peak = np.zeros(len(ops), dtype=np.int64)
    for j, op in enumerate(ops):
        layers = get_op(op).edge_layers("edge", c, size, config.neuron)
        op_states[j] = _states(layers)
        op_peak[j] = _peak(layers, target, config.timesteps)
    digits = digits_table(op_set)  # [k**6, 6] op position on each edge
    return op_states[digits].sum(axis=1), op_peak[digits].max(axis=1)


def _states(layers: Sequence[Layer]) -> int:
    return sum(layer.neurons + layer.taus for layer in layers)


def _peak(layers: Sequence[Layer], target: DeploymentConfig, timesteps: int) -> int:
    return max((_scoped_bits(layer, target, timesteps) for layer in layers), default=0)


def fixed_states_and_peak(config: MacroConfig, target: DeploymentConfig) -> tuple[int, int]:
    """Neuron states and peak buffer bits of the layers outside the cells' edges (stem, cell outputs,
    downconvs, head)."""
    fixed = fixed_layers(config)
    return _states(fixed), _peak(fixed, target, config.timesteps)


def enumerate_states_and_peaks(
    op_set: str,
    config: MacroConfig,
    target: DeploymentConfig,
    *,
    position: int | None = None,
    cells: Sequence[Genotype] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """int64 ``[k**6]`` neuron states (potentials + time constants) and int64 ``[k**6]`` peak buffer bits of
    every network of ``op_set``'s cells in index order, without building anything.

    Positions vary as in :func:`spikenas.memory.enumerate_params`: the same cell everywhere
    (``position=None``), or only cell ``position`` with the others from ``cells``.
    """
    base_states, base_peak = fixed_states_and_peak(config, target)
    if position is None:
        varying = list(range(config.num_cells))
    else:
        if cells is None or len(cells) != config.num_cells:
            raise SpikeNASError(f"position={position} needs all {config.num_cells} cells, got {cells}")
        if not 0 <= position < config.num_cells:
            raise SpikeNASError(f"position must be in 0..{config.num_cells - 1}, got {position}")
        varying = [position]
        kept = [layer for layer in cell_network_graph(cells, config) if is_cell_edge(layer.name)
                and int(layer.name.split(".")[1]) != 2 * position]  # the edges of the cells that stay
        base_states += _states(kept)
        base_peak = max(base_peak, _peak(kept, target, config.timesteps))
    states = np.full(num_genotypes(op_set), base_states, dtype=np.int64)
    peak = np.full(num_genotypes(op_set), base_peak, dtype=np.int64)
    for p in varying:
        cell_states, cell_peak = cell_tables(op_set, config, target, p)
        states += cell_states
        peak = np.maximum(peak, cell_peak)
    return states, peak


def deployment_table(
    genotypes: Genotype | Sequence[Genotype],
    config: MacroConfig,
    bits: Sequence[int],
    *,
    model: nn.Module,
    images: torch.Tensor,
    energy: EnergyCosts | None = None,
) -> list[dict]:
    """:meth:`DeploymentReport.to_dict` of ``build_network(genotypes, config)`` with weights, state and
    activations at each of ``bits`` (buffers of one timestep), synops measured once: ``model`` run on
    ``images`` ``[B, C, H, W]`` float32."""
    layers = cell_network_layers(genotypes, config)
    maps = measure_spike_maps(model, images, layers)
    out = []
    for k in bits:
        target = DeploymentConfig(weight_bits=k, state_bits=k, activation_bits=k, energy=energy or EnergyCosts())
        report = DeploymentReport(
            target=target, timesteps=config.timesteps, memory=memory_figures(layers, target, config.timesteps),
            operations=operation_figures(layers, maps, target, config.timesteps),
            synops_source=f"measured on {images.shape[0]} samples",
        )
        out.append(report.to_dict())
    return out

