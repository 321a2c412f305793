"""Training many candidate networks of one macro at once, on the same batches, stacked on the channel axis.

K candidates of the same :class:`~spikenas.network.MacroConfig` (their cells may differ) are built and
set up exactly as :func:`spikenas.train.trainer.train` sets up one (same init, optimizer, schedule,
augmentation, label smoothing, dropout masks, evaluation and checkpoint), and trained in one process by
one forward and one backward pass per batch. Each candidate keeps its own modules, parameters,
optimizer, scheduler, loss and checkpoint; only the forward pass is shared.

Layout: a stacked feature map is ``[T, B, K*C, H, W]``, candidate ``k`` owning channels
``k*C..(k+1)*C`` (``[T, B, K*F]`` after the head's flatten). In that layout

* a convolution of every candidate is one grouped convolution (``groups = K``) whose weight is the
  concatenation of the candidates' weights (:func:`torch.cat` is differentiable, so each candidate's
  parameters receive exactly their own gradient); the stem's convolution, whose input all candidates
  share, is one convolution with ``K*C`` output channels;
* BatchNorm over ``K*C`` channels keeps batch statistics per candidate (the statistics are per channel);
  running statistics are written back to each candidate's own buffers;
* neurons, pooling and dropout act element- or channel-wise: one call on the stacked tensor (the
  dropout mask is drawn once, exactly as each candidate alone draws it, and applied to every block; the
  3x3 stride-1 average pooling of the ``avgpool3x3`` op runs as a box filter, :func:`box_filter3`; SNASNet's
  LIF runs as :class:`HardResetLIF`, spikingjelly's float32 CPU arithmetic in fewer passes, bit for bit);
* a linear layer is one batched matmul over the candidates.

Per cell edge the candidates holding the same op run as one stacked module on their channel blocks (gathered
once per node, :class:`GatherBlocks`; skip and average pooling held by at least half of the candidates run on
every block with the others masked out), and each node sums its in-edges per candidate in the same order as
:class:`spikenas.network.Cell` (zero edges add nothing, skip is the identity). The loss is the sum of the
candidates' cross-entropies; their graphs are disjoint, so the backward pass gives each candidate the gradient it
gets alone, and each candidate's optimizer then steps on its own parameters. A parameter that a candidate's own
loss never reaches (a zero edge cutting every path) has no gradient alone, so it gets none here either
(:func:`unreached_parameters`): weight decay and momentum then skip it as they do alone.

Equality with training alone holds up to float rounding: a grouped convolution, a batched matmul, BatchNorm over
more channels and the box filter sum in another order than the single-candidate calls, and a rounding difference
can flip a spike whose membrane potential lies at the threshold. In float64 (spikingjelly's CPU LIF still computes
in float32) losses, parameters and buffers agree to 1e-8 over several SGD steps (tests/test_stacked_training.py).
Modules other than the ones named above run once per candidate on its channel block: correct, only slower.

Speed: on a CPU, at the Fashion-MNIST recipe's batch of 128, a step is bound by convolution FLOPs and by
memory-bound elementwise passes that grow with K, not by per-operator overhead, so stacking runs at about the
speed of training the candidates one after another (docs/results/training/stacked_training.md); it saves the
per-operator overhead, which dominates at small batches (and is expected to on a GPU, unmeasured).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, surrogate
from spikingjelly.activation_based.neuron import BaseNode, LIFNode
from torch import nn

from spikenas.data import ImageDataset
from spikenas.errors import SpikeNASError
from spikenas.network import Cell, MacroConfig, SNASNetwork
from spikenas.progress import Progress
from spikenas.space import EDGES, Genotype
from spikenas.spikes import count_spikes
from spikenas.train.trainer import (
    _CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    StopTraining,
    TrainConfig,
    TrainingData,
    TrainResult,
    cell_list,
    epoch_batches,
    fingerprint,
    initial_model,
    load_checkpoint,
    make_optimizer,
    make_scheduler,
    save_checkpoint,
    train,
    training_data,
)

log = logging.getLogger(__name__)
_EDGE = {f"{src}{dst}": i for i, (src, dst) in enumerate(EDGES)}


# ---- stacked layers -------------------------------------------------------------------------------------


def _cat(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """The candidates' tensors concatenated on dim 0 (the tensor itself for one candidate; None for None)."""
    if tensors[0] is None:
        return None
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors))


def _blocks(x: torch.Tensor, n: int) -> torch.Tensor:
    """Stacked ``[T, B, n*C, ...]`` -> a ``[T, B, n, C, ...]`` view."""
    return x.view(x.shape[0], x.shape[1], n, x.shape[2] // n, *x.shape[3:])


def _multi_step(m: nn.Module) -> bool:
    return getattr(m, "step_mode", "s") == "m"


def _same(modules: Sequence[nn.Module], *attrs: str) -> bool:
    """Whether every module has the type and the values of ``attrs`` of the first."""
    first = modules[0]
    return all(
        type(m) is type(first) and all(getattr(m, a) == getattr(first, a) for a in attrs) for m in modules[1:]
    )


def _neuron_signature(m: nn.Module) -> tuple | None:
    """What makes two LIF neurons compute the same function, or None for a neuron not known to be
    interchangeable (another type, hooks, a recorded membrane trace)."""
    if type(m) is not LIFNode or m._forward_hooks or m._forward_pre_hooks or m.store_v_seq:
        return None
    sg = m.surrogate_function
    return (m.tau, m.decay_input, m.v_threshold, m.v_reset, m.detach_reset, type(sg),
            getattr(sg, "alpha", None), getattr(sg, "spiking", None), getattr(m, "_neuron_precision", None))


class HardResetLIF(torch.autograd.Function):
    """spikingjelly's multi-step LIF (``decay_input``, hard reset to 0, ``detach_reset``, ATan surrogate) from
    rest, with fewer full-tensor passes: the same float32 operations in the same order as its CPU operator
    (spikes and input gradients are bit for bit equal; tested), without its per-step stacking copies and
    membrane trace.

    ``apply(x, tau, threshold, alpha)``: float32 ``[T, ...]`` input current -> float32 spikes of the same shape.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, tau: float, threshold: float, alpha: float) -> torch.Tensor:
        current = x
        steps = current.shape[0]
        charged = torch.empty_like(current, memory_format=torch.contiguous_format)  # h of every step
        spikes = torch.empty_like(charged)
        v = torch.zeros_like(charged[0])
        tmp = torch.empty_like(v)
        for t in range(steps):
            torch.sub(current[t], v, out=tmp)  # h = v + (x - (v - 0)) / tau
            tmp.div_(tau)
            torch.add(v, tmp, out=charged[t])
            fired = charged[t] >= threshold
            spikes[t].copy_(fired)
            if t < steps - 1:
                v = charged[t].masked_fill(fired, 0.0)  # = spike * 0 + (1 - spike) * h
        ctx.save_for_backward(charged)
        ctx.constants = (tau, threshold, alpha)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (charged,) = ctx.saved_tensors
        tau, threshold, alpha = ctx.constants
        grad_x = torch.empty_like(charged)
        carry = None
        for t in range(charged.shape[0] - 1, -1, -1):
            z = (charged[t] - threshold).mul_(math.pi / 2 * alpha)  # ATan: alpha/2 / (1 + (pi/2 alpha z)^2)
            grad_h = z.mul_(z).add_(1.0).reciprocal_().mul_(alpha / 2).mul_(grad_spikes[t])
            if carry is not None:  # the membrane carried to step t + 1, cut where the neuron fired (hard reset)
                grad_h.add_(carry.masked_fill_(charged[t] >= threshold, 0.0))
            grad_x[t] = grad_h / tau
            carry = grad_h.sub_(grad_h / tau)
        return grad_x, None, None, None


def lean_lif_fits(m: nn.Module, x: torch.Tensor) -> bool:
    """Whether :class:`HardResetLIF` computes ``m(x)`` (and its gradient) exactly: a reset multi-step
    :class:`LIFNode` at spikingjelly's default precision with ``decay_input``, a hard reset to 0,
    ``detach_reset`` and the ATan surrogate, on a float32 CPU tensor (spikingjelly's CPU operator; other
    dtypes take another path of spikingjelly's)."""
    return (
        _neuron_signature(m) is not None
        and m.decay_input and m.v_reset == 0.0 and m.detach_reset
        and type(m.surrogate_function) is surrogate.ATan and m.surrogate_function.spiking
        and getattr(m, "_neuron_precision", None) is None
        and isinstance(m.v, float) and m.v == 0.0
        and isinstance(m.tau, (int, float)) and isinstance(m.v_threshold, (int, float))
        and x.device.type == "cpu" and x.dtype == torch.float32
    )


def stacked_conv(modules: Sequence[nn.Conv2d], x: torch.Tensor, *, shared_input: bool = False) -> torch.Tensor:
    """The candidates' convolutions on ``x`` as one call.

    :param x: float ``[N, n*C_in, H, W]`` (candidate ``k``'s input in channel block ``k``), or with
        ``shared_input`` ``[N, C_in, H, W]``, the input of every candidate.
    :returns: float ``[N, n*C_out, H', W']``.
    """
    m = modules[0]
    groups = m.groups if shared_input else m.groups * len(modules)
    if shared_input and m.groups != 1:
        raise SpikeNASError(f"a stacked convolution on a shared input needs groups=1, got {m.groups}")
    weight = _cat([c.weight for c in modules])
    bias = _cat([c.bias for c in modules])
    return F.conv2d(x, weight, bias, m.stride, m.padding, m.dilation, groups)


def stacked_batch_norm(modules: Sequence[nn.modules.batchnorm._BatchNorm], x: torch.Tensor) -> torch.Tensor:
    """The candidates' BatchNorms on ``x``: float ``[N, n*C, ...]`` -> same shape.

    Batch statistics are per channel, hence per candidate; in training mode each candidate's running
    statistics and ``num_batches_tracked`` are updated as its own module would update them.
    """
    m = modules[0]
    track = m.track_running_stats and m.running_mean is not None
    use_batch = m.training or not track
    mean = _cat([b.running_mean for b in modules]) if track else None
    var = _cat([b.running_var for b in modules]) if track else None
    weight = _cat([b.weight for b in modules])
    bias = _cat([b.bias for b in modules])
    out = F.batch_norm(x, mean, var, weight, bias, use_batch, m.momentum if m.training else 0.0, m.eps)
    if m.training and track:
        c = m.num_features
        for k, b in enumerate(modules):
            b.num_batches_tracked.add_(1)
            if len(modules) > 1:
                b.running_mean.copy_(mean[k * c : (k + 1) * c])
                b.running_var.copy_(var[k * c : (k + 1) * c])
    return out


def box_filter3(x: torch.Tensor) -> torch.Tensor:
    """The mean over each 3x3 neighbourhood with zero padding: ``AvgPool2d(3, stride=1, padding=1)``
    (``count_include_pad``), float ``[N, C, H, W]`` -> same shape, as four shifted in-place adds and a
    division (about three times faster than ``F.avg_pool2d`` on CPU; equal up to float rounding: the nine
    values are summed in another order)."""
    rows = x.clone()
    rows[..., 1:] += x[..., :-1]
    rows[..., :-1] += x[..., 1:]
    out = rows.clone()
    out[..., 1:, :] += rows[..., :-1, :]
    out[..., :-1, :] += rows[..., 1:, :]
    return out.div_(9.0)


class BoxFilter3(torch.autograd.Function):
    """:func:`box_filter3` with its gradient: the zero-padded 3x3 box mean is its own adjoint."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return box_filter3(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return box_filter3(grad)


def _is_box3(m: nn.AvgPool2d) -> bool:
    """Whether ``m`` is the 3x3, stride-1, padding-1 average pooling that counts the padding."""

    def pair(v: int | tuple) -> tuple:
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    return (
        pair(m.kernel_size) == (3, 3) and pair(m.stride) == (1, 1) and pair(m.padding) == (1, 1)
        and m.count_include_pad and m.divisor_override is None and not m.ceil_mode
    )


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(0, 1)


def _unflat(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


def stacked_linear(modules: Sequence[nn.Linear], x: torch.Tensor) -> torch.Tensor:
    """The candidates' linear layers: float ``[..., n*F]`` -> ``[..., n*O]`` (one batched matmul)."""
    n = len(modules)
    if n == 1:
        return F.linear(x, modules[0].weight, modules[0].bias)
    lead = x.shape[:-1]
    rows = x.reshape(-1, n, x.shape[-1] // n).transpose(0, 1)  # [n, R, F]
    weight = torch.stack([m.weight for m in modules]).transpose(1, 2)  # [n, F, O]
    if modules[0].bias is None:
        y = torch.bmm(rows, weight)
    else:
        y = torch.baddbmm(torch.stack([m.bias for m in modules]).unsqueeze(1), rows, weight)
    return y.transpose(0, 1).reshape(*lead, -1)


def stacked_dropout(modules: Sequence[layer.Dropout], x: torch.Tensor) -> torch.Tensor:
    """Multi-step dropout of the candidates on float ``[T, B, n*F]``: one mask ``[B, F]`` drawn from torch's
    global generator as each candidate's own layer draws it (``F.dropout`` of ones), shared over T and over
    the candidates; the identity in eval mode."""
    m = modules[0]
    if not m.training or m.p == 0.0:
        return x
    n = len(modules)
    t, b = x.shape[:2]
    mask = m.create_mask(torch.ones(b, x.shape[2] // n, dtype=x.dtype, device=x.device))
    return (x.view(t, b, n, -1) * mask.unsqueeze(1)).view(x.shape)


def _per_candidate(modules: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Each candidate's module on its own channel block of multi-step ``[T, B, n*C, ...]`` (the fallback)."""
    n = len(modules)
    parts = _blocks(x, n)
    outs = []
    for k, m in enumerate(modules):
        functional.reset_net(m)
        outs.append(m(parts[:, :, k]))
        functional.reset_net(m)
    out = torch.stack(outs, dim=2)
    return out.view(out.shape[0], out.shape[1], -1, *out.shape[4:])


def run_stacked(modules: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """One module per candidate (same structure, each with its own weights) on stacked multi-step input.

    :param x: float ``[T, B, n*C, ...]``, candidate ``k`` in channel block ``k``.
    :returns: float ``[T, B, n*C', ...]`` in the same layout.
    """
    m = modules[0]
    if type(m) is nn.Sequential and all(type(o) is nn.Sequential and len(o) == len(m) for o in modules):
        for children in zip(*modules, strict=True):
            x = run_stacked(children, x)
        return x
    if isinstance(m, nn.Identity) and _same(modules):
        return x
    if not _multi_step(m):
        return _per_candidate(modules, x)
    if isinstance(m, BaseNode):
        signature = _neuron_signature(m)
        if signature is None or any(_neuron_signature(o) != signature for o in modules[1:]):
            return _per_candidate(modules, x)
        m.reset()
        if lean_lif_fits(m, x):
            return HardResetLIF.apply(x, float(m.tau), float(m.v_threshold), float(m.surrogate_function.alpha))
        out = m(x)
        m.reset()
        return out
    if isinstance(m, nn.Conv2d) and _same(modules, "stride", "padding", "dilation", "groups", "padding_mode") and (
        m.padding_mode == "zeros"
    ):
        return _unflat(stacked_conv(modules, _flat(x)), x)
    if isinstance(m, nn.modules.batchnorm._BatchNorm) and _same(
        modules, "eps", "momentum", "training", "track_running_stats", "num_features"
    ) and m.momentum is not None:
        return _unflat(stacked_batch_norm(modules, _flat(x)), x)
    if isinstance(m, nn.AvgPool2d) and _same(
        modules, "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"
    ):
        if _is_box3(m):
            return _unflat(BoxFilter3.apply(_flat(x)), x)
        y = F.avg_pool2d(_flat(x), m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                         m.divisor_override)
        return _unflat(y, x)
    if isinstance(m, nn.Flatten) and _same(modules, "start_dim", "end_dim") and (m.start_dim, m.end_dim) == (1, -1):
        return x.flatten(2)  # candidate k's C*H*W features stay contiguous: block k of [T, B, n*C*H*W]
    if isinstance(m, layer.Dropout) and _same(modules, "p", "training"):
        return stacked_dropout(modules, x)
    if isinstance(m, nn.Linear) and _same(modules, "in_features", "out_features") and x.dim() == 3:
        return stacked_linear(modules, x)
    return _per_candidate(modules, x)


def _channelwise(modules: Sequence[nn.Module]) -> bool:
    """Whether the modules are the identity or a multi-step average pooling: parameter-free maps that act on
    each channel alone, so running them on every candidate's block costs no more than a gather."""
    m = modules[0]
    if isinstance(m, nn.Identity):
        return _same(modules)
    return isinstance(m, nn.AvgPool2d) and _multi_step(m) and _same(
        modules, "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"
    )


class _NodeSum:
    """A node's value for ``n`` stacked candidates, the sum of its in-edges' outputs in the order they arrive.

    A sum it allocates is kept as a ``[T, B, n, C, ...]`` tensor and updated in place (never through a view:
    autograd would clone the whole gradient for each in-place write to a view); a contribution that is another
    op's output (or a node itself, for skip) is never written to.
    """

    def __init__(self, like: torch.Tensor, n: int) -> None:
        self.like, self.n = like, n
        self.value: torch.Tensor | None = None  # [T, B, n*C, ...] borrowed, or [T, B, n, C, ...] owned
        self.owned = False

    def _own(self) -> torch.Tensor:
        if self.value is None:  # a base tensor, not a view of one: see the class docstring
            self.value = self.like.new_zeros(_blocks(self.like, self.n).shape)
        elif not self.owned:
            self.value = _blocks(self.value, self.n).clone()
        self.owned = True
        return self.value

    def add(self, out: torch.Tensor) -> None:
        """Every candidate's contribution ``out`` (``[T, B, n*C, ...]``)."""
        if self.value is None:
            self.value = out
        elif self.owned:
            self.value.add_(_blocks(out, self.n))
        else:
            self.value, self.owned = _blocks(self.value, self.n) + _blocks(out, self.n), True

    def add_masked(self, out: torch.Tensor, mask: torch.Tensor) -> None:
        """``out`` (``[T, B, n*C, ...]``) for the candidates where ``mask`` (``[n]``, 0 or 1) is 1; exact: x*1 = x
        and x*0 = 0 (a candidate whose own values are already inf or nan would get nan there instead of 0)."""
        shape = (1, 1, self.n) + (1,) * (out.dim() - 2)
        masked = _blocks(out, self.n) * mask.view(shape).to(out.dtype)
        if self.value is None:
            self.value, self.owned = masked, True
        else:
            self._own().add_(masked)

    def add_blocks(self, index: torch.Tensor, out: torch.Tensor) -> None:
        """Candidates ``index``' contributions ``out`` (``[T, B, m*C, ...]``, block ``i`` for ``index[i]``)."""
        self._own().index_add_(2, index, _blocks(out, index.numel()))

    def result(self) -> torch.Tensor:
        if self.value is None:
            return torch.zeros_like(self.like)
        return self.value.view(self.like.shape) if self.owned else self.value


class GatherBlocks(torch.autograd.Function):
    """Several gathers of candidate blocks from one stacked value, with one gradient buffer for all of them.

    ``forward(x, *indices)``: ``x`` is ``[T, B, n, C, ...]``; returns, per int64 index ``[m_i]``, the blocks
    ``[T, B, m_i, C, ...]``. Autograd's own ``index_select`` would give each gather a zero-filled gradient of
    the whole value and add them up; here the backward fills one buffer and adds each gather's gradient into
    its blocks.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, *indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.shape = x.shape
        ctx.save_for_backward(*indices)
        return tuple(x.index_select(2, index) for index in indices)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        indices = ctx.saved_tensors
        grad = None
        for index, g in zip(indices, grads, strict=True):
            if g is not None:
                if grad is None:
                    grad = g.new_zeros(ctx.shape)
                grad.index_add_(2, index, g)
        return (grad, *([None] * len(indices)))


def stacked_cell(cells: Sequence[Cell], x: torch.Tensor) -> torch.Tensor:
    """One cell position of ``n`` candidates (candidate ``k`` with ``cells[k]``) on ``[T, B, n*C, H, W]``.

    Each node sums its in-edges in source order, per candidate, as :class:`spikenas.network.Cell` does.
    Per edge, the candidates holding the same op run it as one stacked module: on every candidate's block
    with the other candidates masked out when the op is a parameter-free channelwise map (skip, average
    pooling) held by at least half of them, else on their own channel blocks, gathered (all gathers from a
    node at once, :class:`GatherBlocks`).
    """
    n = len(cells)
    plan: dict[tuple[int, int], list[tuple[str, list[int]]]] = {}  # (src, dst) -> (how, candidates) per op
    gathers: dict[int, list[tuple[int, ...]]] = {src: [] for src in range(3)}  # src -> distinct gathered sets
    for dst in range(1, 4):
        for src in range(dst):
            key = f"{src}{dst}"
            groups: dict[str, list[int]] = {}
            for k, cell in enumerate(cells):
                if key in cell.edges:
                    groups.setdefault(cell.genotype.ops[_EDGE[key]], []).append(k)
            plan[src, dst] = []
            for ks in groups.values():
                if len(ks) == n:
                    how = "all"
                elif 2 * len(ks) >= n and _channelwise([cells[k].edges[key] for k in ks]):
                    how = "masked"
                else:
                    how = "gathered"
                    if tuple(ks) not in gathers[src]:
                        gathers[src].append(tuple(ks))
                plan[src, dst].append((how, ks))
    nodes = [x]
    gathered: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
    for dst in range(1, 4):
        src_new = dst - 1  # node dst - 1 is complete: gather what its out-edges need
        if gathers[src_new]:
            indices = [torch.tensor(ks, dtype=torch.int64, device=x.device) for ks in gathers[src_new]]
            parts = GatherBlocks.apply(_blocks(nodes[src_new], n), *indices)
            for ks, part in zip(gathers[src_new], parts, strict=True):
                gathered[src_new, ks] = part.view(x.shape[0], x.shape[1], -1, *x.shape[3:])
        total = _NodeSum(x, n)
        for src in range(dst):
            key = f"{src}{dst}"
            for how, ks in plan[src, dst]:
                modules = [cells[k].edges[key] for k in ks]
                if how == "all":
                    total.add(run_stacked(modules, nodes[src]))
                elif how == "masked":
                    mask = torch.zeros(n, device=x.device)
                    mask[ks] = 1.0
                    total.add_masked(run_stacked(modules[:1] * n, nodes[src]), mask)
                else:
                    index = torch.tensor(ks, dtype=torch.int64, device=x.device)
                    total.add_blocks(index, run_stacked(modules, gathered[src, tuple(ks)]))
        nodes.append(total.result())
    return nodes[3]


def unreached_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` (an :class:`~spikenas.network.SNASNetwork`) that get no gradient from its
    output: a backward pass of a deep copy on the CPU (train mode, two seeded random images, torch's generator
    restored afterwards, so nothing of ``model`` and no later draw changes) finds them."""
    probe = copy.deepcopy(model).cpu().train()
    config = probe.config
    generator = torch.Generator().manual_seed(0)
    dtype = next(probe.parameters()).dtype
    images = torch.randn(2, config.in_channels, config.input_size, config.input_size, generator=generator)
    with torch.random.fork_rng(devices=[]), torch.enable_grad():  # its dropout mask must not move torch's generator
        probe(images.to(dtype)).sum().backward()
    functional.reset_net(probe)
    return [p for p, q in zip(model.parameters(), probe.parameters(), strict=True) if q.grad is None]


class StackedNetworks:
    """``n`` networks of one macro run as one stacked forward pass; each keeps its own modules.

    :param models: :class:`~spikenas.network.SNASNetwork` instances with equal configs (cells may differ).
    :raises SpikeNASError: no models, models of different macros, or a network of another structure.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        models = list(models)
        if not models:
            raise SpikeNASError("stacked training needs at least one candidate network")
        for m in models:
            if not isinstance(m, SNASNetwork):
                raise SpikeNASError(f"stacked training runs SNASNetwork models, got {type(m).__name__}")
        config = models[0].config
        for i, m in enumerate(models[1:], start=1):
            if m.config != config:
                raise SpikeNASError(
                    f"stacked candidates must share one macro: candidate {i} has {m.config}, candidate 0 {config}"
                )
        stem = models[0].stem
        if not (
            type(stem) is nn.Sequential and len(stem) == 2 and type(stem[0]) is nn.Conv2d
            and type(stem[1]) is nn.BatchNorm2d and stem[0].padding_mode == "zeros" and stem[0].groups == 1
        ):
            raise SpikeNASError(f"stacked training expects the stem Conv2d -> BatchNorm2d, got {stem}")
        self.models = models
        self.config = config
        self._unreached: list[list[nn.Parameter]] | None = None

    @property
    def n(self) -> int:
        return len(self.models)

    def train(self, mode: bool = True) -> StackedNetworks:
        for m in self.models:
            m.train(mode)
        return self

    def eval(self) -> StackedNetworks:
        return self.train(False)

    def unreached(self) -> list[list[nn.Parameter]]:
        """Per candidate, the parameters its own loss never reaches (a zero edge cutting every path):
        alone their gradient stays None, so the optimizer leaves them alone (no weight decay, no
        momentum). Found once by a backward pass of a copy of each candidate on two random images."""
        if self._unreached is None:
            self._unreached = [unreached_parameters(m) for m in self.models]
        return self._unreached

    def reset(self) -> None:
        """Reset every neuron of every candidate."""
        for m in self.models:
            functional.reset_net(m)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Float ``[B, C_in, H, W]`` images -> float ``[n, B, num_classes]`` logits, candidate ``k`` in row ``k``
        equal to ``models[k](images)`` up to float rounding."""
        models, n = self.models, self.n
        convs = [m.stem[0] for m in models]
        x = stacked_conv(convs, images, shared_input=True)  # [B, n*C, H, W]; computed once, repeated over T
        x = stacked_batch_norm([m.stem[1] for m in models], x)
        x = x.unsqueeze(0).expand(self.config.timesteps, *x.shape)
        for i, stage in enumerate(models[0].cells):
            stages = [m.cells[i] for m in models]
            if isinstance(stage, Cell):
                x = stacked_cell(stages, x)
            else:
                x = run_stacked(stages, x)
        x = run_stacked([m.head for m in models], x)  # [T, B, n * vote * classes]
        t, b, _ = x.shape
        voted = models[0].vote(x.reshape(t * b, 1, -1))  # vote groups never straddle two candidates' blocks
        return voted.reshape(t, b, n, -1).mean(dim=0).transpose(0, 1)


# ---- training ----------------------------------------------------------------------------------------------


def stacked_train_step(
    stacked: StackedNetworks,
    optimizers: Sequence[torch.optim.Optimizer],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
) -> tuple[list[float], torch.Tensor]:
    """One optimizer step of every candidate on the same batch, as :func:`~spikenas.train.trainer.train_step`
    takes it for each alone; the neurons are reset afterwards.

    :param optimizers: one per candidate, over its own parameters.
    :param images: float32 ``[B, C, H, W]``; :param labels: int64 ``[B]``.
    :returns: each candidate's mean cross-entropy, and the detached float32 ``[n, B, classes]`` logits.
    """
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    logits = stacked(images)
    n, b, classes = logits.shape
    per_sample = F.cross_entropy(
        logits.reshape(n * b, classes), labels.repeat(n), reduction="none", label_smoothing=label_smoothing
    )
    losses = per_sample.view(n, b).mean(dim=1)
    losses.sum().backward()  # disjoint graphs: candidate k's parameters get the gradient of losses[k] alone
    for params in stacked.unreached():  # concatenated weights got zero gradients where alone they get None
        for p in params:
            p.grad = None
    for optimizer in optimizers:
        optimizer.step()
    stacked.reset()
    return losses.tolist(), logits.detach()


def stacked_evaluate(
    stacked: StackedNetworks, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256
) -> list[tuple[float, float]]:
    """Each candidate's accuracy in [0, 1] and mean cross-entropy, as :func:`spikenas.train.trainer.evaluate`
    measures them (eval mode, :func:`torch.inference_mode`).

    :param images: float32 ``[N, C, H, W]``; :param labels: int64 ``[N]``.
    """
    was_training = [m.training for m in stacked.models]
    stacked.eval()
    device = next(stacked.models[0].parameters()).device
    correct = torch.zeros(stacked.n, dtype=torch.int64)
    loss_sum = [0.0] * stacked.n
    try:
        with torch.inference_mode():
            for start in range(0, len(labels), batch_size):
                x = images[start : start + batch_size].to(device)
                y = labels[start : start + batch_size].to(device)
                logits = stacked(x)  # [n, b, classes]
                n, b, classes = logits.shape
                losses = F.cross_entropy(logits.reshape(n * b, classes), y.repeat(n), reduction="none")
                for k, value in enumerate(losses.view(n, b).sum(dim=1).tolist()):
                    loss_sum[k] += value
                correct += (logits.argmax(dim=2) == y).sum(dim=1).cpu()
    finally:
        stacked.reset()
        for m, mode in zip(stacked.models, was_training, strict=True):
            m.train(mode)
    return [(int(c) / len(labels), s / len(labels)) for c, s in zip(correct, loss_sum, strict=True)]


@dataclass
class _Candidate:
    """One candidate's training state."""

    genotypes: list[Genotype]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    fingerprint: dict
    checkpoint: Path | None
    history: list
    start_epoch: int = 0
    stopped: bool = False


def _one_by_one(
    cells_of: Sequence[list[Genotype]], macro: MacroConfig, train_set: ImageDataset, test_set: ImageDataset, *,
    config: TrainConfig, checkpoint_dirs: Sequence[str | Path] | None, resumes: Sequence[bool], progress: bool,
    count_test_spikes: bool, on_epoch_end: Callable[[int, int, dict], None] | None, device: str | torch.device,
) -> list[TrainResult]:
    """:func:`train_stacked`'s contract (arguments checked by it), each candidate trained alone by :func:`train`."""
    results = []
    for k, cells in enumerate(cells_of):
        def report(epoch: int, row: dict, k: int = k) -> None:
            if on_epoch_end is not None:
                on_epoch_end(k, epoch, row)

        results.append(train(cells, macro, train_set, test_set, config=config,
                             checkpoint_dir=None if checkpoint_dirs is None else checkpoint_dirs[k],
                             resume=resumes[k], progress=progress, count_test_spikes=count_test_spikes,
                             on_epoch_end=report, device=device))
    return results


def train_stacked(
    candidates: Sequence[Genotype | Sequence[Genotype]],
    macro: MacroConfig,
    train_set: ImageDataset,
    test_set: ImageDataset,
    *,
    config: TrainConfig | None = None,
    checkpoint_dirs: Sequence[str | Path] | None = None,
    resume: bool | Sequence[bool] = False,
    progress: bool = True,
    count_test_spikes: bool = True,
    on_epoch_end: Callable[[int, int, dict], None] | None = None,
    device: str | torch.device = "cpu",
) -> list[TrainResult]:
    """Train every candidate as :func:`spikenas.train.trainer.train` trains it alone, all in one stacked pass.

    :param candidates: the cells of each candidate (a genotype for every cell, or one for all cells).
    :param config: the recipe of every candidate (None: ``TrainConfig()``); one seed, hence the same
        batches, augmentation and dropout masks as each candidate's own :func:`train` run.
    :param checkpoint_dirs: one directory per candidate, where ``checkpoint.pt`` is written after every
        epoch in :func:`train`'s format (``train(..., resume=True)`` continues it); None: no checkpoints.
    :param resume: continue each candidate from its checkpoint (all must exist and match), or, one flag per
        candidate, the candidates flagged (the others start afresh); candidates at different epochs catch up
        one after another: an epoch trains the candidates that have not done it.
    :param on_epoch_end: called with ``(candidate, epoch, history_row)`` after each candidate's checkpoint;
        raising :class:`~spikenas.train.trainer.StopTraining` stops that candidate after this epoch.
    :returns: one :class:`TrainResult` per candidate, in order (``train_seconds``: wall time of the stacked
        epochs that candidate took part in; the history rows' ``seconds`` are the stacked epoch's).
    :raises SpikeNASError: as :func:`train`, or checkpoint directories that do not match the candidates.

    The stacked engine runs SNASNet-family networks (a stem computed once, repeated over T); networks of another
    family (the Speck space's, whose stem runs on events at every step) are trained one after another by
    :func:`train`, with the same arguments and results.
    """
    config = TrainConfig() if config is None else config
    cells = [cell_list(c, macro) for c in candidates]
    if not cells:
        raise SpikeNASError("train_stacked needs at least one candidate")
    if checkpoint_dirs is not None and len(checkpoint_dirs) != len(cells):
        raise SpikeNASError(f"got {len(checkpoint_dirs)} checkpoint directories for {len(cells)} candidates")
    resumes = [bool(resume)] * len(cells) if isinstance(resume, bool) else [bool(r) for r in resume]
    if len(resumes) != len(cells):
        raise SpikeNASError(f"got {len(resumes)} resume flags for {len(cells)} candidates")
    if any(resumes) and checkpoint_dirs is None:
        raise SpikeNASError("resume needs checkpoint_dirs")
    if macro.family != "snasnet":
        return _one_by_one(cells, macro, train_set, test_set, config=config, checkpoint_dirs=checkpoint_dirs,
                           resumes=resumes, progress=progress, count_test_spikes=count_test_spikes,
                           on_epoch_end=on_epoch_end, device=device)
    data = training_data(train_set, test_set, macro, config)
    steps = (len(data.indices) + config.batch_size - 1) // config.batch_size
    device = torch.device(device)
    runs: list[_Candidate] = []
    for k, genotypes in enumerate(cells):
        model = initial_model(genotypes, macro, config).to(device)
        optimizer = make_optimizer(model, config)
        scheduler = make_scheduler(optimizer, config, steps_per_epoch=steps)
        ckpt = None if checkpoint_dirs is None else Path(checkpoint_dirs[k]) / CHECKPOINT_NAME
        run = _Candidate(genotypes, model, optimizer, scheduler, fingerprint(genotypes, macro, config, data.data_id),
                         ckpt, [])
        if resumes[k]:
            if ckpt is None or not ckpt.exists():
                raise SpikeNASError(f"--resume: no checkpoint at {ckpt}; run without --resume first")
            state = load_checkpoint(ckpt, run.fingerprint)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            run.history = list(state["history"])
            run.start_epoch = int(state["epoch"])
        runs.append(run)

    seconds = [0.0] * len(runs)
    with torch.random.fork_rng(devices=[]):
        for epoch in range(min(r.start_epoch for r in runs), config.epochs):
            active = [k for k, r in enumerate(runs) if r.start_epoch <= epoch and not r.stopped]
            if not active:
                break
            t0 = time.perf_counter()
            rows = _stacked_epoch([runs[k] for k in active], data, config, epoch=epoch, steps=steps,
                                  progress=progress, device=device)
            stacked = StackedNetworks([runs[k].model for k in active])
            scores = stacked_evaluate(stacked, data.x_test, data.y_test, batch_size=config.eval_batch_size)
            for k, row, (accuracy, loss) in zip(active, rows, scores, strict=True):
                run = runs[k]
                if config.schedule == "epoch":
                    run.scheduler.step()
                row["test_accuracy"], row["test_loss"] = accuracy, loss
                run.history.append(row)
                if run.checkpoint is not None:
                    save_checkpoint(run.checkpoint, {
                        "format": _CHECKPOINT_FORMAT,
                        "fingerprint": run.fingerprint,
                        "epoch": epoch + 1,
                        "model": run.model.state_dict(),
                        "optimizer": run.optimizer.state_dict(),
                        "scheduler": run.scheduler.state_dict(),
                        "history": run.history,
                        "rng": {"torch": torch.get_rng_state()},
                    })
                if progress:
                    log.info("candidate %d epoch %d/%d: %s", k, epoch + 1, config.epochs, row)
                if on_epoch_end is not None:
                    try:
                        on_epoch_end(k, epoch + 1, row)
                    except StopTraining:
                        run.stopped = True
            elapsed = time.perf_counter() - t0
            for k in active:
                seconds[k] += elapsed

    results = []
    for run, train_seconds in zip(runs, seconds, strict=True):
        if run.history:
            accuracy, loss = run.history[-1]["test_accuracy"], run.history[-1]["test_loss"]
        else:
            (accuracy, loss), = stacked_evaluate(
                StackedNetworks([run.model]), data.x_test, data.y_test, batch_size=config.eval_batch_size
            )
        run.model.to("cpu")
        spikes = None
        if count_test_spikes:
            n_test = len(data.y_test)
            batches = [data.x_test[i : i + config.eval_batch_size] for i in range(0, n_test, config.eval_batch_size)]
            spikes = count_spikes(run.model, batches)
        results.append(TrainResult(run.history, accuracy, loss, spikes, train_seconds, run.start_epoch, run.model,
                                   config.epochs, run.fingerprint))
    return results


def _stacked_epoch(
    runs: Sequence[_Candidate],
    data: TrainingData,
    config: TrainConfig,
    *,
    epoch: int,
    steps: int,
    progress: bool,
    device: torch.device,
) -> list[dict]:
    """One epoch of every candidate in ``runs`` on the batches :func:`train` draws for epoch ``epoch``;
    a history row per candidate (without the test columns)."""
    stacked = StackedNetworks([r.model for r in runs]).train()
    optimizers = [r.optimizer for r in runs]
    lrs = [r.optimizer.param_groups[0]["lr"] for r in runs]
    n = len(runs)
    loss_sum, correct, seen = [0.0] * n, torch.zeros(n, dtype=torch.int64), 0
    start = time.perf_counter()
    batches = epoch_batches(data.x_train, data.y_train, data.fill, config, epoch=epoch, steps=steps, device=device)
    with Progress(steps, f"epoch {epoch + 1}/{config.epochs} x{n}", enabled=progress, every=25.0) as bar:
        for x, y in batches:
            losses, logits = stacked_train_step(stacked, optimizers, x, y, label_smoothing=config.label_smoothing)
            if config.schedule == "step":
                for r in runs:
                    r.scheduler.step()
            for k, loss in enumerate(losses):
                loss_sum[k] += loss * len(y)
            correct += (logits.argmax(dim=2) == y).sum(dim=1).cpu()
            seen += len(y)
            bar.update(1, loss=f"{sum(loss_sum) / (n * seen):.3f}")
    wall = time.perf_counter() - start
    return [
        {"epoch": epoch + 1, "lr": lrs[k], "train_loss": loss_sum[k] / seen, "train_accuracy": int(correct[k]) / seen,
         "seconds": wall}
        for k in range(n)
    ]
