"""Op registry: the edge operations a cell can hold, and named op sets.

An op is a factory ``build(channels, neuron) -> nn.Module`` mapping ``[T, B, C, H, W]`` to the same
shape, with an exact analytical parameter count ``params(channels)`` used by the memory model.
Users add ops and op sets from their own code::

    @register_op("lif05_conv3x3", params=lambda c: 9 * c * c + 2 * c)
    def lif05_conv3x3(channels, neuron):
        return conv_bn(channels, 3, neuron.with_threshold(0.5))

    register_op_set("bench", ("zero", "skip", "lif05_conv3x3"))
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from spikingjelly.activation_based import layer
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.neuron import NeuronConfig, make_lif

Builder = Callable[[int, NeuronConfig], nn.Module]


@dataclass(frozen=True)
class OpSpec:
    """A registered edge op."""

    name: str  # registry key, used in genotypes
    build: Builder  # (channels, neuron config) -> module on [T, B, C, H, W]
    params: Callable[[int], int]  # exact parameter count of build(channels, ...)
    nb201: str  # name in NAS-Bench-201 strings
    is_zero: bool = False  # the edge carries nothing (cuts the path)
    spiking: bool = False  # the op starts with a LIF (its spikes enter the score)


_OPS: dict[str, OpSpec] = {}
_OP_SETS: dict[str, tuple[str, ...]] = {}


def register_op(
    name: str,
    *,
    params: Callable[[int], int],
    nb201: str | None = None,
    is_zero: bool = False,
    spiking: bool = False,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``build`` as op ``name``; re-registering a name warns and replaces it."""

    def decorator(build: Builder) -> Builder:
        if name in _OPS:
            warnings.warn(f"op {name!r} is already registered; replacing it", stacklevel=2)
        nb = nb201 or name
        clash = [o.name for o in _OPS.values() if o.nb201 == nb and o.name != name]
        if clash:
            raise SpikeNASError(f"NAS-Bench-201 name {nb!r} of op {name!r} is taken by op {clash[0]!r}")
        _OPS[name] = OpSpec(name, build, params, nb, is_zero, spiking)
        return build

    return decorator


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


def conv_bn(channels: int, kernel: int, neuron: NeuronConfig) -> nn.Sequential:
    """LIF -> Conv(kernel x kernel, same padding, no bias) -> BN, keeping ``channels``."""
    return nn.Sequential(
        make_lif(neuron),
        layer.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False, step_mode="m"),
        layer.BatchNorm2d(channels, step_mode="m"),
    )


def conv_bn_params(kernel: int) -> Callable[[int], int]:
    """Parameter count of :func:`conv_bn`: the conv's weights plus BN's weight and bias."""
    return lambda c: kernel * kernel * c * c + 2 * c


@register_op("zero", params=lambda c: 0, nb201="none", is_zero=True)
def _zero(channels: int, neuron: NeuronConfig) -> nn.Module:
    return Zero()


@register_op("skip", params=lambda c: 0, nb201="skip_connect")
def _skip(channels: int, neuron: NeuronConfig) -> nn.Module:
    return nn.Identity()


@register_op("conv1x1", params=conv_bn_params(1), nb201="nor_conv_1x1", spiking=True)
def _conv1x1(channels: int, neuron: NeuronConfig) -> nn.Module:
    return conv_bn(channels, 1, neuron)


@register_op("conv3x3", params=conv_bn_params(3), nb201="nor_conv_3x3", spiking=True)
def _conv3x3(channels: int, neuron: NeuronConfig) -> nn.Module:
    return conv_bn(channels, 3, neuron)


@register_op("avgpool3x3", params=lambda c: 0, nb201="avg_pool_3x3")
def _avgpool3x3(channels: int, neuron: NeuronConfig) -> nn.Module:
    return layer.AvgPool2d(3, stride=1, padding=1, count_include_pad=True, step_mode="m")


register_op_set("5O", ("zero", "skip", "conv1x1", "conv3x3", "avgpool3x3"))
register_op_set("3O", ("skip", "conv3x3", "avgpool3x3"))
register_op_set("2O", ("skip", "conv3x3"))
