"""NIR export (spikenas.export): the file read back with nir.read holds the network's graph and weights.

A small NIR interpreter (forward Euler at the graph's dt, nodes summing their inputs) runs the read-back
graph and must give the PyTorch model's per-timestep outputs; snnTorch's NIR importer does the same when it
is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional

from spikenas.errors import SpikeNASError
from spikenas.export import export_nir, fold_conv_bn, load_trained
from spikenas.fingerprint import network_fingerprint
from spikenas.network import MacroConfig, build_network
from spikenas.space import Genotype
from spikenas.train.trainer import TrainConfig

nir = pytest.importorskip("nir", reason="NIR export needs the optional nir package (pip install nir)")

ROOT = Path(__file__).resolve().parents[1]


def trained_like(genotypes, config: MacroConfig, seed: int = 0):
    """A built network in eval mode whose BatchNorm statistics and affine parameters are not the identity."""
    model = build_network(genotypes, config, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            m.weight.data.copy_(1.0 + 0.5 * torch.randn(c, generator=gen))
            m.bias.data.copy_(0.3 * torch.randn(c, generator=gen))
        elif isinstance(m, torch.nn.Linear):  # large enough that spikes reach the output
            m.weight.data.copy_(3.0 * torch.randn(m.weight.shape, generator=gen) / m.in_features**0.5)
            if m.bias is not None:
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen))
    return model.eval()


def snntorch_outputs(path: Path, images: torch.Tensor, timesteps: int) -> torch.Tensor:
    """float32 ``[T, classes]``: the NIR file at ``path`` imported by snnTorch and run on one sample for ``timesteps``
    calls (one per timestep; nirtorch hands the state back)."""
    from snntorch import import_nir as snn_import

    net = snn_import.import_from_nir(nir.read(path))
    outputs, state = [], None
    with torch.no_grad():
        for _ in range(timesteps):
            out, state = net(images) if state is None else net(images, state)
            outputs.append(out.reshape(-1))
    return torch.stack(outputs)


def torch_outputs(model, images: torch.Tensor) -> torch.Tensor:
    """``[T, B, classes]``: the voted output of every timestep (the model returns their mean)."""
    seen = {}
    handle = model.head[7].register_forward_hook(lambda m, i, o: seen.setdefault("fc2", o.detach()))
    with torch.no_grad():
        mean = model(images)
    handle.remove()
    out = seen["fc2"]  # [T, B, vote * classes]
    t, b, _ = out.shape
    voted = model.vote(out.reshape(t * b, 1, -1)).reshape(t, b, -1)
    torch.testing.assert_close(voted.mean(0), mean)
    functional.reset_net(model)
    return voted


def run_nir(graph, images: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Interpret ``graph`` for ``timesteps`` steps on ``images`` ``[B, C, H, W]``; ``[T, B, classes]``."""
    dt = float(graph.metadata["dt"])
    preds: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        preds[dst].append(src)
    order, done = [], set()
    while len(order) < len(graph.nodes):
        for name in graph.nodes:
            if name not in done and all(p in done for p in preds[name]):
                order.append(name)
                done.add(name)
    state: dict[str, torch.Tensor] = {}
    outputs = []
    for _ in range(timesteps):
        values: dict[str, torch.Tensor] = {}
        for name in order:
            node = graph.nodes[name]
            x = images if isinstance(node, nir.Input) else sum(values[p] for p in preds[name])
            if isinstance(node, nir.Input) or isinstance(node, nir.Output):
                y = x
            elif isinstance(node, nir.Conv2d):
                y = F.conv2d(x, torch.from_numpy(node.weight), torch.from_numpy(node.bias), tuple(node.stride),
                             tuple(node.padding), tuple(node.dilation), node.groups)
            elif isinstance(node, nir.AvgPool2d):
                y = F.avg_pool2d(x, tuple(node.kernel_size), tuple(node.stride), tuple(node.padding),
                                 count_include_pad=True)
            elif isinstance(node, nir.Flatten):
                y = x.flatten(1 + node.start_dim)
            elif isinstance(node, nir.Linear):
                y = x @ torch.from_numpy(node.weight).T
            elif isinstance(node, nir.Affine):
                y = x @ torch.from_numpy(node.weight).T + torch.from_numpy(node.bias)
            elif isinstance(node, nir.Scale):
                y = x * torch.from_numpy(node.scale)
            elif isinstance(node, nir.LIF):
                v = state.get(name, torch.from_numpy(node.v_reset).expand_as(x))
                tau, r = torch.from_numpy(node.tau), torch.from_numpy(node.r)
                v = v + dt / tau * (torch.from_numpy(node.v_leak) - v + r * x)
                y = (v >= torch.from_numpy(node.v_threshold)).to(x.dtype)
                state[name] = torch.where(y > 0, torch.from_numpy(node.v_reset).expand_as(v), v)
            else:
                raise AssertionError(f"no interpreter for {type(node).__name__}")
            values[name] = y
        outputs.append(values["output"])
    return torch.stack(outputs)


CASES = [
    # (genotypes as NAS-Bench-201 strings or 3O/5O indices, cells, op set)
    (["|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"], 1, "3O"),
    (["433", "451"], 2, "3O"),
    (["|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|nor_conv_3x3~2|"] * 3, 3, "5O"),
    (["|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|", "451"], 2,
     "3O"),
]


@pytest.mark.parametrize("texts,cells,op_set", CASES)
def test_round_trip_and_equal_outputs(tmp_path, texts, cells, op_set):
    config = MacroConfig(num_cells=cells, width=4, in_channels=2, input_size=8, hidden=12, timesteps=4, num_classes=3,
                         vote=2)
    genotypes = [Genotype.parse(t, op_set) for t in texts]
    model = trained_like(genotypes, config)
    path = tmp_path / "net.nir"
    nir.write(path, export_nir(model))
    graph = nir.read(path)
    assert int(graph.metadata["timesteps"]) == config.timesteps
    # every weight, from the PyTorch modules
    stem_w, stem_b = fold_conv_bn(model.stem[0], model.stem[1])
    np.testing.assert_array_equal(graph.nodes["stem"].weight, stem_w)
    np.testing.assert_array_equal(graph.nodes["stem"].bias, stem_b)
    np.testing.assert_array_equal(graph.nodes["head_fc1"].weight, model.head[5].weight.detach().numpy())
    cell_index = 0
    for stage in model.cells:
        if not hasattr(stage, "edges"):
            continue
        cell_index += 1
        for key, module in stage.edges.items():
            if isinstance(module, torch.nn.Sequential):
                w, b = fold_conv_bn(module[1], module[2])
                np.testing.assert_array_equal(graph.nodes[f"c{cell_index}_e{key}_conv"].weight, w)
                np.testing.assert_array_equal(graph.nodes[f"c{cell_index}_e{key}_conv"].bias, b)
                lif = graph.nodes[f"c{cell_index}_e{key}_lif"]
                assert np.all(lif.v_threshold == np.float32(module[0].v_threshold))
                assert np.allclose(lif.tau, module[0].tau * float(graph.metadata["dt"]))
    # edges: the network's outputs per timestep through the read-back graph
    images = 2.0 * torch.randn(5, 2, 8, 8, generator=torch.Generator().manual_seed(3))
    expected = torch_outputs(model, images)
    got = run_nir(graph, images, config.timesteps)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_first_case_edges_exactly():
    config = MacroConfig(num_cells=1, width=2, in_channels=1, input_size=4, hidden=3, timesteps=2, num_classes=2,
                         vote=1)
    g = Genotype.from_nb201("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|none~2|")
    graph = export_nir(trained_like([g], config))
    assert sorted(graph.edges) == sorted([
        ("input", "stem"),
        ("stem", "c1_e01_lif"), ("c1_e01_lif", "c1_e01_conv"),  # x1 = conv(x0)
        ("c1_e01_conv", "c1_e13_pool"),  # x3 = x0 + pool(x1); x2 reaches no output and is not written
        ("stem", "head_bn"), ("c1_e13_pool", "head_bn"),
        ("head_bn", "head_lif"), ("head_lif", "head_pool"), ("head_pool", "head_flatten"),
        ("head_flatten", "head_fc1"), ("head_fc1", "head_lif2"), ("head_lif2", "head_fc2"), ("head_fc2", "output"),
    ])


def test_disconnected_cell_is_refused():
    config = MacroConfig(num_cells=1, width=2, in_channels=1, input_size=4, hidden=3, timesteps=2)
    g = Genotype(("zero",) * 6)
    with pytest.raises(SpikeNASError, match="does not connect"):
        export_nir(trained_like([g], config))


def write_train_output(folder: Path, genotypes, config: MacroConfig, model, *, epochs: int = 1) -> None:
    """checkpoint.pt and results.json as ``python -m spikenas.train`` writes them after ``epochs`` epochs."""
    train = TrainConfig(epochs=epochs).to_dict()
    cells = [g.to_nb201() for g in genotypes]
    fingerprint = {"cells": cells, "macro": config.to_dict(), "train": train, "data": "digits:train=8:test=8"}
    torch.save({"format": 1, "fingerprint": fingerprint, "epoch": epochs, "model": model.state_dict()},
               folder / "checkpoint.pt")
    (folder / "results.json").write_text(json.dumps({
        "config": {"train": train, "macro": config.to_dict(), "cells": cells},
        "fingerprint": {"network": network_fingerprint(genotypes, config.to_dict(), op_set="3O"),
                        "data": fingerprint["data"], "epochs_finished": epochs, "epochs_asked": epochs},
    }))


def test_cli_from_train_checkpoint(tmp_path):
    """``python -m spikenas.export --from-results`` on a train command's output folder."""
    config = MacroConfig(num_cells=2, width=3, in_channels=1, input_size=8, hidden=6, timesteps=2, num_classes=2,
                         vote=1)
    genotypes = [Genotype.from_index(451, "3O")] * 2
    model = trained_like(genotypes, config)
    write_train_output(tmp_path, genotypes, config, model)
    out = tmp_path / "net.nir"
    run = subprocess.run(
        [sys.executable, "-m", "spikenas.export", "--from-results", str(tmp_path / "results.json"), "--format", "nir",
         "--output", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    graph = nir.read(out)
    loaded, _ = load_trained(tmp_path / "checkpoint.pt")
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(run_nir(graph, images, 2), torch_outputs(loaded, images), rtol=1e-4, atol=1e-5)
    report = json.loads(out.with_name("net.nir.json").read_text())
    assert {"config", "seed", "versions", "timings"} <= set(report)
    bad = subprocess.run([sys.executable, "-m", "spikenas.export", "--checkpoint", str(tmp_path / "missing.pt"),
                          "--output", str(tmp_path / "x.nir")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no checkpoint" in bad.stderr


def test_snntorch_runs_the_exported_graph(tmp_path):
    """snnTorch's NIR importer (dt 1e-4, reset to zero) reproduces the per-timestep outputs."""
    pytest.importorskip("nirtorch", reason="snnTorch's NIR import needs nirtorch")
    pytest.importorskip("snntorch.import_nir", reason="snnTorch is not installed")
    config = MacroConfig(num_cells=2, width=3, in_channels=1, input_size=8, hidden=6, timesteps=3, num_classes=2,
                         vote=1)
    genotypes = [Genotype.from_index(451, "3O"), Genotype.from_index(433, "3O")]
    model = trained_like(genotypes, config)
    path = tmp_path / "net.nir"
    nir.write(path, export_nir(model, dt=1e-4))
    images = 3.0 * torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))  # one sample: NIR flattens all
    expected = torch_outputs(model, images)[:, 0]
    assert expected.abs().sum() > 0
    torch.testing.assert_close(snntorch_outputs(path, images, config.timesteps), expected, rtol=1e-4, atol=1e-5)
