"""Export a trained SpikeNAS network to NIR (Neuromorphic Intermediate Representation, PyPI ``nir``).

``python -m spikenas.export --from-results train_out/results.json --format nir --output net.nir [--for READER]``
reads the train command's results and the ``checkpoint.pt`` beside them (or ``--checkpoint PATH`` directly),
rebuilds the network, loads the trained weights and writes one NIR graph (HDF5, read back with ``nir.read``).
The checkpoint is loaded with ``weights_only=True`` (nothing in it runs), must be the network, training and
epoch the results.json describes, and must have finished its epochs (``--allow-unfinished`` overrides only
that). Every argument is checked before anything is written; the graph and its report are written atomically.

The graph is written from the network's layer graph (:func:`spikenas.layer_graph.cell_network_graph`): the
layers on a path from the input to the output, in data-flow order (their ``inputs``), each with the trained
weights of the module of the same name. A layer's value is a list of terms, NIR nodes whose outputs NIR sums;
node names (:func:`nir_name`) are ``<block>_<role>``, the block ``stem``, ``c{i}_e{s}{d}`` (edge ``(s, d)`` of
cell ``i``), ``c{i}_n{j}`` (node ``j`` of cell ``i``), ``down{i}`` (the downconv before cell ``i``) or ``head``,
and a role repeated in a block numbered from its second layer (Linear layers from the first: fc1, fc2)::

    input (C_in, H, W) -> stem: the stem's Conv2d with its BatchNorm folded in (exact in eval mode)
    conv with the BN that alone reads it: one Conv2d, the BN folded in (<block>_conv)
    BN after anything else: a 1x1 Conv2d with a diagonal weight (<block>_bn)
    LIF (<block>_lif); AvgPool2d (<block>_pool, dividing by the kernel area as torch's default); flatten
    Linear: nir.Linear (nir.Affine with a bias); the network's output layer has the voting AvgPool1d folded in
    identity (a skip edge) and dropout (the identity at inference): not written, their input's terms pass on
    sum (a cell node): the terms of its inputs; one term reaching it along m > 1 paths enters once through
        nir.Scale(m) named c{i}_n{j}_<term>_x{m}; zero edges and layers on no input-to-output path (whose
        work cannot reach the output) are not written

For the cell network: conv edge c{i}_e{s}{d}_lif -> c{i}_e{s}{d}_conv; pool edge c{i}_e{s}{d}_pool; downconv
down{i}_bn -> down{i}_lif -> down{i}_conv -> down{i}_pool; head head_bn -> head_lif -> head_pool ->
head_flatten -> head_fc1 -> head_lif2 -> head_fc2 (Affine) -> output (classes).

LIF parameterisation: spikingjelly's multi-step LIF (decay_input, hard reset) computes per timestep
``v <- v + (x - (v - v_reset)) / tau``, fires when ``v >= v_threshold`` and sets ``v = v_reset``. NIR's
``tau dv/dt = (v_leak - v) + r I`` integrated by forward Euler with step ``dt`` is the same map with
``nir.LIF(tau = tau * dt, r = 1, v_leak = v_reset, v_threshold, v_reset)``. ``dt`` (seconds per timestep,
default 1e-4 as snnTorch's importer assumes) is in the graph's metadata with T, the input encoding (the image
is presented at every timestep) and the readout (the output averaged over T). NIR fires at ``v > v_threshold``;
equality has probability zero for real-valued inputs.

Readers: the graph above (``--for nir``, ``reader=None``) is NIR's semantics. ``--for snntorch`` and
``--for norse`` (``export_nir(..., reader=...)``) write what that reader's importer runs exactly, on a batch:
Flatten with ``start_dim=-3`` (the batch kept), every nir.Scale as a scaled copy of the convolution computing
its term, the reader's dt (snnTorch 1e-4, Norse 1e-3; another is refused) and for Norse each 2x2 pooling as a
SumPool2d with its 1/4 folded into the convolution before it or the Linear after it, the edges in an order its
depth-first loader runs after their inputs; the metadata names the reader and how to run the file. What the
reader cannot run is refused with one line naming the node (pool edges for Norse, sums its loader would run
before their inputs, a v_reset other than 0); nothing is written. Every reader's export, NIR's too, refuses a
network in which an edge reads an always-zero cell node (a node whose every input edge is ``none``): its
BatchNorm adds a constant that no node of the graph carries.
See :mod:`spikenas.nir_readers`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from spikenas.argparsing import Parser, main_guard, output_file, positive_float
from spikenas.errors import SpikeNASError
from spikenas.fingerprint import (
    check_cell,
    check_finished,
    check_macro,
    field,
    first_differing_field,
    network_digest,
)
from spikenas.hardware import get_target, target_names
from spikenas.hardware.speck_export import save_sinabs, sinabs_versions
from spikenas.hardware.target import fit_summary
from spikenas.layer_graph import LayerGraph
from spikenas.layers import Layer
from spikenas.network import MacroConfig, SNASNetwork, build_network
from spikenas.nir_readers import READERS, adapt, get_reader, reader_dt
from spikenas.results import atomic_path, read_results_json, versions, write_json
from spikenas.safe_load import load_checkpoint_file
from spikenas.space import EDGES, Genotype

try:
    import nir
except ImportError:  # the optional ``nir`` extra; export_nir names it when it is missing
    nir = None

FORMATS = ("nir", "sinabs")  # sinabs: the speck target's (spikenas.hardware.speck_export)
DEFAULT_DT = 1e-4  # seconds per timestep written into the LIF time constants
CHECKPOINT_NAME = "checkpoint.pt"


def _require_nir() -> None:
    if nir is None:
        raise SpikeNASError("NIR export needs the nir package: pip install 'spikenas[nir]' (or pip install nir)")


def _f32(x: torch.Tensor | np.ndarray | float) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float32).numpy().copy()
    return np.asarray(x, dtype=np.float32)


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``[C]`` scale and shift of an eval-mode BatchNorm: ``y = scale * x + shift``."""
    if bn.running_mean is None or bn.running_var is None:
        raise SpikeNASError("BatchNorm without running statistics cannot be folded; train with track_running_stats")
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean * scale


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``[C_out, C_in, k, k]`` and bias ``[C_out]`` (float32) of ``bn(conv(x))`` as one convolution."""
    scale, shift = bn_scale_shift(bn)
    weight = conv.weight.detach() * scale[:, None, None, None]
    bias = shift if conv.bias is None else shift + scale * conv.bias.detach()
    return _f32(weight), _f32(bias)


class _Builder:
    """Accumulates NIR nodes and edges."""

    def __init__(self, dt: float) -> None:
        self.nodes: dict[str, object] = {}
        self.edges: list[tuple[str, str]] = []
        self.dt = dt

    def add(self, name: str, node: object, inputs: list[str]) -> list[str]:
        if name in self.nodes:
            raise SpikeNASError(f"duplicate NIR node name {name!r}")
        self.nodes[name] = node
        self.edges += [(src, name) for src in inputs]
        return [name]

    def conv(self, name: str, weight: np.ndarray, bias: np.ndarray, size: int, *, stride: int, padding: int,
             groups: int, inputs: list[str]) -> list[str]:
        node = nir.Conv2d(input_shape=(size, size), weight=weight, stride=(stride, stride),
                          padding=(padding, padding), dilation=(1, 1), groups=groups, bias=bias)
        return self.add(name, node, inputs)

    def bn(self, name: str, bn: nn.BatchNorm2d, size: int, inputs: list[str]) -> list[str]:
        """A BatchNorm with no convolution before it, as a 1x1 convolution with a diagonal weight (exact; a
        grouped convolution would be smaller, but NIR 1.0's type inference does not handle groups)."""
        scale, shift = bn_scale_shift(bn)
        weight = np.diag(_f32(scale))[:, :, None, None]
        return self.conv(name, weight, _f32(shift), size, stride=1, padding=0, groups=1, inputs=inputs)

    def lif(self, name: str, lif: neuron.LIFNode, shape: tuple[int, ...], inputs: list[str]) -> list[str]:
        if not isinstance(lif, neuron.LIFNode) or not lif.decay_input or lif.v_reset is None:
            raise SpikeNASError(f"{name}: only spikingjelly LIFNode with decay_input and a hard reset is exported")
        full = np.ones(shape, dtype=np.float32)
        node = nir.LIF(tau=full * float(lif.tau) * self.dt, r=full.copy(), v_leak=full * float(lif.v_reset),
                       v_threshold=full * float(lif.v_threshold), v_reset=full * float(lif.v_reset))
        return self.add(name, node, inputs)

    def avgpool(self, name: str, kernel: int, stride: int, padding: int, inputs: list[str]) -> list[str]:
        node = nir.AvgPool2d(kernel_size=np.array([kernel, kernel]), stride=np.array([stride, stride]),
                             padding=np.array([padding, padding]))
        return self.add(name, node, inputs)


def nir_name(layer: Layer, counts: dict[tuple[str, str], int]) -> str:
    """The NIR node name of a cell network's ``layer`` (see the module docstring); ``counts`` numbers the
    layers of one role in one block (updated)."""
    parts = layer.name.split(".")
    if parts[0] == "stem":
        block = "stem"
    elif parts[0] == "head":
        block = "head"
    elif parts[0] == "cells":
        stage = int(parts[1])
        if stage % 2:  # a downconv, before cell stage // 2 + 2 (1-based)
            block = f"down{stage // 2 + 2}"
        elif len(parts) == 2:  # the cell's output, node 3
            block = f"c{stage // 2 + 1}_n3"
        else:
            block = f"c{stage // 2 + 1}_{'e' if parts[2] == 'edges' else 'n'}{parts[3]}"
    else:
        raise SpikeNASError(f"layer {layer.name!r} is not a layer of a cell network")
    if layer.kind == "sum":
        return block
    role = _ROLES.get(layer.kind)
    if role is None:
        raise SpikeNASError(f"layer {layer.name!r} of kind {layer.kind!r} has no NIR export")
    if block == "stem" and role == "conv":
        return "stem"  # the stem is one node: its convolution with the BatchNorm folded in
    n = counts[block, role] = counts.get((block, role), 0) + 1
    return f"{block}_{role}{n}" if role == "fc" else f"{block}_{role}" if n == 1 else f"{block}_{role}{n}"


_ROLES = {"conv": "conv", "bn": "bn", "lif": "lif", "avgpool": "pool", "flatten": "flatten", "linear": "fc"}


def _node_order(graph: LayerGraph) -> list[Layer]:
    """The graph's layers in the order their NIR nodes are written: a cell node by node as the cell computes
    them (the edges into node ``j`` by source, then node ``j``'s sum), everything else in graph order."""
    first: dict[str, int] = {}  # cell prefix -> graph position of its first layer

    def key(item: tuple[int, Layer]) -> tuple[int, ...]:
        i, spec = item
        parts = spec.name.split(".")
        if parts[0] != "cells" or (len(parts) == 2 and spec.kind != "sum") or (len(parts) > 2 and parts[2] not in (
                "edges", "nodes")):
            return (i,)
        start = first.setdefault(".".join(parts[:2]), i)
        if len(parts) == 2:
            return (start, 3, len(EDGES))  # the cell's output, node 3
        if parts[2] == "nodes":
            return (start, int(parts[3]), len(EDGES))
        return (start, int(parts[3][1]), int(parts[3][0]), i)

    return [spec for _, spec in sorted(enumerate(graph), key=key)]


def _not_connected(graph: LayerGraph, model: SNASNetwork) -> SpikeNASError:
    reached = graph.reached()
    for spec in graph:
        parts = spec.name.split(".")
        if spec.kind == "sum" and len(parts) == 2 and spec.name not in reached:
            cell = int(parts[1]) // 2
            return SpikeNASError(f"cell {cell + 1} ({model.genotypes[cell]}) does not connect its input to its "
                                 "output: nothing to export")
    return SpikeNASError(f"nothing flows from the input to the output {graph.output!r}: nothing to export")


def _constant_branch(graph: LayerGraph, modules: dict[str, nn.Module]) -> Layer | None:
    """The first layer (in graph order) that adds a constant to the output from a branch the input does not
    reach: a BatchNorm, or a convolution or Linear with a bias, reading an always-zero cell node (a node whose
    every input edge is ``none``). Its shift reaches the output although no NIR node is written for it."""
    constant = graph.reaching(graph.output) - graph.reached()
    for spec in graph:
        if spec.name in constant and (spec.kind == "bn" or (spec.kind in ("conv", "linear")
                                                            and getattr(modules[spec.name], "bias", None) is not None)):
            return spec
    return None


def export_nir(model: SNASNetwork, *, dt: float | None = None, metadata: dict | None = None,
               reader: str | None = None) -> nir.NIRGraph:
    """The NIR graph of ``model`` (a :class:`~spikenas.network.SNASNetwork`, BatchNorm running statistics as
    trained): its layer graph's live layers, each written with the trained weights of the module of the same
    name; see the module docstring for the mapping. ``metadata`` (strings and numbers) is added to the graph's.

    :param dt: seconds per timestep; None: the reader's (:data:`DEFAULT_DT` for NIR).
    :param reader: None or ``"nir"`` (NIR's semantics), or the reader the graph is for (``"snntorch"``,
        ``"norse"``): rewritten as :func:`spikenas.nir_readers.adapt` describes, its name and how to run it in the
        metadata.
    :raises SpikeNASError: a bad dt, a dt the reader does not use, or (one line naming it) a node the reader
        cannot run exactly.
    """
    _require_nir()
    if model.config.family != "snasnet":
        raise SpikeNASError(f"the NIR export writes SNASNet-family networks (LIF neurons); this is a "
                            f"{model.config.family}-family network: export it for its chip with --target "
                            f"{model.config.family}")
    rules = get_reader(reader)
    if dt is not None and not (isinstance(dt, float) and math.isfinite(dt) and dt > 0):
        raise SpikeNASError(f"dt must be a finite positive float (seconds per timestep), got {dt!r}")
    dt = reader_dt(rules, dt, DEFAULT_DT)
    cfg = model.config
    graph = model.graph
    live = graph.live()
    if graph.output not in live:
        raise _not_connected(graph, model)
    by_name = {spec.name: spec for spec in graph}
    readers: dict[str, list[Layer]] = {name: [] for name in live}
    for spec in graph:
        if spec.name in live:
            for name in spec.inputs:
                if name in live:
                    readers[name].append(spec)
    modules = dict(model.named_modules())
    constant = _constant_branch(graph, modules)
    if constant is not None:  # no node would carry the constant: a file without it computes something else
        conv = by_name.get(constant.inputs[0]) if constant.kind == "bn" and constant.inputs else None
        name = nir_name(conv if conv is not None and conv.kind == "conv" else constant, {})
        parts = constant.name.split(".")
        edge = len(parts) > 3 and parts[0] == "cells" and parts[2] == "edges"
        what = (f"an edge of cell {int(parts[1]) // 2 + 1} reading its node {parts[3][0]}, which is always zero" if edge
                else "a layer the input does not reach")
        raise SpikeNASError(f"{rules.name} cannot run node {name} ({what}): its BatchNorm shift adds a constant to the "
                            "output that this export does not write; use cells in which no edge reads a node whose "
                            "every input edge is none")
    b = _Builder(dt)
    stem_in = by_name["stem.0"].in_shape
    b.add("input", nir.Input(input_type={"input": np.array(stem_in)}), [])
    counts: dict[tuple[str, str], int] = {}
    terms: dict[str, list[str]] = {}  # per layer: the NIR nodes whose outputs sum to its value

    def visit(spec: Layer) -> list[str]:
        if spec.name in terms:
            return terms[spec.name]
        ins = [visit(by_name[i]) for i in spec.inputs if i in live]
        x = ins[0] if spec.inputs else ["input"]
        if spec.kind in ("identity", "dropout"):
            out = x
        elif spec.kind == "sum":
            total: dict[str, int] = {}
            for term in (t for terms_in in ins for t in terms_in):
                total[term] = total.get(term, 0) + 1
            name, out = nir_name(spec, counts), []
            for term, count in total.items():  # one term along m > 1 paths enters once, scaled by m
                scale = np.full(spec.out_shape, float(count), dtype=np.float32)
                out += [term] if count == 1 else b.add(f"{name}_{term}_x{count}", nir.Scale(scale=scale), [term])
        elif spec.kind == "conv":
            after = readers[spec.name]
            conv = modules[spec.name]
            folded = len(after) == 1 and after[0].kind == "bn" and after[0].inputs == (spec.name,)
            if folded:
                weight, bias = fold_conv_bn(conv, modules[after[0].name])
            else:
                weight = _f32(conv.weight)
                bias = np.zeros(spec.out_features, np.float32) if conv.bias is None else _f32(conv.bias)
            out = b.conv(nir_name(spec, counts), weight, bias, spec.in_shape[1], stride=spec.stride,
                         padding=spec.padding, groups=1, inputs=x)
            if folded:
                terms[after[0].name] = out
        elif spec.kind == "bn":
            out = b.bn(nir_name(spec, counts), modules[spec.name], spec.out_shape[1], x)
        elif spec.kind == "lif":
            out = b.lif(nir_name(spec, counts), modules[spec.name], spec.out_shape, x)
        elif spec.kind == "avgpool":
            out = b.avgpool(nir_name(spec, counts), spec.kernel, spec.stride, spec.padding, x)
        elif spec.kind == "flatten":
            shape = by_name[spec.inputs[0]].out_shape
            out = b.add(nir_name(spec, counts), nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0), x)
        elif spec.kind == "linear":
            fc = modules[spec.name]
            weight = _f32(fc.weight)
            bias = None if fc.bias is None else _f32(fc.bias)
            if spec.name == graph.output:  # the voting AvgPool1d folded in
                vote = np.kron(np.eye(cfg.num_classes, dtype=np.float32),
                               np.full((1, cfg.vote), 1.0 / cfg.vote, np.float32))
                weight, bias = vote @ weight, None if bias is None else vote @ bias
            node = nir.Linear(weight=weight) if bias is None else nir.Affine(weight=weight, bias=bias)
            out = b.add(nir_name(spec, counts), node, x)
        else:
            raise SpikeNASError(f"layer {spec.name!r} of kind {spec.kind!r} has no NIR export")
        terms[spec.name] = out
        return out

    for spec in _node_order(graph):
        if spec.name in live:
            visit(spec)
    b.add("output", nir.Output(output_type={"output": np.array([cfg.num_classes])}), terms[graph.output])
    nodes, edges = adapt(b.nodes, b.edges, rules)
    info = {
        "source": "spikenas", "dt": dt, "timesteps": cfg.timesteps,
        "encoding": "direct: the image is the input at every timestep",
        "readout": "mean over the T timesteps of the output node",
        "cells": json.dumps([str(g) for g in model.genotypes]), "macro": json.dumps(cfg.to_dict()),
    }
    if rules.name != "nir":
        info.update(reader=rules.name, run=rules.run)
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata={**info, **(metadata or {})})
    except (ValueError, AssertionError) as err:
        raise SpikeNASError(f"the NIR graph of {[str(g) for g in model.genotypes]} is invalid: {err}") from err


def read_checkpoint(path: str | Path, *, allow_unfinished: bool = False) -> dict:
    """A train command's checkpoint, loaded without running code from it and checked for what export needs.

    :returns: the checkpoint dict (``fingerprint`` with cells, macro, train config and data; ``epoch`` finished;
        ``model`` state dict).
    :raises SpikeNASError: a missing, unreadable or foreign file, a missing field, a malformed cell, or (unless
        ``allow_unfinished``) fewer epochs finished than asked; one line naming the file and the field.
    """
    path = Path(path)
    state = load_checkpoint_file(path, hint="expected the checkpoint.pt written by python -m spikenas.train")
    for name, kind in (("fingerprint.cells", list), ("fingerprint.macro", dict), ("fingerprint.train.epochs", int),
                       ("epoch", int), ("model", dict)):
        field(state, name, path, kind)
    for i, cell in enumerate(state["fingerprint"]["cells"]):
        check_cell({"nb201": cell}, path, f"fingerprint.cells.{i}")
    check_macro(state["fingerprint"]["macro"], path, "fingerprint.macro")
    check_finished(path, state["epoch"], state["fingerprint"]["train"]["epochs"], allow=allow_unfinished)
    return state


def model_of_checkpoint(state: dict, path: str | Path) -> SNASNetwork:
    """The network a :func:`read_checkpoint` dict describes, its weights loaded, in eval mode."""
    fingerprint = state["fingerprint"]
    try:
        cells = [Genotype.from_nb201(c) for c in fingerprint["cells"]]
        macro = MacroConfig.from_dict(fingerprint["macro"])
    except (TypeError, ValueError) as err:
        raise SpikeNASError(f"{path}: fingerprint.macro is not a network configuration: {err}") from err
    model = build_network(cells, macro, seed=0)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpikeNASError(f"checkpoint {path} does not match its network: {first}") from err
    return model.eval()


def load_trained(checkpoint: str | Path, *, allow_unfinished: bool = False) -> tuple[SNASNetwork, dict]:
    """The network of a train command's ``checkpoint.pt``, weights loaded, in eval mode; and the checkpoint's
    fingerprint (cells, macro, train config, data). See :func:`read_checkpoint` for what is refused."""
    state = read_checkpoint(checkpoint, allow_unfinished=allow_unfinished)
    return model_of_checkpoint(state, checkpoint), state["fingerprint"]


def read_train_results(results: str | Path) -> dict:
    """A train command's results.json, with every field export checks present and consistent with itself.

    Required: ``config.cells`` (NAS-Bench-201 strings), ``config.macro``, ``config.train`` and ``fingerprint``
    (``network`` with digest and cells, ``data``, ``epochs_finished``, ``epochs_asked``). Each fingerprint cell
    string must agree with its index and op set, and the digest with ``config.cells`` and ``config.macro``.
    :raises SpikeNASError: one line naming the file, the field and both values.
    """
    path = Path(results)
    payload = read_results_json(path, what="training results",
                                checkpoint_hint="a results.json (pass it as --checkpoint)")
    if isinstance(payload, dict) and "result" in payload and "train" not in (payload.get("config") or {}):
        raise SpikeNASError(f"{path} is a search's results.json: train its network first (python -m spikenas.train "
                            f"--from-results {path}) and export the train command's results.json")
    cells = field(payload, "config.cells", path, list)
    macro = field(payload, "config.macro", path, dict)
    check_macro(macro, path, "config.macro")
    field(payload, "config.train.epochs", path, int)
    field(payload, "fingerprint", path, dict)
    records = field(payload, "fingerprint.network.cells", path, list)
    digest = field(payload, "fingerprint.network.digest", path, str)
    for name in ("epochs_finished", "epochs_asked"):
        field(payload, f"fingerprint.{name}", path, int)
    field(payload, "fingerprint.data", path, str)
    recorded = [check_cell(r, path, f"fingerprint.network.cells.{i}").to_nb201() for i, r in enumerate(records)]
    if not all(isinstance(c, str) for c in cells) or recorded != cells:
        raise SpikeNASError(f"{path}: config.cells is {json.dumps(cells)} but fingerprint.network.cells are "
                            f"{json.dumps(recorded)}")
    if network_digest(cells, macro) != digest:
        raise SpikeNASError(f"{path}: fingerprint.network.digest is {digest} but config.cells and config.macro give "
                            f"{network_digest(cells, macro)} (the file was edited)")
    return payload


def check_results_match_checkpoint(results: dict, results_path: Path, state: dict, checkpoint: Path) -> None:
    """Refuse a checkpoint that is not the network, training and epoch a train results.json describes."""
    theirs = {k: state["fingerprint"].get(k) for k in ("cells", "macro", "train", "data")}
    ours = {"cells": results["config"]["cells"], "macro": results["config"]["macro"],
            "train": results["config"]["train"], "data": results["fingerprint"]["data"]}
    difference = first_differing_field(theirs, ours)
    if difference is not None:
        name, a, b = difference
        raise SpikeNASError(f"{checkpoint} is not the run {results_path} describes: its {name} is {a}, "
                            f"results.json's is {b}")
    finished = results["fingerprint"]["epochs_finished"]
    if state["epoch"] != finished:
        raise SpikeNASError(f"{checkpoint} is not the run {results_path} describes: its epoch is {state['epoch']}, "
                            f"results.json's fingerprint.epochs_finished is {finished}")


def checkpoint_of_results(results: str | Path) -> Path:
    """The checkpoint beside a train command's results.json (the file is checked by :func:`read_train_results`)."""
    path = Path(results)
    read_train_results(path)
    return path.with_name(CHECKPOINT_NAME)


def build_parser() -> Parser:
    p = Parser(prog="python -m spikenas.export", description="Export a trained SpikeNAS network (NIR).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint.pt written by python -m spikenas.train")
    src.add_argument("--from-results", metavar="JSON", help="results.json of python -m spikenas.train (its "
                     "checkpoint.pt is read from the same folder and must be the run it describes)")
    p.add_argument("--format", choices=FORMATS, help="exchange format (default: the target's; nir, or sinabs for "
                   "--target speck)")
    p.add_argument("--target", choices=target_names(), default="generic",
                   help="hardware target the network must fit (checked before anything is written; default "
                   "generic); speck writes a sinabs network for SynSense's toolchain")
    p.add_argument("--output", type=output_file, required=True, help="file to write (e.g. network.nir)")
    p.add_argument("--for", dest="reader", choices=tuple(READERS), default="nir",
                   help="the reader the file is for (default nir: NIR's semantics); snntorch and norse get a file "
                   "their importer runs exactly, or a one-line refusal naming the node it cannot run")
    p.add_argument("--dt", type=positive_float, default=None,
                   help=f"seconds per timestep (default: the reader's; {DEFAULT_DT} for nir and snntorch, "
                   f"{READERS['norse'].dt} for norse)")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="export a checkpoint whose training stopped before the epochs it was asked for")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        t0 = time.perf_counter()
        target = get_target(args.target)
        fmt = args.format or target.exporter
        if fmt != target.exporter:
            raise SpikeNASError(f"target {target.name} is exported as --format {target.exporter}, got --format {fmt}")
        if fmt == "nir":
            _require_nir()
            dt = reader_dt(get_reader(args.reader), args.dt, DEFAULT_DT)  # finite and > 0: checked while parsing
        elif args.reader != "nir" or args.dt is not None:
            raise SpikeNASError(f"--for and --dt apply to NIR files; --format {fmt} takes neither")
        output = Path(args.output)
        report = output.with_name(output.name + ".json")
        if args.checkpoint:
            checkpoint, results_path = Path(args.checkpoint), None
        else:
            results_path = Path(args.from_results)
            checkpoint = results_path.with_name(CHECKPOINT_NAME)
        inputs = {p.resolve() for p in (checkpoint, results_path) if p is not None}
        for written in (output, report):
            if written.resolve() in inputs:
                raise SpikeNASError(f"--output {output} would overwrite the input {written}: choose another file")
        results = None if results_path is None else read_train_results(results_path)
        state = read_checkpoint(checkpoint, allow_unfinished=args.allow_unfinished)
        if results is not None:
            check_results_match_checkpoint(results, results_path, state, checkpoint)
        fingerprint = state["fingerprint"]
        model = model_of_checkpoint(state, checkpoint)
        epochs = {"epochs_finished": state["epoch"], "epochs_asked": fingerprint["train"]["epochs"]}
        digest = network_digest(fingerprint["cells"], fingerprint["macro"])
        placed = target.fit(model.graph, timesteps=model.config.timesteps)
        if not placed.fits:
            raise SpikeNASError(f"the network does not fit target {target.name}: {placed.reason}")
        config = {"checkpoint": str(checkpoint), "from_results": None if results_path is None else str(results_path),
                  "format": fmt, "target": target.name, "output": str(output),
                  "allow_unfinished": args.allow_unfinished}
        common = {
            "seed": fingerprint.get("train", {}).get("seed"),
            "network": {"cells": fingerprint["cells"], "macro": fingerprint["macro"], "digest": digest},
            "fingerprint": {"network_digest": digest, "data": fingerprint.get("data"), **epochs},
            "target": placed.to_dict(),
        }
        if fmt == "sinabs":
            with atomic_path(output) as tmp:
                save_sinabs(model, tmp)
            write_json(report, {"config": config, **common, "versions": {**versions(), **sinabs_versions()},
                                "timings": {"export_s": time.perf_counter() - t0}})
            print(f"wrote {output} (a sinabs network of {len(placed.units)} Speck layers) and {report}")
            print(fit_summary(placed.to_dict()))
            return 0
        graph = export_nir(model, dt=dt, metadata={"network_digest": digest, **epochs}, reader=args.reader)
        with atomic_path(output) as tmp:
            nir.write(tmp, graph)
        write_json(report, {
            "config": {**config, "reader": args.reader, "dt": dt}, **common,
            "nodes": len(graph.nodes), "edges": len(graph.edges),
            "versions": {**versions(), "nir": getattr(nir, "version", "unknown")},
            "timings": {"export_s": time.perf_counter() - t0},
        })
        print(f"wrote {output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges) and {report}")
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
