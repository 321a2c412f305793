"""Op registry: the edge operations a cell can hold, and named op sets.

An op registers once, with the layers it contributes to an edge (:class:`spikenas.layers.Layer` records): a
function ``layers(prefix, channels, size, neuron, src) -> list[Layer]`` that describes the op on one edge
whose input, of shape ``(channels, size, size)`` for one sample, is the output of layer ``src[0]`` (``src[1]``:
whether it is spikes). The layers are named ``prefix`` (a single module) or ``prefix.0``, ``prefix.1``, ...
in the order their modules are created; the last one is the op's output and keeps the input's shape. Every
consumer derives what it needs from them: the builder makes the module (:func:`spikenas.layers.assemble`), the
memory model sums their parameters, the deployment model reads their neurons, buffers and synapses, and the
NIR exporter writes them. Users add ops and op sets from their own code::

    @register_op("lif05_conv3x3", spiking=True)
    def lif05_conv3x3(prefix, channels, size, neuron, src):
        return lif_conv_bn(prefix, channels, size, 3, neuron.with_threshold(0.5), src=src)

    register_op_set("bench", ("zero", "skip", "lif05_conv3x3"))
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.layers import Layer, assemble, bn, conv, iaf, identity, lif, pool
from spikenas.neuron import NeuronConfig

#: (prefix, channels, size, neuron, src) -> the op's layers on one edge (see the module docstring)
OpLayers = Callable[[str, int, int, NeuronConfig, tuple[str, bool]], list[Layer]]


@dataclass(frozen=True)
class OpSpec:
    """A registered edge op."""

    name: str  # registry key, used in genotypes
    layers: OpLayers  # the op's layers on one edge; everything else about the op is derived from them
    nb201: str  # name in NAS-Bench-201 strings
    is_zero: bool = False  # the edge carries nothing (cuts the path)
    spiking: bool = False  # the op starts with a LIF (its spikes enter the score)

    def edge_layers(
        self, prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool] = ("", False)
    ) -> list[Layer]:
        """The op's layers on the edge module ``prefix`` (see :data:`OpLayers`)."""
        return list(self.layers(prefix, channels, size, neuron, src))

    def params(self, channels: int, size: int = 1) -> int:
        """Trained parameters of the op at ``channels`` (the sum over its layers)."""
        return sum(spec.params for spec in self.edge_layers("op", channels, size, NeuronConfig()))

    def build(self, channels: int, neuron: NeuronConfig, size: int = 1) -> nn.Module:
        """The op's freshly initialised module on ``[T, B, channels, H, W]`` (a :class:`Zero` for a zero op)."""
        module = assemble(self.edge_layers("op", channels, size, neuron), "op")
        return Zero() if module is None else module


_OPS: dict[str, OpSpec] = {}
_OP_SETS: dict[str, tuple[str, ...]] = {}


def register_op(
    name: str,
    *,
    nb201: str | None = None,
    is_zero: bool = False,
    spiking: bool = False,
) -> Callable[[OpLayers], OpLayers]:
    """Decorator registering the layer function of op ``name`` (:data:`OpLayers`); re-registering a name warns
    and replaces it.

    :raises SpikeNASError: a NAS-Bench-201 name already taken, or a layer function that does not describe a
        shape-preserving op (checked on a sample edge).
    """

    def decorator(layers: OpLayers) -> OpLayers:
        nb = nb201 or name
        clash = [o.name for o in _OPS.values() if o.nb201 == nb and o.name != name]
        if clash:
            raise SpikeNASError(f"NAS-Bench-201 name {nb!r} of op {name!r} is taken by op {clash[0]!r}")
        spec = OpSpec(name, layers, nb, is_zero, spiking)
        _check_layers(spec)
        if name in _OPS:
            warnings.warn(f"op {name!r} is already registered; replacing it", stacklevel=2)
        _OPS[name] = spec
        return layers

    return decorator


def _check_layers(spec: OpSpec, channels: int = 4, size: int = 6) -> None:
    """Refuse a layer function that does not describe an op on one edge (one line naming what is wrong)."""
    where = f"op {spec.name!r}"
    try:
        layers = spec.edge_layers("edge", channels, size, NeuronConfig(), ("in", False))
    except TypeError as err:
        raise SpikeNASError(f"{where}: its layer function must take (prefix, channels, size, neuron, src): {err}") \
            from err
    if spec.is_zero:
        if layers:
            raise SpikeNASError(f"{where} is a zero op but lists layers {[getattr(s, 'name', s) for s in layers]}")
        return
    if not layers or not all(isinstance(s, Layer) for s in layers):
        raise SpikeNASError(f"{where}: the layer function must return a non-empty list of spikenas.layers.Layer")
    known = {"in"}
    for s in layers:
        if s.name != "edge" and not s.name.startswith("edge."):
            raise SpikeNASError(f"{where}: layer {s.name!r} is not named after the edge prefix ('edge' or 'edge.<i>')")
        missing = [i for i in s.inputs if i not in known]
        if missing or not s.inputs:
            raise SpikeNASError(f"{where}: layer {s.name!r} reads {list(s.inputs)}; an op's layer reads src or an "
                                "earlier layer of the op")
        known.add(s.name)
    if layers[-1].out_shape != (channels, size, size):
        raise SpikeNASError(f"{where} must keep its input's shape {(channels, size, size)}; its last layer "
                            f"{layers[-1].name!r} outputs {layers[-1].out_shape}")


def register_op_set(name: str, ops: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Register an ordered op set (the order fixes genotype indices); warns on overwrite."""
    ops = tuple(ops)
    unknown = [o for o in ops if o not in _OPS]
    if unknown:
        raise SpikeNASError(f"op set {name!r}: unknown ops {unknown}; registered: {sorted(_OPS)}")
    if len(set(ops)) != len(ops) or len(ops) < 1:
        raise SpikeNASError(f"op set {name!r} must list distinct ops, got {ops}")
    if name in _OP_SETS:
        warnings.warn(f"op set {name!r} is already registered; replacing it", stacklevel=2)
    _OP_SETS[name] = ops
    return ops


def get_op(name: str) -> OpSpec:
    """The op registered as ``name`` (or with NAS-Bench-201 name ``name``)."""
    if name in _OPS:
        return _OPS[name]
    for op in _OPS.values():
        if op.nb201 == name:
            return op
    raise SpikeNASError(f"unknown op {name!r}; registered ops: {', '.join(sorted(_OPS))}")


def get_op_set(name: str) -> tuple[str, ...]:
    """Op names of op set ``name``, in index order."""
    if name not in _OP_SETS:
        raise SpikeNASError(f"unknown op set {name!r}; choose one of: {', '.join(_OP_SETS)}")
    return _OP_SETS[name]


def op_set_family(name: str) -> str:
    """The network family (:data:`spikenas.network.FAMILIES`) whose cells op set ``name`` fills: ``speck`` when
    its ops hold integrate-and-fire neurons (its cell nodes merge spike streams; docs/deployment.md),
    ``snasnet`` otherwise."""
    kinds = {spec.kind for op in get_op_set(name) for spec in get_op(op).edge_layers("op", 1, 1, NeuronConfig())}
    return "speck" if "iaf" in kinds else "snasnet"


def list_ops(pattern: str = "*") -> list[str]:
    """Registered op names matching a shell-style ``pattern``."""
    return sorted(n for n in _OPS if fnmatch.fnmatch(n, pattern))


def list_op_sets(pattern: str = "*") -> list[str]:
    """Registered op-set names matching a shell-style ``pattern``."""
    return [n for n in _OP_SETS if fnmatch.fnmatch(n, pattern)]


class Zero(nn.Module):
    """The ``none`` op: multiplies by zero (cells skip it; kept for completeness)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def lif_conv_bn(
    prefix: str, channels: int, size: int, kernel: int, neuron: NeuronConfig, *, src: tuple[str, bool]
) -> list[Layer]:
    """The layers of LIF -> Conv(kernel x kernel, same padding, no bias) -> BN on ``(channels, size, size)``,
    named ``prefix.0`` .. ``prefix.2``."""
    return [
        lif(f"{prefix}.0", (channels, size, size), neuron, src=src),
        conv(f"{prefix}.1", channels, channels, size, kernel, src=(f"{prefix}.0", True)),
        bn(f"{prefix}.2", channels, size, src=(f"{prefix}.1", False)),
    ]


@register_op("zero", nb201="none", is_zero=True)
def _zero(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
    return []


@register_op("skip", nb201="skip_connect")
def _skip(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
    return [identity(prefix, (channels, size, size), src=src)]


@register_op("conv1x1", nb201="nor_conv_1x1", spiking=True)
def _conv1x1(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
    return lif_conv_bn(prefix, channels, size, 1, neuron, src=src)


@register_op("conv3x3", nb201="nor_conv_3x3", spiking=True)
def _conv3x3(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
    return lif_conv_bn(prefix, channels, size, 3, neuron, src=src)


@register_op("avgpool3x3", nb201="avg_pool_3x3")
def _avgpool3x3(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
    return [pool(prefix, "avgpool", channels, size, 3, src=src, stride=1, padding=1)]


@register_op("iaf_conv3x3", nb201="iaf_conv_3x3", spiking=True)
def _iaf_conv3x3(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
    """Conv3x3 (no bias) -> IAF: one layer of a spiking chip, whose input and output are spike streams."""
    return [
        conv(f"{prefix}.0", channels, channels, size, 3, src=src),
        iaf(f"{prefix}.1", (channels, size, size), neuron, src=(f"{prefix}.0", False)),
    ]


register_op_set("5O", ("zero", "skip", "conv1x1", "conv3x3", "avgpool3x3"))
register_op_set("3O", ("skip", "conv3x3", "avgpool3x3"))
register_op_set("2O", ("skip", "conv3x3"))
# The Speck space: every edge ends in IAF neurons, so every cell node is a merge of spike streams.
register_op_set("speck", ("zero", "skip", "iaf_conv3x3"))
