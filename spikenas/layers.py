"""What a layer of a network is: its kind, shapes, parameters, neurons, inputs, and the module it builds.

A :class:`Layer` is one node of a network's layer graph (:mod:`spikenas.layer_graph`). Every consumer of a
network's description reads these records: the builder makes each layer's module with :func:`module_of` and
nests them with :func:`assemble`; the memory model sums ``params``; the deployment model reads shapes,
neurons, spikes and fan-out; the NIR exporter walks ``inputs``. Shapes exclude batch and time: ``(C, H, W)``
or ``(N,)``, for one sample at one timestep.

Kinds (:data:`KINDS`):

* ``conv``, ``linear``: weights (and a bias when ``bias``); ``in_spikes`` and ``source`` say whether the input
  is spikes and which layer emits them (a ``linear`` may read an ``AvgPool2d(pool)`` of its source, folded);
* ``bn``: BatchNorm2d (weight and bias are parameters; running statistics are not);
* ``lif``, ``plif``: spiking neurons of ``neuron``'s settings, one membrane potential per output element (PLIF
  also learns one time constant);
* ``iaf``: non-leaky integrate-and-fire neurons (``v <- v + x``, a spike when ``v >= v_threshold``, which is then
  subtracted from ``v``), as SynSense Speck runs them;
* ``avgpool``, ``maxpool``, ``sumpool``: ``kernel``, ``stride``, ``padding`` (average pooling counts the padding;
  sum pooling is the average times the kernel area, and passes counts of spikes on);
* ``identity``, ``flatten``, ``dropout`` (rate ``dropout``): no parameters;
* ``sum``: no module; the sum of its ``inputs`` (a node of a cell).

A layer whose ``per_step`` is False runs once per inference (a stem before the image is repeated over T) and
builds a plain ``torch.nn`` module; every other layer builds spikingjelly's multi-step module on
``[T, B, ...]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import layer as sj
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.neuron import NeuronConfig, PLIFConfig, make_iaf, make_lif, make_plif

KINDS = ("conv", "linear", "bn", "lif", "plif", "iaf", "avgpool", "maxpool", "sumpool", "identity", "flatten",
         "dropout", "sum")
NEURON_KINDS = ("lif", "plif", "iaf")  # kinds whose modules are spiking neurons
MODULELESS = ("sum",)  # kinds that build no module


@dataclass(frozen=True)
class Layer:
    """One layer of a network for one sample (see the module docstring for the kinds)."""

    name: str  # the module's qualified name in the built network (a sum: the name of the value it stands for)
    kind: str  # one of KINDS
    out_shape: tuple[int, ...]  # output of one sample at one timestep
    spikes: bool = False  # the output is binary spikes (1 bit each in a buffer)
    per_step: bool = True  # the output exists for every timestep (False: computed once, as the stem)
    inputs: tuple[str, ...] = ()  # names of the layers whose outputs enter it; () for the network input
    params: int = 0  # trained parameters (weights, biases, BN affine), excluding PLIF time constants
    neurons: int = 0  # membrane potentials
    taus: int = 0  # learned time constants (PLIF)
    in_shape: tuple[int, ...] = ()  # conv/linear: input of one sample at one timestep
    in_spikes: bool = False  # conv/linear: the input is spikes (synops) or not (MACs)
    source: str = ""  # conv/linear with spike input: the layer whose spikes it reads
    kernel: int = 1  # conv/pool: kernel size
    stride: int = 1  # conv/pool: stride
    padding: int = 0  # conv/pool: zero padding
    bias: bool = False  # conv/linear: has a bias
    pool: int = 1  # linear: an AvgPool2d(pool) of the source folded in front of it
    dropout: float = 0.0  # dropout: rate
    neuron: NeuronConfig | PLIFConfig | None = None  # lif/plif: the neuron's settings

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpikeNASError(f"layer {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")

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


# ----------------------------------------------------------------------------------------------------------
# Constructors; ``src`` is (the layer whose output enters, whether that output is spikes), ("", False) for the
# network input.


def conv(name: str, cin: int, cout: int, size: int, kernel: int, *, src: tuple[str, bool], stride: int = 1,
         per_step: bool = True) -> Layer:
    """A bias-free ``kernel x kernel`` conv with same padding (``kernel // 2``) on ``(cin, size, size)``."""
    out = (size + 2 * (kernel // 2) - kernel) // stride + 1
    return Layer(
        name, "conv", (cout, out, out), per_step=per_step, inputs=_inputs(src), params=kernel * kernel * cin * cout,
        in_shape=(cin, size, size), in_spikes=src[1], source=src[0] if src[1] else "", kernel=kernel, stride=stride,
        padding=kernel // 2,
    )


def bn(name: str, channels: int, size: int, *, src: tuple[str, bool], per_step: bool = True) -> Layer:
    """A BatchNorm2d over ``(channels, size, size)`` (weight and bias are parameters)."""
    return Layer(name, "bn", (channels, size, size), per_step=per_step, inputs=_inputs(src), params=2 * channels)


def lif(name: str, shape: tuple[int, ...], neuron: NeuronConfig, *, src: tuple[str, bool]) -> Layer:
    """A LIF layer of ``shape`` neurons."""
    return Layer(name, "lif", tuple(shape), spikes=True, inputs=_inputs(src), neurons=math.prod(shape), neuron=neuron)


def plif(name: str, shape: tuple[int, ...], neuron: PLIFConfig, *, src: tuple[str, bool]) -> Layer:
    """A PLIF layer of ``shape`` neurons with one learned time constant."""
    return Layer(name, "plif", tuple(shape), spikes=True, inputs=_inputs(src), neurons=math.prod(shape), taus=1,
                 neuron=neuron)


def iaf(name: str, shape: tuple[int, ...], neuron: NeuronConfig, *, src: tuple[str, bool]) -> Layer:
    """An integrate-and-fire layer of ``shape`` neurons (``neuron``'s threshold and surrogate; no leak)."""
    return Layer(name, "iaf", tuple(shape), spikes=True, inputs=_inputs(src), neurons=math.prod(shape), neuron=neuron)


def pool(name: str, kind: str, channels: int, size: int, kernel: int, *, src: tuple[str, bool],
         stride: int | None = None, padding: int = 0) -> Layer:
    """An ``avgpool``, ``maxpool`` or ``sumpool`` on ``(channels, size, size)``; stride defaults to the kernel. A
    max-pool of spikes emits spikes; an average pool does not; a sum pool of spikes emits spike counts, which a
    spiking chip delivers as that many events (``spikes`` is True)."""
    if kind not in ("avgpool", "maxpool", "sumpool"):
        raise SpikeNASError(f"layer {name!r}: a pool is avgpool, maxpool or sumpool, got {kind!r}")
    stride = kernel if stride is None else stride
    out = (size + 2 * padding - kernel) // stride + 1
    spikes = kind in ("maxpool", "sumpool") and src[1]
    return Layer(name, kind, (channels, out, out), spikes=spikes, inputs=_inputs(src), kernel=kernel, stride=stride,
                 padding=padding)


def identity(name: str, shape: tuple[int, ...], *, src: tuple[str, bool]) -> Layer:
    """The identity (a skip edge); it passes spikes on as spikes."""
    return Layer(name, "identity", tuple(shape), spikes=src[1], inputs=_inputs(src))


def linear(name: str, cin: int, cout: int, *, src: tuple[str, bool], bias: bool = False,
           in_shape: tuple[int, ...] | None = None, pool: int = 1) -> Layer:
    """A Linear of ``cin`` inputs; ``in_shape`` and ``pool`` describe its spike source when an ``AvgPool2d(pool)``
    and a flatten stand between them (folded: each pooled spike reaches every output)."""
    return Layer(name, "linear", (cout,), inputs=_inputs(src), params=cin * cout + (cout if bias else 0),
                 in_shape=(cin,) if in_shape is None else tuple(in_shape), in_spikes=src[1],
                 source=src[0] if src[1] else "", bias=bias, pool=pool)


def _inputs(src: tuple[str, bool]) -> tuple[str, ...]:
    return (src[0],) if src[0] else ()


# ----------------------------------------------------------------------------------------------------------
# Modules


def module_of(spec: Layer) -> nn.Module:
    """The freshly initialised torch module of ``spec`` (multi-step spikingjelly unless ``per_step`` is False).

    :raises SpikeNASError: for a kind that builds no module (``sum``) or a layer missing what it needs.
    """
    step: dict[str, Any] = {"step_mode": "m"} if spec.per_step else {}
    if spec.kind == "conv":
        cin, cout = spec.in_shape[0], spec.out_shape[0]
        kind = sj.Conv2d if spec.per_step else nn.Conv2d
        return kind(cin, cout, spec.kernel, stride=spec.stride, padding=spec.padding, bias=spec.bias, **step)
    if spec.kind == "bn":
        return (sj.BatchNorm2d if spec.per_step else nn.BatchNorm2d)(spec.out_shape[0], **step)
    if spec.kind == "linear":
        if spec.pool > 1:  # the pooled source, flattened
            c, h, w = spec.in_shape
            cin = c * (h // spec.pool) * (w // spec.pool)
        else:
            cin = math.prod(spec.in_shape)
        return (sj.Linear if spec.per_step else nn.Linear)(cin, spec.out_features, bias=spec.bias, **step)
    if spec.kind in ("lif", "plif"):
        expected = NeuronConfig if spec.kind == "lif" else PLIFConfig
        if not isinstance(spec.neuron, expected):
            raise SpikeNASError(f"layer {spec.name!r} ({spec.kind}) needs a {expected.__name__}, got {spec.neuron!r}")
        return make_lif(spec.neuron) if spec.kind == "lif" else make_plif(spec.neuron)
    if spec.kind == "iaf":
        if not isinstance(spec.neuron, NeuronConfig):
            raise SpikeNASError(f"layer {spec.name!r} (iaf) needs a NeuronConfig, got {spec.neuron!r}")
        return make_iaf(spec.neuron)
    if spec.kind == "sumpool":
        if not spec.per_step or spec.padding:
            raise SpikeNASError(f"layer {spec.name!r}: sum pooling is multi-step and unpadded")
        return SumPool2d(spec.kernel, spec.stride)
    if spec.kind == "avgpool":
        kind = sj.AvgPool2d if spec.per_step else nn.AvgPool2d
        return kind(spec.kernel, stride=spec.stride, padding=spec.padding, count_include_pad=True, **step)
    if spec.kind == "maxpool":
        return (sj.MaxPool2d if spec.per_step else nn.MaxPool2d)(spec.kernel, spec.stride, padding=spec.padding, **step)
    if spec.kind == "identity":
        return nn.Identity()
    if spec.kind == "flatten":
        return sj.Flatten(**step) if spec.per_step else nn.Flatten()
    if spec.kind == "dropout":
        return (sj.Dropout if spec.per_step else nn.Dropout)(spec.dropout, **step)
    raise SpikeNASError(f"layer {spec.name!r} of kind {spec.kind!r} builds no module")


class SumPool2d(nn.Module):
    """Multi-step sum pooling, ``[T, B, C, H, W]`` -> ``[T, B, C, H', W']``: the average pool times the kernel
    area, which is exact for spike counts (integers below 2**24 in float32)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(0, 1)
        out = F.avg_pool2d(flat, self.kernel, self.stride) * float(self.kernel * self.kernel)
        return out.reshape(*x.shape[:2], *out.shape[1:])

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel}, stride={self.stride}"


def assemble(layers: Sequence[Layer], prefix: str) -> nn.Module | None:
    """The module at ``prefix`` made of the layers named ``prefix`` or ``prefix.<i>...`` (sums skipped).

    A layer named exactly ``prefix`` is the module itself. Otherwise the layers below ``prefix`` must be numbered
    ``prefix.0``, ``prefix.1``, ... (each possibly nested further), and become an ``nn.Sequential`` in that
    order. Returns None when no layer is below ``prefix`` (a zero edge).
    """
    below = [spec for spec in layers if spec.kind not in MODULELESS and _is_below(spec.name, prefix)]
    if not below:
        return None
    exact = [spec for spec in below if spec.name == prefix]
    if exact:
        if len(below) > 1:
            raise SpikeNASError(f"layer {prefix!r} is a module and also has layers below it")
        return module_of(exact[0])
    start = len(prefix) + 1 if prefix else 0
    heads: list[str] = []
    for spec in below:
        head = spec.name[start:].split(".", 1)[0]
        if head not in heads:
            heads.append(head)
    if heads != [str(i) for i in range(len(heads))]:
        raise SpikeNASError(f"the layers below {prefix!r} must be numbered 0, 1, ...; got {heads}")
    children = [assemble(below, f"{prefix}.{h}" if prefix else h) for h in heads]
    return nn.Sequential(*children)


def _is_below(name: str, prefix: str) -> bool:
    return not prefix or name == prefix or name.startswith(prefix + ".")
