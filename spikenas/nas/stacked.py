"""Many candidates through one module at once, their tensors stacked on the sample axis.

In fast mode (:mod:`spikenas.nas.fast`) the candidates of a pass share every module's weights
(per-edge seeding), so the parts each candidate computes on its own (downconv, the cells after the
searched one, the head) can run as one call per module on the candidates' stacked values: sample
``b`` of candidate ``k`` of ``n`` is row ``b*n + k`` of the sample axis of a ``[T, B*n, ...]`` tensor
(a view of ``[T, B, n, ...]``). Convolutions, pooling, linear layers and neurons act on each sample
alone. BatchNorm in train mode does not: its statistics must stay per candidate, so
:func:`grouped_batch_norm` reads the candidates as channels (``[T*B, n*C, ...]``, a view in this
layout), which normalises every (candidate, channel) pair with statistics over the same elements, in
the same order, as the candidate alone. On CPU the outputs are bit-identical to running
each candidate alone (tests/test_fast_search.py checks scores against exact mode). Modules not known
to act per sample run once per candidate on its slice: correct, only slower.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import layer
from spikingjelly.activation_based.neuron import BaseNode, LIFNode
from torch import nn

from spikenas.ops import Zero, get_op
from spikenas.scoring.recorder import OutputLog, neuron_pass
from spikenas.space import EDGES, Genotype

Gram = Callable[[torch.Tensor], torch.Tensor]  # spikes [..., T, B, N] -> float64 kernel [..., B, B] summed over T
EdgeModule = Callable[[int, str], nn.Module]  # (edge index, op name) -> the module of that op on that edge

_EDGE = {edge: i for i, edge in enumerate(EDGES)}
# Multi-step spikingjelly layers that map each sample on its own (in eval mode: Dropout is the identity).
_PER_SAMPLE = (
    layer.Conv1d, layer.Conv2d, layer.Conv3d, layer.Linear, layer.AvgPool1d, layer.AvgPool2d, layer.AvgPool3d,
    layer.MaxPool1d, layer.MaxPool2d, layer.MaxPool3d, layer.AdaptiveAvgPool2d, layer.Flatten, layer.Dropout,
)


@dataclass
class Stack:
    """Values of ``n`` candidates stacked on the sample axis, with each candidate's kernel parts."""

    value: torch.Tensor  # float [T, B*n, ...]: sample b of candidate k is row b*n + k
    n: int
    kernel: torch.Tensor | None  # float64 [n, B, B], summed over LIF calls; None when there were none
    calls: torch.Tensor  # int64 [n]: LIF calls (layers x timesteps) behind each candidate's kernel

    @property
    def batch(self) -> int:
        return self.value.shape[1] // self.n


def stack(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """``n`` values ``[T, B, ...]`` -> stacked ``[T, B*n, ...]``."""
    out = torch.stack(list(values), dim=2)
    return out.view(out.shape[0], -1, *out.shape[3:])


def split(value: torch.Tensor, n: int) -> torch.Tensor:
    """Stacked ``[T, B*n, ...]`` -> a ``[T, B, n, ...]`` view."""
    return value.view(value.shape[0], value.shape[1] // n, n, *value.shape[2:])


def select(value: torch.Tensor, n: int, index: torch.Tensor) -> torch.Tensor:
    """Candidates ``index`` (int64 ``[m]``) of a stacked ``[T, B*n, ...]`` -> ``[T, B*m, ...]``."""
    if index.numel() == n:
        return value  # callers pass sorted, distinct indices: all of them is the identity
    picked = split(value, n).index_select(2, index)
    return picked.view(value.shape[0], -1, *value.shape[2:])


def stacked_gram(spikes: torch.Tensor, n: int, gram: Gram) -> torch.Tensor:
    """Spikes ``[T, B*n, ...]`` of ``n`` candidates -> float64 ``[n, B, B]``, each summed over T."""
    t = spikes.shape[0]
    per_candidate = split(spikes.reshape(t, spikes.shape[1], -1), n).permute(2, 0, 1, 3).contiguous()
    return gram(per_candidate)


def _reference_lif(m: nn.Module, x: torch.Tensor) -> bool:
    """Whether :func:`lif_spikes` reproduces ``m(x)``: a reset multi-step :class:`LIFNode` at
    spikingjelly's default precision, no hooks, a float32 CPU input and no gradients."""
    return (
        type(m) is LIFNode
        and m.step_mode == "m"
        and getattr(m, "_neuron_precision", None) is None
        and isinstance(m.v, float)
        and isinstance(m.tau, (int, float))
        and isinstance(m.v_threshold, (int, float))
        and (m.v_reset is None or isinstance(m.v_reset, (int, float)))
        and not m._forward_hooks
        and not m._forward_pre_hooks
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and x.dim() >= 2
        and not torch.is_grad_enabled()
    )


def lif_spikes(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Spikes of multi-step neuron ``m`` from reset state on float ``[T, B, ...]``: same shape and dtype,
    the neuron left reset. A :class:`LIFNode` that :func:`_reference_lif` accepts runs here with the
    element-wise operations of spikingjelly's reference step, in the same order on the same dtype, into
    preallocated buffers (equal values without a temporary per operation, the stacking copy, the
    autograd wrapper or the membrane update after the last step); any other neuron runs as ``m(x)``."""
    if not _reference_lif(m, x):
        m.reset()
        out = m(x)
        m.reset()
        return out
    tau, threshold, reset = m.tau, m.v_threshold, m.v_reset
    reset_value = 0.0 if reset is None else reset
    spikes = torch.empty_like(x, memory_format=torch.contiguous_format)
    v = torch.full_like(spikes[0], m.v)
    h = torch.empty_like(v)
    tmp = torch.empty_like(v)
    fired = torch.empty(v.shape, dtype=torch.bool)
    for t in range(x.shape[0]):
        torch.sub(v, reset_value, out=tmp)
        if m.decay_input:  # h = v + (x - (v - reset)) / tau
            torch.sub(x[t], tmp, out=tmp)
            tmp.div_(tau)
            torch.add(v, tmp, out=h)
        else:  # h = v - (v - reset) / tau + x
            tmp.div_(tau)
            torch.sub(v, tmp, out=h)
            h.add_(x[t])
        torch.sub(h, threshold, out=tmp)  # spike = heaviside(h - threshold)
        torch.ge(tmp, 0, out=fired)
        spike = spikes[t]
        spike.copy_(fired)
        if t == x.shape[0] - 1:
            break
        if reset is None:  # v = h - spike * threshold
            torch.mul(spike, threshold, out=tmp)
            torch.sub(h, tmp, out=v)
        else:  # v = spike * reset + (1 - spike) * h
            torch.mul(spike, reset, out=v)
            torch.neg(spike, out=tmp)
            tmp.add_(1.0)
            tmp.mul_(h)
            v.add_(tmp)
    return spikes


def grouped_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor, n: int) -> torch.Tensor:
    """Train-mode BatchNorm of a multi-step layer on ``n`` stacked candidates, each with its own
    batch statistics: ``[T, B*n, C, ...]`` -> same shape. Running statistics are left untouched."""
    t, bn_rows = x.shape[:2]
    folded = x.reshape(t * (bn_rows // n), n * x.shape[2], *x.shape[3:])
    weight = None if bn.weight is None else bn.weight.repeat(n)
    bias = None if bn.bias is None else bn.bias.repeat(n)
    return F.batch_norm(folded, None, None, weight, bias, True, 0.0, bn.eps).view(x.shape)


def _stacks_batch_norm(m: nn.Module, x: torch.Tensor) -> bool:
    return (
        isinstance(m, (layer.BatchNorm1d, layer.BatchNorm2d, layer.BatchNorm3d))
        and m.step_mode == "m"
        and m.training
        and x.dim() >= 3
    )


def run_stacked(module: nn.Module, x: torch.Tensor, n: int, gram: Gram) -> Stack:
    """Run ``module`` (from reset state) on ``n`` stacked candidates, folding each LIF call into
    every candidate's kernel. ``x``: float ``[T, B*n, ...]``."""
    kernel: torch.Tensor | None = None
    calls = 0

    def add(k: torch.Tensor, c: int) -> None:
        nonlocal kernel, calls
        kernel = k if kernel is None else kernel + k
        calls += c

    def visit(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if type(m) is nn.Sequential:
            for child in m:
                x = visit(child, x)
            return x
        if isinstance(m, BaseNode) and m.step_mode == "m":
            spikes = lif_spikes(m, x)
            add(stacked_gram(spikes, n, gram), spikes.shape[0])
            return spikes
        if _stacks_batch_norm(m, x):
            return grouped_batch_norm(m, x, n)
        if _acts_per_sample(m):
            return m(x)
        return _per_candidate(m, x)

    def _per_candidate(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        outs, grams = [], []
        for k in range(n):
            with OutputLog(h for h in m.modules() if isinstance(h, BaseNode)) as spikes, neuron_pass(m):
                outs.append(m(split(x, n)[:, :, k]))
            grams.append([(gram(s.reshape(s.shape[0], s.shape[1], -1)), s.shape[0]) for s in spikes.outputs])
        for j in range(len(grams[0])):
            add(torch.stack([g[j][0] for g in grams]), grams[0][j][1])
        return stack(outs)

    out = visit(module, x)
    return Stack(out, n, kernel, torch.full((n,), calls, dtype=torch.int64))


_Staged = tuple[torch.Tensor, dict[int, int], torch.Tensor | None]


def shared_stage(module: nn.Module) -> tuple[nn.Module, tuple, nn.Module | None] | None:
    """How an op module's first stage can be shared by every op on a node's out-edges that has it:
    ``(stage, signature, rest)``, where stages with equal signatures give equal outputs on equal
    inputs, or None. A leading LIF (``rest`` is the remainder; its spikes enter the kernel once per
    edge) or a whole parameter-free, stateless module such as a pooling op (``rest`` is None)."""
    if isinstance(module, nn.Sequential) and len(module) > 0 and isinstance(module[0], BaseNode):
        lead = module[0]
        if lead.step_mode != "m":
            return None
        if type(lead) is LIFNode:
            return lead, ("lif", lead.tau, lead.v_threshold, lead.v_reset, lead.decay_input), module[1:]
        return lead, ("module", id(lead)), module[1:]  # unknown neuron types are not assumed interchangeable
    if isinstance(module, (nn.Identity, Zero)) or next(module.parameters(), None) is not None:
        return None
    if next(module.buffers(), None) is not None or not all(
        type(m) is nn.Sequential or _acts_per_sample(m) for m in module.modules()
    ):
        return None
    return module, ("free", type(module).__qualname__, repr(module)), None


def _acts_per_sample(m: nn.Module) -> bool:
    """A leaf layer known to map each sample of a multi-step input on its own."""
    return isinstance(m, (nn.Identity, Zero)) or (isinstance(m, _PER_SAMPLE) and m.step_mode == "m")


def stacked_cell(x: Stack, genotypes: Sequence[Genotype], edge_module: EdgeModule, gram: Gram) -> Stack:
    """One cell position for ``n`` stacked candidates, candidate ``k`` with ``genotypes[k]``.

    Node values are built as :class:`spikenas.network.Cell` builds them (in-edges summed in source
    order); each edge op runs once on the candidates holding it; the first stage of ops that share
    one (:func:`shared_stage`: a leading LIF, a pooling op) runs once per node and signature for
    every candidate that needs it, and LIF spikes count once per edge that uses them.
    """
    n, b = x.n, x.batch
    kernel = x.kernel.clone() if x.kernel is not None else torch.zeros(n, b, b, dtype=torch.float64)
    calls = x.calls.clone()
    nodes = [x.value]
    staged: dict[tuple, _Staged] = {}

    stages: dict[tuple[int, str], tuple[nn.Module, tuple, nn.Module | None] | None] = {}

    def stage_of(edge: int, op_name: str) -> tuple[nn.Module, tuple, nn.Module | None] | None:
        if (edge, op_name) not in stages:
            stages[edge, op_name] = None if get_op(op_name).is_zero else shared_stage(edge_module(edge, op_name))
        return stages[edge, op_name]

    def signature(edge: int, op_name: str) -> tuple | None:
        stage = stage_of(edge, op_name)
        return None if stage is None else stage[1]

    def stage_output(src: int, stage: nn.Module, sig: tuple) -> _Staged:
        """``stage`` on node ``src`` for every candidate with an out-edge of ``src`` that starts
        with it: (stacked output, row of each such candidate, float64 [m, B, B] kernels of spikes
        or None)."""
        if (src, sig) not in staged:
            out_edges = [_EDGE[(src, d)] for d in range(src + 1, 4)]
            needers = [k for k, g in enumerate(genotypes) if any(signature(e, g.ops[e]) == sig for e in out_edges)]
            inputs = select(nodes[src], n, torch.tensor(needers, dtype=torch.int64))
            if isinstance(stage, BaseNode) and stage.step_mode == "m":
                value = lif_spikes(stage, inputs)
            else:
                with neuron_pass(stage):
                    value = stage(inputs)
            grams = stacked_gram(value, len(needers), gram) if isinstance(stage, BaseNode) else None
            staged[(src, sig)] = (value, {k: i for i, k in enumerate(needers)}, grams)
        return staged[(src, sig)]

    for dst in (1, 2, 3):
        total = torch.zeros_like(x.value)
        for src in range(dst):
            e = _EDGE[(src, dst)]
            members: dict[str, list[int]] = {}
            for k, genotype in enumerate(genotypes):
                if not get_op(genotype.ops[e]).is_zero:
                    members.setdefault(genotype.ops[e], []).append(k)
            for op_name, ks in members.items():
                index = torch.tensor(ks, dtype=torch.int64)
                module = edge_module(e, op_name)
                shared = stage_of(e, op_name)
                if shared is None:
                    part = run_stacked(module, select(nodes[src], n, index), len(ks), gram)
                else:
                    stage, sig, rest = shared
                    value, row, grams = stage_output(src, stage, sig)
                    rows = torch.tensor([row[k] for k in ks], dtype=torch.int64)
                    picked = select(value, len(row), rows)
                    if grams is not None:
                        kernel.index_add_(0, index, grams.index_select(0, rows))
                        calls[index] += value.shape[0]
                    if rest is None:
                        part = Stack(picked, len(ks), None, torch.zeros(len(ks), dtype=torch.int64))
                    else:
                        part = run_stacked(rest, picked, len(ks), gram)
                if part.kernel is not None:
                    kernel.index_add_(0, index, part.kernel)
                    calls[index] += part.calls
                split(total, n).index_add_(2, index, split(part.value, len(ks)))
        nodes.append(total)
    return Stack(nodes[3], n, kernel, calls)
