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

Every figure is derived from a list of :class:`DeployLayer` records (:func:`cell_network_layers`;
:func:`spikenas.autosnn.deployment.autosnn_layers`) named after the modules of the built network, so tests
can compare each one with forward hooks. Cell ops are described by profiles (:func:`register_op_profile`);
the built-in ops and SpikeNAS-Bench's ops have one. :func:`enumerate_states_and_peaks` counts every cell of
an op set at once, so :class:`spikenas.memory.Budget` prices on-chip budgets before building anything.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from spikingjelly.activation_based import functional
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig
from spikenas.ops import get_op, get_op_set
from spikenas.space import EDGES, Genotype, digits_table, num_genotypes

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


@dataclass(frozen=True)
class DeployLayer:
    """One layer of a deployed network, for one sample.

    ``name`` is the module's qualified name in the built network (``""`` for none). Shapes exclude batch
    and time: ``(C, H, W)`` or ``(N,)``.
    """

    name: str
    kind: str  # conv, linear, bn, lif, plif, avgpool, maxpool, identity, flatten, dropout, cell
    out_shape: tuple[int, ...]  # output of one sample at one timestep
    spikes: bool  # the output is binary spikes (1 bit each in a buffer)
    per_step: bool = True  # the output exists for every timestep (False: computed once, the stem)
    params: int = 0  # trained parameters (weights, biases, BN affine), excluding PLIF time constants
    neurons: int = 0  # membrane potentials
    taus: int = 0  # learned time constants (PLIF)
    in_shape: tuple[int, ...] = ()  # conv/linear: input of one sample at one timestep
    in_spikes: bool = False  # conv/linear: the input is spikes (synops) or not (MACs)
    source: str = ""  # conv/linear with spike input: the layer whose spikes it reads
    kernel: int = 1  # conv: kernel size
    stride: int = 1  # conv: stride
    padding: int = 0  # conv: zero padding
    pool: int = 1  # linear: an AvgPool2d(pool) of the source folded in front of it

    @property
    def out_features(self) -> int:
        return self.out_shape[0]

    def buffer_bits(self, activation_bits: int) -> int:
        """Bits of this layer's output for one sample and one timestep."""
        return math.prod(self.out_shape) * (1 if self.spikes else activation_bits)

    def fanout(self) -> np.ndarray:
        """float64 ``[H, W]`` (conv, or a linear with a folded pool) or ``[N]`` (linear): outputs reached
        by one spike at each input position, summed over the output channels."""
        if self.kind == "conv":
            _, h, w = self.in_shape
            return np.outer(_fan1d(h, self.kernel, self.stride, self.padding),
                            _fan1d(w, self.kernel, self.stride, self.padding)) * self.out_features
        if self.kind == "linear":
            if self.pool > 1:
                _, h, w = self.in_shape
                inside = np.zeros((h, w))
                inside[: h // self.pool * self.pool, : w // self.pool * self.pool] = 1.0
                return inside * self.out_features
            return np.full(math.prod(self.in_shape), float(self.out_features))
        raise SpikeNASError(f"layer {self.name!r} of kind {self.kind!r} has no synapses")

    def dense_macs(self) -> int:
        """Multiply-accumulates of one timestep, counted densely (padding included)."""
        if self.kind == "conv":
            return math.prod(self.out_shape) * self.in_shape[0] * self.kernel**2
        if self.kind == "linear":
            if self.pool > 1:
                c, h, w = self.in_shape
                return self.out_features * c * (h // self.pool) * (w // self.pool)
            return self.out_features * math.prod(self.in_shape)
        raise SpikeNASError(f"layer {self.name!r} of kind {self.kind!r} has no synapses")


def _fan1d(size: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Per input index along one axis: how many output indices read it."""
    out = (size + 2 * padding - kernel) // stride + 1
    fan = np.zeros(size)
    for o in range(out):
        lo = o * stride - padding
        fan[max(lo, 0) : min(lo + kernel, size)] += 1
    return fan


def conv_layer(name: str, cin: int, cout: int, size: int, kernel: int, *, source: tuple[str, bool], stride: int = 1,
               per_step: bool = True) -> DeployLayer:
    """A bias-free ``kernel x kernel`` conv with same padding on ``(cin, size, size)``; ``source`` is
    (the layer it reads, whether that layer emits spikes)."""
    out = (size + 2 * (kernel // 2) - kernel) // stride + 1
    return DeployLayer(
        name, "conv", (cout, out, out), False, per_step, params=kernel * kernel * cin * cout,
        in_shape=(cin, size, size), in_spikes=source[1], source=source[0] if source[1] else "",
        kernel=kernel, stride=stride, padding=kernel // 2,
    )


def bn_layer(name: str, channels: int, size: int, *, per_step: bool = True) -> DeployLayer:
    """A BatchNorm2d (weight and bias are parameters; it can fold into the conv before it)."""
    return DeployLayer(name, "bn", (channels, size, size), False, per_step, params=2 * channels)


def neuron_layer(name: str, shape: tuple[int, ...], *, plif: bool = False) -> DeployLayer:
    """A LIF (or PLIF, with one learned time constant) layer of ``shape`` neurons."""
    return DeployLayer(name, "plif" if plif else "lif", shape, True, neurons=math.prod(shape), taus=int(plif))


# An op profile maps (module prefix, channels, spatial size) to the layers of the op on one edge, whose
# input is the cell's (non-spike) node value of shape (channels, size, size).
OpProfile = Callable[[str, int, int], list[DeployLayer]]
_PROFILES: dict[str, OpProfile] = {}


def register_op_profile(op_name: str, profile: OpProfile) -> OpProfile:
    """Describe the deployed layers of cell op ``op_name`` (see :data:`OpProfile`); warns on overwrite."""
    if op_name in _PROFILES:
        warnings.warn(f"deployment profile of op {op_name!r} is already registered; replacing it", stacklevel=2)
    _PROFILES[op_name] = profile
    return profile


def op_layers(op_name: str, prefix: str, channels: int, size: int) -> list[DeployLayer]:
    """The deployed layers of op ``op_name`` on the edge module ``prefix``."""
    name = get_op(op_name).name
    if name not in _PROFILES:
        raise SpikeNASError(
            f"op {name!r} has no deployment profile; describe its layers with "
            "spikenas.deployment.register_op_profile"
        )
    return _PROFILES[name](prefix, channels, size)


def conv_bn_profile(kernel: int) -> OpProfile:
    """Profile of :func:`spikenas.ops.conv_bn`: LIF -> Conv(kernel) -> BN."""

    def profile(prefix: str, c: int, size: int) -> list[DeployLayer]:
        return [
            neuron_layer(f"{prefix}.0", (c, size, size)),
            conv_layer(f"{prefix}.1", c, c, size, kernel, source=(f"{prefix}.0", True)),
            bn_layer(f"{prefix}.2", c, size),
        ]

    return profile


register_op_profile("zero", lambda prefix, c, size: [])
register_op_profile("skip", lambda prefix, c, size: [DeployLayer(prefix, "identity", (c, size, size), False)])
register_op_profile("avgpool3x3", lambda prefix, c, size: [DeployLayer(prefix, "avgpool", (c, size, size), False)])
register_op_profile("conv1x1", conv_bn_profile(1))
register_op_profile("conv3x3", conv_bn_profile(3))
for _name in ("lif05_conv3x3", "lif10_conv3x3", "lif15_conv3x3"):  # SpikeNAS-Bench (spikenas.spikenas_bench)
    register_op_profile(_name, conv_bn_profile(3))


def _cell_layers(genotype: Genotype, stage: int, channels: int, size: int) -> list[DeployLayer]:
    layers = []
    for (src, dst), op in zip(EDGES, genotype.ops, strict=True):
        layers += op_layers(op, f"cells.{stage}.edges.{src}{dst}", channels, size)
    return layers


def _fixed_layers(config: MacroConfig) -> list[list[DeployLayer]]:
    """Layers outside the cells' edges, split as [stem, cell 1 output, downconv 2, cell 2 output, ..., head]."""
    c, size0 = config.cell_widths[0], config.cell_sizes[0]
    parts = [[
        conv_layer("stem.0", config.in_channels, c, config.input_size, 3, source=("", False), stride=config.stem_stride,
              per_step=False),
        bn_layer("stem.1", c, size0, per_step=False),
    ]]
    for i, (width, size) in enumerate(zip(config.cell_widths, config.cell_sizes, strict=True)):
        stage = 2 * i
        if i > 0:
            prev, s = width // 2, config.cell_sizes[i - 1]
            d = f"cells.{stage - 1}"
            parts.append([
                bn_layer(f"{d}.0", prev, s), neuron_layer(f"{d}.1", (prev, s, s)),
                conv_layer(f"{d}.2", prev, width, s, 3, source=(f"{d}.1", True)), bn_layer(f"{d}.3", width, s),
                DeployLayer(f"{d}.4", "avgpool", (width, size, size), False),
            ])
        parts.append([DeployLayer(f"cells.{stage}", "cell", (width, size, size), False)])
    last, size, final = config.cell_widths[-1], config.cell_sizes[-1], config.final_size
    flat = last * final * final
    outputs = config.vote * config.num_classes
    parts.append([
        bn_layer("head.0", last, size), neuron_layer("head.1", (last, size, size)),
        DeployLayer("head.2", "avgpool", (last, final, final), False),
        DeployLayer("head.3", "flatten", (flat,), False), DeployLayer("head.4", "dropout", (flat,), False),
        DeployLayer("head.5", "linear", (config.hidden,), False, params=flat * config.hidden,
                    in_shape=(last, size, size), in_spikes=True, source="head.1", pool=2),
        neuron_layer("head.6", (config.hidden,)),
        DeployLayer("head.7", "linear", (outputs,), False, params=config.hidden * outputs + outputs,
                    in_shape=(config.hidden,), in_spikes=True, source="head.6"),
    ])
    return parts


def cell_network_layers(genotypes: Genotype | Sequence[Genotype], config: MacroConfig) -> list[DeployLayer]:
    """Every deployed layer of ``build_network(genotypes, config)``, in forward order."""
    if isinstance(genotypes, Genotype):
        genotypes = [genotypes] * config.num_cells
    if len(genotypes) != config.num_cells:
        raise SpikeNASError(f"got {len(genotypes)} genotypes for num_cells={config.num_cells}")
    parts = _fixed_layers(config)
    layers = list(parts[0])
    for i, (g, width, size) in enumerate(zip(genotypes, config.cell_widths, config.cell_sizes, strict=True)):
        if i > 0:
            layers += parts[2 * i]
        layers += _cell_layers(g, 2 * i, width, size) + parts[2 * i + 1]
    return layers + parts[-1]


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


def memory_figures(layers: Sequence[DeployLayer], target: DeploymentConfig, timesteps: int) -> MemoryFigures:
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


def spike_sources(layers: Sequence[DeployLayer]) -> list[str]:
    """Names of the layers whose spikes some conv or Linear layer reads."""
    return sorted({layer.source for layer in layers if layer.in_spikes})


def measure_spike_maps(
    model: nn.Module, images: torch.Tensor, layers: Sequence[DeployLayer]
) -> dict[str, np.ndarray]:
    """Run ``model`` (eval mode, no gradients) on ``images`` ``[B, C, H, W]`` float32 and return, for every
    spike source of ``layers``, float64 spikes per sample summed over timesteps and channels: ``[H, W]`` for a
    ``(C, H, W)`` output, ``[N]`` for an ``(N,)`` one."""
    sources = spike_sources(layers)
    modules = dict(model.named_modules())
    missing = [s for s in sources if s not in modules]
    if missing:
        raise SpikeNASError(f"the model has no modules {missing}: it does not match the deployment layers")
    maps: dict[str, np.ndarray] = {}
    handles = []

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            out = output.detach().double()  # [T, B, C, H, W] or [T, B, N]
            summed = out.sum(dim=(0, 1, 2)) if out.dim() == 5 else out.sum(dim=(0, 1))
            maps[name] = maps.get(name, 0.0) + summed.numpy()

        return record

    for name in sources:
        handles.append(modules[name].register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            functional.reset_net(model)
            model(images)
    finally:
        for h in handles:
            h.remove()
        functional.reset_net(model)
        model.train(was_training)
    return {name: m / images.shape[0] for name, m in maps.items()}


def assumed_spike_maps(
    layers: Sequence[DeployLayer], timesteps: int, rate: float | Mapping[str, float] = DEFAULT_FIRING_RATE
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
    layers: Sequence[DeployLayer], spike_maps: Mapping[str, np.ndarray], target: DeploymentConfig, timesteps: int
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
    layers: Sequence[DeployLayer],
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


def _scoped_bits(layer: DeployLayer, target: DeploymentConfig, timesteps: int) -> int:
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
        layers = op_layers(op, "edge", c, size)
        op_states[j] = sum(layer.neurons + layer.taus for layer in layers)
        op_peak[j] = max((_scoped_bits(layer, target, config.timesteps) for layer in layers), default=0)
    digits = digits_table(op_set)  # [k**6, 6] op position on each edge
    return op_states[digits].sum(axis=1), op_peak[digits].max(axis=1)


def fixed_states_and_peak(config: MacroConfig, target: DeploymentConfig) -> tuple[int, int]:
    """Neuron states and peak buffer bits of the layers outside the cells' edges (stem, cell outputs,
    downconvs, head)."""
    fixed = [layer for part in _fixed_layers(config) for layer in part]
    return (sum(layer.neurons + layer.taus for layer in fixed),
            max(_scoped_bits(layer, target, config.timesteps) for layer in fixed))


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
        for j, g in enumerate(cells):
            if j != position:
                layers = _cell_layers(g, 2 * j, config.cell_widths[j], config.cell_sizes[j])
                base_states += sum(layer.neurons + layer.taus for layer in layers)
                base_peak = max([base_peak, *(_scoped_bits(layer, target, config.timesteps) for layer in layers)])
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
