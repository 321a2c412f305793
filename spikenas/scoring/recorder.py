"""The one forward-hook recorder of the project: what a network's spiking neurons emit on a batch.

Every spikingjelly neuron (:class:`~spikingjelly.activation_based.neuron.BaseNode`) is hooked; each call
of a neuron gives binary patterns of shape ``[T, B, N]`` (``T = 1`` for single-step neurons, one row per
sample), handed to a sink. :func:`record_probe` keeps, per call and timestep, the ``[B, B]`` Hamming matrix
of the B samples' patterns (through :mod:`spikenas.kernels`, on packed bits), the spikes per sample and
N, tagged with where the neuron sits (a cell edge on an input-to-output path, a cell edge off every
such path, or the macro). The scores, the search engines and the studies all record through here.

The pieces, all on one hook (:class:`OutputRecorder`, each call's output to a sink):

* :func:`neuron_pass`: forward passes from reset neuron states, with the model's mode (and, under BatchNorm's
  train mode, its running statistics) restored and optionally no gradients;
* :class:`SpikeRecorder`: each neuron call's spikes as ``[T, B, N]`` (the probes and recordings below);
* :class:`SpikeTally`: spikes summed per named neuron (:func:`spikenas.spikes.count_spikes`, AutoSNN's fitness);
* :class:`OutputLog`: every call's output, in call order (the stacked search engine's kernels);
* an :class:`OutputRecorder` with its own sink: deployment's spike maps
  (:func:`spikenas.deployment.measure_spike_maps`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.neuron import BaseNode
from torch import nn

from spikenas import kernels
from spikenas.errors import SpikeNASError
from spikenas.network import Cell
from spikenas.space import EDGES

KINDS = ("live", "dead", "macro")  # LIF on a live cell edge, on a dead cell edge, outside the cells
BN_MODES = ("train", "eval")
#: ``sink(module, spikes)``: spikes float ``[T, B, N]`` of one call of ``module``.
SpikeSink = Callable[[nn.Module, torch.Tensor], None]
#: ``sink(module, output)``: the output tensor of one call of ``module`` as the module returned it (not detached).
OutputSink = Callable[[nn.Module, torch.Tensor], None]
NeuronFilter = Callable[[str, nn.Module], bool]


def spiking_neurons(model: nn.Module) -> list[tuple[str, BaseNode]]:
    """The spikingjelly neurons of ``model`` with their qualified names, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BaseNode)]


def set_bn_mode(model: nn.Module, bn_mode: str) -> nn.Module:
    """Put ``model`` in eval mode, with its BatchNorm layers in train mode (batch statistics) when
    ``bn_mode`` is ``train``; returns ``model``."""
    if bn_mode not in BN_MODES:
        raise SpikeNASError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    model.eval()
    if bn_mode == "train":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
    return model


def as_spikes(module: nn.Module, output: torch.Tensor | tuple) -> torch.Tensor:
    """A neuron call's output as ``[T, B, N]`` (multi-step ``[T, B, ...]``, single-step ``[B, ...]``)."""
    if isinstance(output, tuple):
        output = output[0]
    if getattr(module, "step_mode", "s") == "m":
        return output.reshape(output.shape[0], output.shape[1], -1)
    return output.reshape(1, output.shape[0], -1)


class OutputRecorder:
    """Context manager hooking ``modules``: each call's output (the first element of a tuple output) goes to
    ``sink(module, output)``, in call order, for as long as it is entered."""

    def __init__(self, modules: Iterable[nn.Module], sink: OutputSink) -> None:
        self.modules = list(modules)
        self.sink = sink
        self._handles: list = []

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor | tuple) -> None:
        self.sink(module, output[0] if isinstance(output, tuple) else output)

    def __enter__(self) -> OutputRecorder:
        self._handles = [m.register_forward_hook(self._hook) for m in self.modules]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class SpikeRecorder(OutputRecorder):
    """Context manager hooking ``neurons``: each call's spikes go to ``sink(module, [T, B, N] spikes)``."""

    def __init__(self, neurons: Iterable[nn.Module], sink: SpikeSink) -> None:
        super().__init__(neurons, lambda module, output: sink(module, as_spikes(module, output)))


class SpikeTally(OutputRecorder):
    """Context manager summing the spikes of every spikingjelly neuron of ``model`` over all calls while it is
    entered (any number of forward passes)::

        with SpikeTally(model) as tally:
            model(x)
        tally.spikes  # {name: spikes emitted}

    ``spikes[name]``: float, the nonzero outputs of the neuron (each call's count exact as a float64);
    ``slots[name]``: int, its output elements (neurons x timesteps x samples). Names are the qualified module
    names, in the order of their first call; a neuron never called has no entry.
    """

    def __init__(self, model: nn.Module) -> None:
        named = spiking_neurons(model)
        self._names = {id(m): name for name, m in named}
        self.spikes: dict[str, float] = {}
        self.slots: dict[str, int] = {}
        super().__init__([m for _, m in named], self._add)

    def _add(self, module: nn.Module, output: torch.Tensor) -> None:
        name = self._names[id(module)]
        out = output.detach()
        self.spikes[name] = self.spikes.get(name, 0.0) + float((out != 0).sum())
        self.slots[name] = self.slots.get(name, 0) + out.numel()


class OutputLog(OutputRecorder):
    """Context manager keeping the output of every call of ``modules`` while it is entered, in call order, as
    returned (not detached, not copied): ``outputs``."""

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.outputs: list[torch.Tensor] = []
        super().__init__(modules, lambda _module, output: self.outputs.append(output))


@contextlib.contextmanager
def neuron_pass(model: nn.Module, *, bn_mode: str | None = None, no_grad: bool = False) -> Iterator[nn.Module]:
    """Context manager for forward passes of ``model`` from reset neuron states: spikingjelly's
    ``functional.reset_net`` runs on entry and on exit (also when the body raises).

    :param bn_mode: None leaves the model's modes alone. Otherwise the model is put in eval mode for the body,
        with its BatchNorm layers in train mode (batch statistics) for ``train`` (:func:`set_bn_mode`), and on
        exit ``model.train(was_training)`` restores its mode; under ``train`` the BatchNorm running statistics
        (and every non-float buffer) are restored too.
    :param no_grad: run the body under ``torch.no_grad()``.
    :raises SpikeNASError: ``bn_mode`` not None and not one of :data:`BN_MODES`.
    """
    if bn_mode is not None and bn_mode not in BN_MODES:
        raise SpikeNASError(f"bn_mode must be one of {BN_MODES} or None, got {bn_mode!r}")
    was_training = model.training
    saved = {}
    if bn_mode == "train":
        saved = {k: v.clone() for k, v in model.state_dict().items() if not v.is_floating_point() or "running" in k}
    try:
        if bn_mode is not None:
            set_bn_mode(model, bn_mode)
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            functional.reset_net(model)
            yield model
    finally:
        functional.reset_net(model)
        if bn_mode is not None:
            model.train(was_training)
        if saved:
            model.load_state_dict(saved, strict=False)


def run_recorded(module: nn.Module, inputs: torch.Tensor, sink: SpikeSink) -> torch.Tensor:
    """Run ``module`` on ``inputs`` from reset neuron states with every neuron's calls sent to ``sink``;
    no mode or gradient handling (the caller's). Returns the module's output."""
    with SpikeRecorder([m for m in module.modules() if isinstance(m, BaseNode)], sink), neuron_pass(module):
        return module(inputs)


def hooked_forward(
    model: nn.Module, inputs: torch.Tensor, neurons: list[nn.Module], sink: SpikeSink, *, bn_mode: str
) -> None:
    """One no-grad forward pass of ``model`` with ``sink`` on ``neurons``, from reset neuron states.

    The model's train/eval mode and its BatchNorm running statistics are left as they were found.

    :raises SpikeNASError: ``bn_mode`` not one of :data:`BN_MODES`.
    """
    if bn_mode not in BN_MODES:
        raise SpikeNASError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    with SpikeRecorder(neurons, sink), neuron_pass(model, bn_mode=bn_mode, no_grad=True):
        model(inputs)


@dataclass(frozen=True)
class Probe:
    """What one forward pass on one batch recorded, for G LIF calls over L LIF modules."""

    modules: tuple[str, ...]  # [L] qualified LIF module names
    kinds: tuple[str, ...]  # [L] one of KINDS per module
    call_module: np.ndarray  # int64 [G] module index of each call
    call_step: np.ndarray  # int64 [G] timestep of each call
    sizes: np.ndarray  # int64 [G] N, neurons per sample of each call
    hamming: np.ndarray  # int32 [G, B, B] pairwise Hamming distances of each call's patterns
    counts: np.ndarray  # int32 [G, B] spikes per sample of each call
    seconds: float = 0.0  # wall time of the forward pass and the Hamming matrices

    @property
    def batch_size(self) -> int:
        return int(self.hamming.shape[-1])

    def call_kinds(self) -> np.ndarray:
        """str ``[G]``: the kind of each call's module."""
        return np.array(self.kinds, dtype=object)[self.call_module] if len(self.call_module) else np.array([])


def module_kinds(network: nn.Module) -> dict[int, str]:
    """id(module) -> kind for every module inside a cell edge; neurons not listed are macro neurons."""
    kinds = {}
    for cell in network.modules():
        if not isinstance(cell, Cell):
            continue
        live = dict(zip((f"{s}{d}" for s, d in EDGES), cell.genotype.live_edges(), strict=True))
        for key, op in cell.edges.items():
            for m in op.modules():
                kinds[id(m)] = "live" if live[key] else "dead"
    return kinds


def record_probe(
    network: nn.Module,
    batch: torch.Tensor,
    *,
    bn_mode: str = "train",
    backend: str | None = None,
    neuron_filter: NeuronFilter | None = None,
) -> Probe:
    """One forward pass of ``network`` on ``batch``, recording every (selected) LIF call.

    :param batch: what ``network`` takes; its batch dimension is B >= 1.
    :param bn_mode: BatchNorm on batch statistics (``train``) or its running ones (``eval``); no
        gradients; the network's modes and BN running statistics are left as they were.
    :param backend: kernel backend of the packing and Hamming counts (None: auto).
    :param neuron_filter: keep only neurons for which ``filter(name, module)`` is true.
    :raises SpikeNASError: if no neuron is selected or none was called.
    """
    names = [(n, m) for n, m in spiking_neurons(network) if neuron_filter is None or neuron_filter(n, m)]
    if not names:
        raise SpikeNASError(f"{type(network).__name__} has no spikingjelly neurons to record")
    kinds_by_id = module_kinds(network)
    index = {id(m): i for i, (_, m) in enumerate(names)}
    calls: list[tuple[int, int, int, torch.Tensor, torch.Tensor]] = []

    def sink(module: nn.Module, spikes: torch.Tensor) -> None:
        counts = (spikes != 0).sum(dim=-1, dtype=torch.int32).cpu()
        packed = kernels.pack_bits(spikes, backend=backend)
        hamming = kernels.hamming_gram(packed, spikes.shape[-1], backend=backend).cpu()  # int32 [T, B, B]
        for t in range(spikes.shape[0]):
            calls.append((index[id(module)], t, spikes.shape[-1], hamming[t], counts[t]))

    start = time.perf_counter()
    hooked_forward(network, batch, [m for _, m in names], sink, bn_mode=bn_mode)
    if not calls:
        raise SpikeNASError(f"no neuron of {type(network).__name__} was called during the forward pass")
    return Probe(
        modules=tuple(n for n, _ in names),
        kinds=tuple(kinds_by_id.get(id(m), "macro") for _, m in names),
        call_module=np.array([c[0] for c in calls], dtype=np.int64),
        call_step=np.array([c[1] for c in calls], dtype=np.int64),
        sizes=np.array([c[2] for c in calls], dtype=np.int64),
        hamming=torch.stack([c[3] for c in calls]).numpy(),
        counts=torch.stack([c[4] for c in calls]).numpy(),
        seconds=time.perf_counter() - start,
    )


def save_probe(path: str | Path, probe: Probe) -> None:
    """Write ``probe`` to a compressed .npz (the upper triangles of the Hamming matrices only)."""
    b = probe.batch_size
    rows, cols = np.triu_indices(b, 1)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        modules=np.array(probe.modules),
        kinds=np.array(probe.kinds),
        call_module=probe.call_module,
        call_step=probe.call_step,
        sizes=probe.sizes,
        upper=probe.hamming[:, rows, cols],
        counts=probe.counts,
        batch_size=np.int64(b),
        seconds=np.float64(probe.seconds),
    )
    tmp.replace(path)


def load_probe(path: str | Path) -> Probe:
    """Read a probe written by :func:`save_probe`."""
    with np.load(path) as data:
        b = int(data["batch_size"])
        upper = data["upper"]
        hamming = np.zeros((upper.shape[0], b, b), dtype=np.int32)
        rows, cols = np.triu_indices(b, 1)
        hamming[:, rows, cols] = upper
        hamming[:, cols, rows] = upper
        return Probe(
            modules=tuple(str(s) for s in data["modules"]),
            kinds=tuple(str(s) for s in data["kinds"]),
            call_module=data["call_module"].astype(np.int64),
            call_step=data["call_step"].astype(np.int64),
            sizes=data["sizes"].astype(np.int64),
            hamming=hamming,
            counts=data["counts"].astype(np.int32),
            seconds=float(data["seconds"]),
        )


@dataclass
class NeuronCall:
    """One call of a spiking neuron during :func:`record_values`."""

    module: int  # index into Recording.modules
    source: int  # id of the call's input tensor within the pass: calls reading the same tensor share it
    spikes: torch.Tensor | None  # bool [T, B, N] (T = 1 for single-step neurons), when recorded
    potential: torch.Tensor | None  # float32 [T, B, ...] membrane potential after each step, when recorded


@dataclass
class Recording:
    """Raw values of one forward pass on one batch: spikes, membrane potentials and cell node values.

    Unlike a :class:`Probe`, which keeps only Hamming matrices, a Recording keeps the values themselves,
    for scores that reduce them another way (distinct patterns, channel correlations, node codes).
    """

    modules: tuple[str, ...]  # [L] qualified names of the recorded neurons, in registration order
    kinds: tuple[str, ...]  # [L] one of KINDS per neuron
    calls: list[NeuronCall]  # every neuron call, in call order
    nodes: dict[str, torch.Tensor]  # "<cell>.node<d>" -> float32 [T, B, C, H, W], cell nodes that receive an edge
    nodes_recorded: bool = False  # whether cell nodes were recorded (``nodes`` is empty for a network without cells)
    seconds: float = 0.0  # wall time of the forward pass

    @property
    def batch_size(self) -> int:
        for call in self.calls:
            tensor = call.spikes if call.spikes is not None else call.potential
            if tensor is not None:
                return int(tensor.shape[1])
        for value in self.nodes.values():
            return int(value.shape[1])
        return 0


def _potential(module: nn.Module) -> torch.Tensor:
    """The membrane potential ``[T, B, ...]`` of the call that just ended (``v_seq``; ``v`` for single step)."""
    if getattr(module, "step_mode", "s") == "m":
        v = getattr(module, "v_seq", None)
        if not isinstance(v, torch.Tensor):
            raise SpikeNASError(f"{type(module).__name__} kept no v_seq under store_v_seq=True: no potentials")
        return v.detach().float().clone()
    v = module.v
    if not isinstance(v, torch.Tensor):
        raise SpikeNASError(f"{type(module).__name__} has no tensor membrane potential v after its call")
    return v.detach().float().clone().unsqueeze(0)


def _cell_node_hooks(network: nn.Module, nodes: dict[str, torch.Tensor]) -> tuple[list, OutputRecorder]:
    """Pre-hooks keeping node 0 (the cell input) of every cell (their handles), and a recorder to enter that sums,
    per cell, the outputs of the edges into each node."""
    handles = []
    node_of: dict[int, str] = {}  # id(edge op) -> "<cell>.node<d>", d the node the edge goes into
    for name, cell in network.named_modules():
        if not isinstance(cell, Cell):
            continue

        def keep_input(module: nn.Module, args: tuple, prefix: str = name) -> None:
            nodes[f"{prefix}.node0"] = args[0].detach().float().clone()

        handles.append(cell.register_forward_pre_hook(keep_input))
        for key, op in cell.edges.items():
            node_of[id(op)] = f"{name}.node{key[1]}"

    def add_edge(module: nn.Module, output: torch.Tensor) -> None:
        node = node_of[id(module)]
        value = output.detach().float()
        nodes[node] = value.clone() if node not in nodes else nodes[node] + value

    edges = [op for cell in network.modules() if isinstance(cell, Cell) for op in cell.edges.values()]
    return handles, OutputRecorder(edges, add_edge)


def record_values(
    network: nn.Module,
    batch: torch.Tensor,
    *,
    spikes: bool = False,
    potentials: bool = False,
    nodes: bool = False,
    bn_mode: str = "train",
    neuron_filter: NeuronFilter | None = None,
) -> Recording:
    """One no-grad forward pass of ``network`` on ``batch`` keeping raw values (see :class:`Recording`).

    :param spikes: keep each neuron call's spikes, bool ``[T, B, N]``.
    :param potentials: keep each call's membrane potential after every step, float32 ``[T, B, ...]``
        (spikingjelly's ``v_seq``, after the reset of neurons that fired; multi-step neurons are run with
        ``store_v_seq=True`` for the pass and restored afterwards).
    :param nodes: keep the value of every node of every :class:`~spikenas.network.Cell` that receives an edge,
        and node 0 (the cell input), float32 ``[T, B, C, H, W]``.
    :param bn_mode, neuron_filter: as :func:`record_probe`; modes and BN running statistics are left as found.
    :raises SpikeNASError: if no neuron is selected.
    """
    names = [(n, m) for n, m in spiking_neurons(network) if neuron_filter is None or neuron_filter(n, m)]
    if not names:
        raise SpikeNASError(f"{type(network).__name__} has no spikingjelly neurons to record")
    kinds_by_id = module_kinds(network)
    index = {id(m): i for i, (_, m) in enumerate(names)}
    calls: list[NeuronCall] = []
    sources: dict[int, tuple[int, torch.Tensor]] = {}  # id(input) -> (source id, input kept alive for the pass)
    last_input: dict[int, torch.Tensor] = {}
    node_values: dict[str, torch.Tensor] = {}

    def keep_input(module: nn.Module, args: tuple) -> None:
        last_input[id(module)] = args[0]

    def sink(module: nn.Module, out: torch.Tensor) -> None:
        x = last_input.pop(id(module))
        source = sources.setdefault(id(x), (len(sources), x))[0]
        calls.append(NeuronCall(index[id(module)], source, (out != 0).cpu() if spikes else None,
                                _potential(module).cpu() if potentials else None))

    stored = {id(m): m.store_v_seq for _, m in names if hasattr(m, "store_v_seq")}
    handles = [m.register_forward_pre_hook(keep_input) for _, m in names]
    edges: contextlib.AbstractContextManager = contextlib.nullcontext()
    if nodes:
        node_handles, edges = _cell_node_hooks(network, node_values)
        handles += node_handles
    start = time.perf_counter()
    try:
        if potentials:
            for _, m in names:
                if id(m) in stored:
                    m.store_v_seq = True
        with edges:
            hooked_forward(network, batch, [m for _, m in names], sink, bn_mode=bn_mode)
    finally:
        for h in handles:
            h.remove()
        for _, m in names:
            if id(m) in stored:
                m.store_v_seq = stored[id(m)]
    return Recording(
        modules=tuple(n for n, _ in names),
        kinds=tuple(kinds_by_id.get(id(m), "macro") for _, m in names),
        calls=calls,
        nodes={k: v.cpu() for k, v in node_values.items()},
        nodes_recorded=nodes,
        seconds=time.perf_counter() - start,
    )
