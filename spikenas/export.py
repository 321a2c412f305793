"""Export a trained SpikeNAS network to NIR (Neuromorphic Intermediate Representation, PyPI ``nir``).

``python -m spikenas.export --from-results train_out/results.json --format nir --output net.nir`` reads the
train command's results and the ``checkpoint.pt`` beside them (or ``--checkpoint PATH`` directly), rebuilds
the network, loads the trained weights and writes one NIR graph (HDF5, read back with ``nir.read``).
The checkpoint is loaded with ``weights_only=True`` (nothing in it runs), must be the network, training and
epoch the results.json describes, and must have finished its epochs (``--allow-unfinished`` overrides only
that). Every argument is checked before anything is written; the graph and its report are written atomically.

The graph, node by node (shapes exclude the batch; ``c{i}`` is cell ``i``, ``e{s}{d}`` its edge ``(s, d)``)::

    input (C_in, H, W) -> stem: Conv2d with its BatchNorm folded in (exact in eval mode)
    cell node values: NIR sums every edge entering a node, so a node's value is the sum of the outputs of
        the nodes feeding it; a skip edge forwards its source's terms; zero edges, and edges on no
        input-to-output path (whose work cannot reach the output), are not written
    conv edge:  c{i}_e{s}{d}_lif (LIF) -> c{i}_e{s}{d}_conv (Conv2d, its BatchNorm folded in)
    pool edge:  c{i}_e{s}{d}_pool (AvgPool2d 3x3, stride 1, padding 1, dividing by 9 as torch's default)
    downconv:   down{i}_bn -> down{i}_lif -> down{i}_conv -> down{i}_pool; the BatchNorm that follows a cell's
                sum has no convolution before it and is written as a 1x1 Conv2d with a diagonal weight
    head:       head_bn -> head_lif -> head_pool -> head_flatten -> head_fc1 (Linear) -> head_lif2 ->
                head_fc2 (Affine; the voting AvgPool1d folded in) -> output (classes)

LIF parameterisation: spikingjelly's multi-step LIF (decay_input, hard reset) computes per timestep
``v <- v + (x - (v - v_reset)) / tau``, fires when ``v >= v_threshold`` and sets ``v = v_reset``. NIR's
``tau dv/dt = (v_leak - v) + r I`` integrated by forward Euler with step ``dt`` is the same map with
``nir.LIF(tau = tau * dt, r = 1, v_leak = v_reset, v_threshold, v_reset)``. ``dt`` (seconds per timestep,
default 1e-4 as snnTorch's importer assumes) is in the graph's metadata with T, the input encoding (the image
is presented at every timestep) and the readout (the output averaged over T). NIR fires at ``v > v_threshold``;
equality has probability zero for real-valued inputs.

Dropout is the identity at inference and is not written.
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
from spikenas.network import Cell, MacroConfig, SNASNetwork, build_network
from spikenas.ops import get_op
from spikenas.results import atomic_path, read_results_json, versions, write_json
from spikenas.safe_load import load_checkpoint_file
from spikenas.space import EDGES, Genotype

try:
    import nir
except ImportError:  # the optional ``nir`` extra; export_nir names it when it is missing
    nir = None

FORMATS = ("nir",)
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


def _cell(b: _Builder, cell: Cell, i: int, channels: int, size: int, x0: list[str]) -> list[str]:
    """Write cell ``i`` (1-based) on input terms ``x0``; returns the terms of its output node.

    A node's terms are the NIR nodes whose outputs sum to its value. When one term reaches a node along m > 1
    paths (skips), it enters once through a ``nir.Scale`` by m, since NIR has one edge per node pair.
    """
    terms: list[list[str]] = [x0]
    shape = np.array([channels, size, size])
    live = cell.genotype.live_edges()
    for dst in range(1, 4):
        total: dict[str, int] = {}
        for src in range(dst):
            edge = EDGES.index((src, dst))
            op = get_op(cell.genotype.ops[edge])
            key = f"{src}{dst}"
            if not live[edge]:  # zero, or off every input-to-output path: it cannot change the output
                continue
            module = cell.edges[key]
            name = f"c{i}_e{key}"
            if isinstance(module, nn.Identity):
                out = terms[src]
            elif isinstance(module, nn.AvgPool2d):
                pad = module.padding if isinstance(module.padding, int) else module.padding[0]
                kernel = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
                stride = module.stride if isinstance(module.stride, int) else module.stride[0]
                if not module.count_include_pad:
                    raise SpikeNASError(f"{name}: an AvgPool2d that excludes padding has no exact NIR node")
                out = b.avgpool(f"{name}_pool", kernel, stride, pad, terms[src])
            elif isinstance(module, nn.Sequential) and len(module) == 3 and isinstance(module[1], nn.Conv2d):
                lif, conv, bn = module
                spikes = b.lif(f"{name}_lif", lif, (channels, size, size), terms[src])
                weight, bias = fold_conv_bn(conv, bn)
                out = b.conv(f"{name}_conv", weight, bias, size, stride=1, padding=conv.padding[0], groups=1,
                             inputs=spikes)
            else:
                raise SpikeNASError(f"op {op.name!r} on edge {key} of cell {i} has no NIR export")
            for term in out:
                total[term] = total.get(term, 0) + 1
        node_terms = []
        for term, count in total.items():
            if count == 1:
                node_terms.append(term)
            else:
                scale = np.full(shape, float(count), dtype=np.float32)
                node_terms += b.add(f"c{i}_n{dst}_{term}_x{count}", nir.Scale(scale=scale), [term])
        terms.append(node_terms)
    if not terms[3]:
        raise SpikeNASError(f"cell {i} ({cell.genotype}) does not connect its input to its output: nothing to export")
    return terms[3]


def export_nir(model: SNASNetwork, *, dt: float = DEFAULT_DT, metadata: dict | None = None) -> nir.NIRGraph:
    """The NIR graph of ``model`` (a :class:`~spikenas.network.SNASNetwork`, BatchNorm running statistics as
    trained); see the module docstring for the mapping. ``metadata`` (strings and numbers) is added to the
    graph's."""
    _require_nir()
    if not (isinstance(dt, float) and math.isfinite(dt) and dt > 0):
        raise SpikeNASError(f"dt must be a finite positive float (seconds per timestep), got {dt!r}")
    cfg = model.config
    b = _Builder(dt)
    x = b.add("input", nir.Input(input_type={"input": np.array([cfg.in_channels, cfg.input_size, cfg.input_size])}),
              [])
    weight, bias = fold_conv_bn(model.stem[0], model.stem[1])
    x = b.conv("stem", weight, bias, cfg.input_size, stride=cfg.stem_stride, padding=1, groups=1, inputs=x)
    cell_index = 0
    for stage in model.cells:
        if isinstance(stage, Cell):
            cell_index += 1
            c, size = cfg.cell_widths[cell_index - 1], cfg.cell_sizes[cell_index - 1]
            x = _cell(b, stage, cell_index, c, size, x)
        else:  # downconv before cell cell_index + 1
            c, size = cfg.cell_widths[cell_index - 1], cfg.cell_sizes[cell_index - 1]
            d = f"down{cell_index + 1}"
            x = b.bn(f"{d}_bn", stage[0], size, x)
            x = b.lif(f"{d}_lif", stage[1], (c, size, size), x)
            weight, bias = fold_conv_bn(stage[2], stage[3])
            x = b.conv(f"{d}_conv", weight, bias, size, stride=1, padding=1, groups=1, inputs=x)
            x = b.avgpool(f"{d}_pool", 2, 2, 0, x)
    last, size, final = cfg.cell_widths[-1], cfg.cell_sizes[-1], cfg.final_size
    head = model.head
    x = b.bn("head_bn", head[0], size, x)
    x = b.lif("head_lif", head[1], (last, size, size), x)
    x = b.avgpool("head_pool", 2, 2, 0, x)
    x = b.add("head_flatten", nir.Flatten(input_type={"input": np.array([last, final, final])}, start_dim=0), x)
    x = b.add("head_fc1", nir.Linear(weight=_f32(head[5].weight)), x)
    x = b.lif("head_lif2", head[6], (cfg.hidden,), x)
    vote = np.kron(np.eye(cfg.num_classes, dtype=np.float32), np.full((1, cfg.vote), 1.0 / cfg.vote, np.float32))
    fc2 = head[7]
    x = b.add("head_fc2", nir.Affine(weight=vote @ _f32(fc2.weight), bias=vote @ _f32(fc2.bias)), x)
    b.add("output", nir.Output(output_type={"output": np.array([cfg.num_classes])}), x)
    info = {
        "source": "spikenas", "dt": dt, "timesteps": cfg.timesteps,
        "encoding": "direct: the image is the input at every timestep",
        "readout": "mean over the T timesteps of the output node",
        "cells": json.dumps([str(g) for g in model.genotypes]), "macro": json.dumps(cfg.to_dict()),
    }
    try:
        return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata={**info, **(metadata or {})})
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
    p.add_argument("--format", choices=FORMATS, default="nir", help="exchange format (default nir)")
    p.add_argument("--output", type=output_file, required=True, help="file to write (e.g. network.nir)")
    p.add_argument("--dt", type=positive_float, default=DEFAULT_DT, help=f"seconds per timestep (default {DEFAULT_DT})")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="export a checkpoint whose training stopped before the epochs it was asked for")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        t0 = time.perf_counter()
        dt = args.dt  # finite and > 0: checked while parsing (positive_float)
        _require_nir()
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
        graph = export_nir(model, dt=dt, metadata={"network_digest": digest, **epochs})
        with atomic_path(output) as tmp:
            nir.write(tmp, graph)
        write_json(report, {
            "config": {"checkpoint": str(checkpoint), "from_results": None if results_path is None else
                       str(results_path), "format": args.format, "dt": dt, "output": str(output),
                       "allow_unfinished": args.allow_unfinished},
            "seed": fingerprint.get("train", {}).get("seed"),
            "network": {"cells": fingerprint["cells"], "macro": fingerprint["macro"], "digest": digest},
            "fingerprint": {"network_digest": digest, "data": fingerprint.get("data"), **epochs},
            "nodes": len(graph.nodes), "edges": len(graph.edges),
            "versions": {**versions(), "nir": getattr(nir, "version", "unknown")},
            "timings": {"export_s": time.perf_counter() - t0},
        })
        print(f"wrote {output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges) and {report}")
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
