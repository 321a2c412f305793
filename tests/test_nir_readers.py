"""NIR files for a named reader (``export_nir(..., reader=R)``, ``python -m spikenas.export --for R``) run in that
reader's importer, unmodified, on a batch, and give the PyTorch model's outputs; what a reader cannot run is
refused with one line naming the node, and nothing is written.

Each case writes the graph with nir.write, reads it back with nir.read, imports it with the reader and calls the
imported module once per timestep on a batch of 8 images ``[B, C, H, W]`` (the state handed back), as the
graph's metadata ``run`` says. The reader's per-step outputs ``[T, B, classes]`` (the voting AvgPool1d is
folded into the output layer) and their mean over T (the model's readout) must equal the model's within
``ATOL`` (float32 rounding: the export folds each BatchNorm into its convolution and the readers compute the
LIF decay as ``dt / tau`` or ``1 - dt / tau`` where spikingjelly divides by tau; a spike that flipped would change
an output by far more). A membrane within about 1e-7 of the threshold can flip a spike that way (seen in 1 of
1,092 networks swept through snnTorch); the cases here have none.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import functional

from spikenas.errors import SpikeNASError
from spikenas.export import export_nir, load_trained
from spikenas.export import main as export_main
from spikenas.network import MacroConfig
from spikenas.neuron import NeuronConfig
from spikenas.nir_readers import READERS, _depth_first, adapt, get_reader
from spikenas.space import Genotype
from tests.test_export import ROOT, run_nir, torch_outputs, trained_like, write_train_output

nir = pytest.importorskip("nir", reason="NIR export needs the optional nir package (pip install nir)")

ATOL = 1e-5  # on every output of every timestep, and on their mean over T
BATCH = 8


def config(cells: int, **kw) -> MacroConfig:
    return MacroConfig(num_cells=cells, width=4, in_channels=2, input_size=8, hidden=12, timesteps=4, num_classes=3,
                       vote=2, **kw)


def images(c: MacroConfig, seed: int = 3) -> torch.Tensor:
    return 2.0 * torch.rand(BATCH, c.in_channels, c.input_size, c.input_size,
                            generator=torch.Generator().manual_seed(seed))


def lively(genotypes, c: MacroConfig, seed: int = 0):
    """A trained-like network (tests/test_export.py's) whose BatchNorm statistics are measured on 8 images
    (not the test images) and whose BatchNorm shifts are raised by 0.5, so that about a third of the neurons
    fire and the outputs differ from sample to sample; eval mode."""
    model = trained_like(genotypes, c, seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # the running statistics are the batch's
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()  # deterministic (and it sits after every BatchNorm)
    with torch.no_grad():
        model(images(c, seed=7))
    functional.reset_net(model)
    for m in norms:
        m.bias.data += 0.5
    return model.eval()


def snntorch_run(graph, x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """float32 ``[T, B, classes]``: ``graph`` imported by snnTorch, called once per timestep on the batch."""
    from snntorch import import_nir as snn_import

    with contextlib.redirect_stdout(io.StringIO()):  # its importer prints a warning per LIF
        net = snn_import.import_from_nir(graph)
    outputs, state = [], None
    with torch.no_grad():
        for _ in range(timesteps):
            out, state = net(x) if state is None else net(x, state)
            outputs.append(out)
    return torch.stack(outputs)


def norse_run(graph, x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """float32 ``[T, B, classes]``: ``graph`` imported by Norse's from_nir (its default dt), called once per
    timestep on the batch with the state it hands back."""
    from norse.torch.utils.import_nir import from_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # nirtorch.load, which from_nir calls
        net = from_nir(graph)
    outputs, state = [], None
    with torch.no_grad():
        for _ in range(timesteps):
            out, state = net(x, state)
            outputs.append(out)
    return torch.stack(outputs)


RUN = {"snntorch": snntorch_run, "norse": norse_run}


def need(reader: str) -> None:
    """Skip unless ``reader``'s importer is installed."""
    pytest.importorskip("nirtorch", reason="the NIR readers import through nirtorch (pip install nirtorch)")
    if reader == "snntorch":
        pytest.importorskip("snntorch.import_nir", reason="snnTorch is not installed (pip install snntorch)")
    else:
        pytest.importorskip("norse.torch.utils.import_nir",
                            reason="Norse is not installed (pip install --no-deps norse; it declares torchvision)")


def read_back(graph, tmp_path):
    path = tmp_path / "net.nir"
    nir.write(path, graph)
    return nir.read(path)


def check_runs(reader: str, genotypes, c: MacroConfig, tmp_path) -> float:
    """Export for ``reader``, read back, run a batch in the reader; the largest difference from the model."""
    model = lively(genotypes, c)
    graph = read_back(export_nir(model, reader=reader), tmp_path)
    assert graph.metadata["reader"] == reader and float(graph.metadata["dt"]) == READERS[reader].dt
    x = images(c)
    expected = torch_outputs(model, x)
    distinct = len({tuple(row.tolist()) for row in expected.transpose(0, 1).reshape(BATCH, -1)})
    assert distinct >= BATCH // 2, f"only {distinct} of {BATCH} samples give distinct outputs: a weak case"
    got = RUN[reader](graph, x, c.timesteps)
    assert got.shape == expected.shape == (c.timesteps, BATCH, c.num_classes)
    torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)
    torch.testing.assert_close(got.mean(0), model(x).detach(), rtol=0, atol=ATOL)
    return float((got - expected).abs().max())


def genotypes_of(op_set: str, indices) -> list[Genotype]:
    return [Genotype.from_index(i, op_set) if isinstance(i, int) else Genotype.parse(i, op_set) for i in indices]


ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
# stem reaching node 3 three times (nir.Scale x3) beside a convolution
SKIP_X3 = "|skip_connect~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
# a cell pool edge's term reaching node 3 twice: nir.Scale x2 of pool(stem), of pool(pool(conv)) in cell 2
POOL_X2 = "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|skip_connect~2|"
SNNTORCH_CASES = [  # (op set, genotypes): 1, 2 and 3 cells, pool edges, zero edges, nir.Scale of every term kind
    ("2O", [ALL_SKIP]),  # stem x2 into node 2, x2 into node 3
    ("2O", [SKIP_X3]),
    ("2O", [63]),  # every edge a convolution
    ("2O", [41, ALL_SKIP]),  # the downconv's pooled term x2 (twice) in cell 2: copies of down2_conv and its pool
    ("2O", [45, 22, 63]),
    ("3O", ["|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"]),
    ("3O", [433, 451]),
    ("3O", [451, 433, 244]),
    ("3O", [POOL_X2, POOL_X2]),
    ("5O", ["|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|nor_conv_3x3~2|"]),
    ("5O", [4007, 1392]),
    ("5O", ["|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|nor_conv_3x3~2|", 4007, 1392]),
]
# Norse runs a cell only where each node sums terms on one path (see spikenas.nir_readers) and it has no pool edge
NORSE_CASES = [
    ("2O", [33]),  # x1 = conv(x0), x2 = x0 + x1, x3 = x0 + x1 + conv(x2)
    ("2O", [41]),
    ("2O", [41, 33]),
    ("2O", [33, 41, 33]),
    ("3O", [244]),
    ("3O", [271, 244]),
    ("5O", [4007]),
    ("5O", [83, 1392]),
    ("5O", [441, 4007, 42]),
]


@pytest.mark.parametrize("op_set,indices", SNNTORCH_CASES)
def test_snntorch_runs_a_batch_exactly(tmp_path, op_set, indices):
    need("snntorch")
    check_runs("snntorch", genotypes_of(op_set, indices), config(len(indices)), tmp_path)


@pytest.mark.parametrize("op_set,indices", NORSE_CASES)
def test_norse_runs_a_batch_exactly(tmp_path, op_set, indices):
    need("norse")
    check_runs("norse", genotypes_of(op_set, indices), config(len(indices)), tmp_path)


def test_snntorch_state_is_reset_as_the_metadata_says(tmp_path):
    """snnTorch's imported LIFs keep their membrane between inputs; snntorch.utils.reset(net) clears it."""
    need("snntorch")
    import snntorch.utils
    from snntorch import import_nir as snn_import

    c = config(1)
    model = lively(genotypes_of("2O", [33]), c)
    graph = read_back(export_nir(model, reader="snntorch"), tmp_path)
    assert "snntorch.utils.reset(net) before another input" in graph.metadata["run"]
    with contextlib.redirect_stdout(io.StringIO()):
        net = snn_import.import_from_nir(graph)
    x = images(c)

    def run() -> torch.Tensor:
        outputs, state = [], None
        with torch.no_grad():
            for _ in range(c.timesteps):
                out, state = net(x) if state is None else net(x, state)
                outputs.append(out)
        return torch.stack(outputs)

    first, again = run(), run()
    snntorch.utils.reset(net)
    torch.testing.assert_close(run(), first, rtol=0, atol=0)
    assert (again - first).abs().max() > 1e-2


def test_reader_files_hold_only_what_the_reader_maps():
    c = config(2)
    model = trained_like(genotypes_of("2O", [ALL_SKIP, 33]), c)
    default = export_nir(model)
    assert {type(n).__name__ for n in default.nodes.values()} >= {"Scale", "AvgPool2d"}
    assert default.nodes["head_flatten"].start_dim == 0  # NIR's semantics: the first non-batch dimension
    for reader in ("snntorch", "norse"):
        if reader == "norse":  # the copies scaling ALL_SKIP's terms are summed side by side: refused; a cell it runs
            model = trained_like(genotypes_of("2O", [41, 33]), c)
            default = export_nir(model)
        graph = export_nir(model, reader=reader)
        kinds = {type(n).__name__ for n in graph.nodes.values()}
        assert "Scale" not in kinds
        assert ("AvgPool2d" in kinds) == (reader == "snntorch") and ("SumPool2d" in kinds) == (reader == "norse")
        assert graph.nodes["head_flatten"].start_dim == -3
        assert graph.nodes["head_flatten"].output_type["output"].tolist() == [graph.nodes["head_fc1"].weight.shape[1]]
        assert graph.metadata["reader"] == reader and READERS[reader].run == graph.metadata["run"]
    norse = export_nir(model, reader="norse")  # 1/4 of each 2x2 pool folded into the weights beside it
    np.testing.assert_array_equal(norse.nodes["head_fc1"].weight, default.nodes["head_fc1"].weight / 4)
    assert type(norse.nodes["head_fc1"]) is type(default.nodes["head_fc1"])  # a bias (if any) is not scaled
    if isinstance(default.nodes["head_fc1"], nir.Affine):
        np.testing.assert_array_equal(norse.nodes["head_fc1"].bias, default.nodes["head_fc1"].bias)
    np.testing.assert_array_equal(norse.nodes["down2_conv"].weight, default.nodes["down2_conv"].weight / 4)
    np.testing.assert_array_equal(norse.nodes["down2_conv"].bias, default.nodes["down2_conv"].bias / 4)


def test_default_export_is_unchanged_by_the_reader_option():
    model = trained_like(genotypes_of("3O", [433, 451]), config(2))
    graphs = [export_nir(model), export_nir(model, reader="nir"), export_nir(model, reader=None, dt=1e-4)]
    for graph in graphs[1:]:
        assert graph.edges == graphs[0].edges and graph.metadata == graphs[0].metadata
        assert list(graph.nodes) == list(graphs[0].nodes)
        for name, node in graph.nodes.items():
            for key, value in node.to_dict().items():
                np.testing.assert_array_equal(value, graphs[0].nodes[name].to_dict()[key])
    assert "reader" not in graphs[0].metadata


def as_reference(graph) -> SimpleNamespace:
    """``graph`` in the terms tests/test_export.py's interpreter knows: a SumPool2d as an AvgPool2d and a
    nir.Scale by k^2 (named ``<pool>_k2``), a Flatten by its non-negative start_dim."""
    nodes, edges = {}, list(graph.edges)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.SumPool2d):
            nodes[name] = nir.AvgPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding)
            nodes[f"{name}_k2"] = nir.Scale(scale=np.array([np.prod(node.kernel_size)], np.float32))
            edges = [(f"{name}_k2" if s == name else s, d) for s, d in edges] + [(name, f"{name}_k2")]
        elif isinstance(node, nir.Flatten):
            shape = node.input_type["input"]
            nodes[name] = nir.Flatten(input_type={"input": shape}, start_dim=node.start_dim % len(shape))
        else:
            nodes[name] = node
    return SimpleNamespace(nodes=nodes, edges=edges, metadata=graph.metadata)


def test_nir_reference_runs_the_reader_files(tmp_path):
    """The rewrites keep NIR's semantics: the reference interpreter gives the model's outputs on every file."""
    c = config(2)
    for reader, op_set, indices in (("snntorch", "3O", [SKIP_X3, POOL_X2]), ("norse", "2O", [41, 33])):
        model = lively(genotypes_of(op_set, indices), c)
        x = images(c)
        graph = as_reference(read_back(export_nir(model, reader=reader), tmp_path))
        torch.testing.assert_close(run_nir(graph, x, c.timesteps), torch_outputs(model, x), rtol=0, atol=ATOL)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


REFUSALS = [
    # (reader, op set, genotypes, words the message holds)
    ("norse", "3O", ["|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|nor_conv_3x3~2|"],
     ["norse cannot run node c1_e12_pool", "AvgPool2d 3x3 stride 1 padding 1 inside a cell", "no average pooling",
      "op set 2O"]),
    ("norse", "2O", [63], ["norse cannot run node c1_e23_lif (the sum of c1_e12_conv and c1_e02_conv)",
                           "depth-first", "previous timestep", "--for snntorch"]),
    ("norse", "3O", [POOL_X2], ["norse cannot run node c1_n3_c1_e01_pool_x2", "AvgPool2d 3x3"]),
    ("snntorch", "5O", [10675], ["snntorch cannot run node c1_e13_conv (an edge of cell 1 reading its node 1, which",
                                 "is always zero)", "BatchNorm shift"]),
    ("norse", "5O", [10675], ["norse cannot run node c1_e13_conv (an edge of cell 1", "always zero"]),
]


@pytest.mark.parametrize("reader,op_set,indices,words", REFUSALS)
def test_refusals_name_the_node(reader, op_set, indices, words):
    model = trained_like(genotypes_of(op_set, indices), config(len(indices)))
    with pytest.raises(SpikeNASError) as err:
        export_nir(model, reader=reader)
    text = one_line(err)
    for word in words:
        assert word in text, text
    if any("always zero" in word for word in words):  # no NIR node carries the constant: refused for NIR too
        with pytest.raises(SpikeNASError, match="nir cannot run node c1_e13_conv"):
            export_nir(model)
    else:
        export_nir(model)  # NIR's own semantics express it


def test_dt_and_reset_refusals():
    model = trained_like(genotypes_of("2O", [33]), config(1))
    with pytest.raises(SpikeNASError) as err:
        export_nir(model, reader="snntorch", dt=1e-3)
    assert all(w in one_line(err) for w in ("snntorch cannot run dt 0.001", "dt 0.0001 s", "--for nir"))
    with pytest.raises(SpikeNASError) as err:
        export_nir(model, reader="norse", dt=1e-4)
    assert "norse cannot run dt 0.0001" in one_line(err) and "dt 0.001 s" in str(err.value)
    assert float(export_nir(model, reader="nir", dt=1e-3).metadata["dt"]) == 1e-3
    with pytest.raises(SpikeNASError, match="reader must be one of nir, snntorch, norse, got 'sinabs'"):
        export_nir(model, reader="sinabs")
    reset = trained_like(genotypes_of("2O", [33]), config(1, neuron=NeuronConfig(v_reset=0.25)))
    for reader in ("snntorch", "norse"):
        with pytest.raises(SpikeNASError) as err:
            export_nir(reset, reader=reader)
        assert f"{reader} cannot run node stem" not in one_line(err)
        assert "c1_e01_lif (LIF v_reset 0.25)" in str(err.value) and "resets a neuron to 0" in str(err.value)


def _graph(*chain: tuple[str, object]) -> tuple[dict, list]:
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 4, 4])}), **dict(chain),
             "output": nir.Output(output_type={"output": np.array([2])})}
    names = list(nodes)
    return nodes, list(zip(names[:-1], names[1:], strict=True))


def test_a_scaled_term_no_convolution_computes_is_refused():
    ones = np.ones((1, 4, 4), np.float32)
    lif = nir.LIF(tau=ones * 1e-4, r=ones, v_leak=ones * 0, v_threshold=ones, v_reset=ones * 0)
    nodes, edges = _graph(("lif", lif), ("lif_x2", nir.Scale(scale=ones * 2)))
    for reader in ("snntorch", "norse"):
        with pytest.raises(SpikeNASError) as err:
            adapt(nodes, edges, get_reader(reader))
        assert f"{reader} cannot run node lif_x2 (nir.Scale x2: one term reaching a cell node" in one_line(err)
        assert "no mapping for nir.Scale, and lif is not computed by a convolution" in str(err.value)


def test_norse_refuses_a_pool_with_nothing_to_fold_into():
    ones = np.ones((1, 4, 4), np.float32)
    lif = nir.LIF(tau=ones * 1e-3, r=ones, v_leak=ones * 0, v_threshold=ones, v_reset=ones * 0)
    pool = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    small = np.ones((1, 2, 2), np.float32)
    lif2 = nir.LIF(tau=small * 1e-3, r=small, v_leak=small * 0, v_threshold=small, v_reset=small * 0)
    nodes, edges = _graph(("lif", lif), ("pool", pool), ("lif2", lif2))
    with pytest.raises(SpikeNASError) as err:
        adapt(nodes, edges, get_reader("norse"))
    assert "norse cannot run node pool (AvgPool2d 2x2 stride 2 padding 0)" in one_line(err)
    assert "no convolution or affine map of its own to fold into" in str(err.value)


def test_depth_first_order_is_nirtorch_loads(tmp_path):
    """The order spikenas checks is the order Norse's loader runs; without the check Norse computes something else."""
    need("norse")
    from norse.torch.utils.import_nir import from_nir

    import spikenas.nir_readers as readers

    c = config(1)
    model = lively(genotypes_of("2O", [63]), c)
    check = readers._check_depth_first
    try:
        readers._check_depth_first = lambda *args: None
        graph = read_back(export_nir(model, reader="norse"), tmp_path)
    finally:
        readers._check_depth_first = check
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        net = from_nir(graph)
    assert [n.name for n in net.execution_order] == _depth_first(graph.nodes, graph.edges)
    x = images(c)
    got = norse_run(graph, x, c.timesteps)
    expected = torch_outputs(model, x)
    assert got.shape != expected.shape or (got - expected).abs().max() > 1e-2


def test_cli_for_reader(tmp_path, capsys):
    """``--for norse`` (``python -m spikenas.export``) and ``--for snntorch`` (its ``main``) on a train command's
    output run in the reader; refusals exit 2 with one line and write nothing."""
    c = MacroConfig(num_cells=2, width=3, in_channels=1, input_size=8, hidden=6, timesteps=3, num_classes=2, vote=1)
    genotypes = genotypes_of("3O", [244, 271])
    write_train_output(tmp_path, genotypes, c, trained_like(genotypes, c))
    model, _ = load_trained(tmp_path / "checkpoint.pt")
    x = 3.0 * torch.rand(BATCH, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = torch_outputs(model, x)
    for reader in ("norse", "snntorch"):
        need(reader)
        out = tmp_path / f"{reader}.nir"
        args = ["--from-results", str(tmp_path / "results.json"), "--for", reader, "--output", str(out)]
        if reader == "norse":
            run = subprocess.run([sys.executable, "-m", "spikenas.export", *args], capture_output=True, text=True,
                                 cwd=ROOT, timeout=300)
            assert run.returncode == 0, run.stderr
        else:
            assert export_main(args) == 0
        torch.testing.assert_close(RUN[reader](nir.read(out), x, c.timesteps), expected, rtol=0, atol=ATOL)
        report = json.loads(out.with_name(out.name + ".json").read_text())
        assert report["config"]["reader"] == reader and report["config"]["dt"] == READERS[reader].dt
    one = MacroConfig(num_cells=1, width=3, in_channels=1, input_size=8, hidden=6, timesteps=2, num_classes=2, vote=1)
    refused = [("2O", 63, ["--for", "norse"], "error: norse cannot run node c1_e23_lif ("),
               ("3O", 244, ["--for", "snntorch", "--dt", "1e-3"], "error: snntorch cannot run dt 0.001: "),
               ("3O", 244, ["--target", "xylo"], "error: the network does not fit target xylo: xylo cannot run "
                "layer 'stem.0' (Conv2d)")]
    for i, (op_set, index, args, words) in enumerate(refused):
        folder = tmp_path / f"refused{i}"
        folder.mkdir()
        write_train_output(folder, genotypes_of(op_set, [index]), one, trained_like(genotypes_of(op_set, [index]), one))
        before = sorted(p.name for p in folder.iterdir())
        args = ["--checkpoint", str(folder / "checkpoint.pt"), "--output", str(folder / "net.nir"), *args]
        if i == 0:
            run = subprocess.run([sys.executable, "-m", "spikenas.export", *args], capture_output=True, text=True,
                                 cwd=ROOT, timeout=300)
            code, err = run.returncode, run.stderr
        else:
            capsys.readouterr()
            code, err = export_main(args), capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith(words), err
        assert sorted(p.name for p in folder.iterdir()) == before
