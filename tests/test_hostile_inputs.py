"""Hostile and mistaken input, one table of cases: every case must end in a clear one-line refusal.

The table grows with every bug found: a new bad input that gave a traceback, a wrong result or a late
failure becomes a row here. A row is ``(id, action, expected)``:

* ``action`` a list of strings: the arguments of ``spikenas COMMAND ...``, run in-process through
  :func:`spikenas.cli.main` (``{tmp}`` stands for the test's temporary folder, which is also the working
  directory); the command must exit with status 2 and print exactly one line to stderr, holding
  ``expected`` and no traceback;
* ``action`` a callable of the temporary folder: a library call that must raise
  :class:`~spikenas.errors.SpikeNASError` whose message holds ``expected`` (which names the argument);
* ``expected`` of the form ``status:NAME``: the callable returns a
  :class:`~spikenas.scoring.ScoreResult` with that status and no finite score.

The validation fires before any data is loaded or any network is built, so every row is quick;
rows whose check needs the data (the memory estimate) load only the embedded digits.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import spikenas
from spikenas import cli
from spikenas.analyze.rerank import load_curves
from spikenas.data import ImageDataset
from spikenas.errors import SpikeNASError
from spikenas.memory import Budget
from spikenas.network import MacroConfig, build_network
from spikenas.resources import check_memory, estimate_memory
from spikenas.scoring import ScoreConfig
from spikenas.spikenas_bench import load_bench
from spikenas.train.trainer import TrainConfig, train

CELL = "|conv3x3~0|+|skip~0|conv3x3~1|+|skip~0|skip~1|conv3x3~2|"
MACRO = MacroConfig(num_cells=1, width=4, timesteps=2, in_channels=1, input_size=8, hidden=16)
BENCH_HEADER = "arch_id,op01,op02,op03,op12,op13,op23,params,test_acc\n"
TRITON_RUNS = torch.cuda.is_available() or bool(os.environ.get("TRITON_INTERPRET"))


def images(*shape: int, dtype: torch.dtype = torch.float32, nan: bool = False) -> torch.Tensor:
    """Seeded images ``[B, C, H, W]`` (default: 8 of MACRO's); ``nan``: one value is NaN."""
    x = torch.randn(*(shape or (8, 1, 8, 8)), generator=torch.Generator().manual_seed(0)).to(dtype)
    if nan:
        x.view(-1)[3] = float("nan")
    return x


def network() -> torch.nn.Module:
    return build_network(spikenas.Genotype.from_nb201(CELL), MACRO, seed=0)


def score(**kw: object) -> Callable[[Path], object]:
    """A call of ``spikenas.score`` on CELL, MACRO and :func:`images` with ``kw`` replacing those and the
    other defaults."""
    args: dict = {"cells": CELL, "macro": MACRO, "name": "conv_depth", **kw}
    return lambda _: spikenas.score(**{"images": images(), **args})


def score_network(batches: object, **kw: object) -> Callable[[Path], object]:
    return lambda _: spikenas.score_network(network(), batches, **kw)


def train_on_labels(labels: list[int]) -> object:
    """Train on four 8x8 images with ``labels`` (10 classes) for one epoch."""
    x = np.zeros((len(labels), 1, 8, 8), np.uint8)
    data = ImageDataset("tiny", x, np.array(labels, np.int64), 10)
    macro = MACRO.replace(num_classes=10)
    return train([spikenas.Genotype.from_nb201(CELL)], macro, data, data, config=TrainConfig(epochs=1), progress=False)


def bench_csv(tmp: Path, row: str) -> Path:
    """A two-record SpikeNAS-Bench CSV whose second record is ``row``."""
    path = tmp / "bench.csv"
    path.write_text(BENCH_HEADER + "1,1,0,0,0,0,0,17179620,10.0\n" + row + "\n")
    return path


def curves_csv(tmp: Path, rows: str) -> Path:
    """A SpikeNAS-Bench curves CSV with these data rows (arch_id, epoch, val_acc)."""
    path = tmp / "curves.csv"
    path.write_text("arch_id,epoch,val_acc\n" + rows)
    return path


def expect_score_status(name: str) -> Callable[[Path], object]:
    """Score NaN images with score ``name``."""
    return score(name=name, images=images(nan=True))


Case = tuple[str, "list[str] | Callable[[Path], object]", str]

CASES: list = [
    # --- numeric options of every command: parse-time, one line, exit 2 -----------------------------------
    ("train-lr-inf", ["train", "--genotype", "0", "--lr", "inf"], "argument --lr: must be a finite number > 0"),
    ("train-lr-nan", ["train", "--genotype", "0", "--lr", "nan"], "argument --lr: must be a finite number > 0"),
    ("train-lr-negative", ["train", "--genotype", "0", "--lr", "-1"], "argument --lr: must be a finite number > 0"),
    ("train-lr-overflow", ["train", "--genotype", "0", "--lr", "1e400"], "argument --lr"),
    ("train-input-size-0", ["train", "--genotype", "0", "--input-size", "0"], "argument --input-size: must be"),
    ("search-input-size-0", ["search", "--fast", "--input-size", "0"],
     "argument --input-size: must be an integer >= 1"),
    ("search-workers-0", ["search", "--fast", "--workers", "0"], "argument --workers: must be an integer >= 1"),
    ("search-seed-negative", ["search", "--fast", "--seed", "-1"],
     "argument --seed: must be an integer in 0..4294967295"),
    ("search-seed-huge", ["search", "--fast", "--seed", "99999999999999999999"],
     "argument --seed: must be an integer in"),
    ("train-seed-negative", ["train", "--genotype", "0", "--seed", "-1"], "argument --seed"),
    ("search-seed-float", ["search", "--fast", "--seed", "1.5"], "argument --seed: must be an integer"),
    ("search-timesteps-0", ["search", "--fast", "--timesteps", "0"], "argument --timesteps: must be an integer >= 1"),
    ("search-timesteps-huge", ["search", "--fast", "--timesteps", "99999999999999"], "argument --timesteps: must be"),
    ("train-timesteps-0", ["train", "--genotype", "0", "--timesteps", "0"], "argument --timesteps"),
    ("search-width-0", ["search", "--fast", "--width", "0"], "argument --width: must be an integer >= 1"),
    ("train-width-0", ["train", "--genotype", "0", "--width", "0"], "argument --width"),
    ("search-hidden-negative", ["search", "--fast", "--hidden", "-3"], "argument --hidden"),
    ("search-batch-1", ["search", "--fast", "--batch-size", "1"], "argument --batch-size: must be an integer >= 2"),
    ("search-num-batches-0", ["search", "--fast", "--num-batches", "0"], "argument --num-batches"),
    ("search-samples-0", ["search", "--algorithm", "random", "--samples", "0"], "argument --samples"),
    ("search-budget-overflow", ["search", "--fast", "--budget", "1e400"],
     "argument --budget: must be a positive finite"),
    ("search-budget-inf", ["search", "--fast", "--budget", "inf"], "argument --budget"),
    ("search-bits-0", ["search", "--fast", "--budget", "1M", "--bits", "0"],
     "argument --bits: must be an integer in 1..64"),
    ("search-alpha-nan", ["search", "--fast", "--alpha", "nan"], "argument --alpha"),
    ("search-rescore-0", ["search", "--fast", "--rescore-fraction", "0"], "argument --rescore-fraction: must be"),
    ("search-race-top-negative", ["search", "--fast", "--race-top", "-1"], "argument --race-top"),
    ("search-rerank-eta-1", ["search", "--fast", "--rerank-top", "3", "--rerank-eta", "1"], "argument --rerank-eta"),
    ("search-rerank-val-1", ["search", "--fast", "--rerank-top", "3", "--rerank-val-fraction", "1"],
     "argument --rerank-val-fraction"),
    ("search-spike-target-overflow", ["search", "--algorithm", "evolution", "--spike-target", "1e999"],
     "argument --spike-target"),
    ("train-dropout-1", ["train", "--genotype", "0", "--dropout", "1"],
     "argument --dropout: must be a finite number in [0, 1)"),
    ("train-momentum-nan", ["train", "--genotype", "0", "--momentum", "nan"], "argument --momentum"),
    ("train-weight-decay-negative", ["train", "--genotype", "0", "--weight-decay", "-1e-4"], "argument --weight-decay"),
    ("train-eta-min-inf", ["train", "--genotype", "0", "--eta-min", "inf"], "argument --eta-min"),
    ("train-label-smoothing-1", ["train", "--genotype", "0", "--label-smoothing", "1"], "argument --label-smoothing"),
    ("train-epochs-0", ["train", "--genotype", "0", "--epochs", "0"], "epochs must be >= 1"),
    ("train-quantize-bits-1", ["train", "--genotype", "0", "--quantize-bits", "8", "1"],
     "argument --quantize-bits: must be an integer in 2..16"),
    ("train-threads-0", ["train", "--genotype", "0", "--threads", "0"], "argument --threads"),
    ("train-crop-padding-negative", ["train", "--genotype", "0", "--crop-padding", "-2"], "argument --crop-padding"),
    ("export-dt-inf", ["export", "--checkpoint", "c.pt", "--output", "{tmp}/n.nir", "--dt", "inf"], "argument --dt"),
    ("export-dt-0", ["export", "--checkpoint", "c.pt", "--output", "{tmp}/n.nir", "--dt", "0"], "argument --dt"),
    ("analyze-selection-timesteps-0", ["analyze", "selection", "--bench", "b.csv", "--timesteps", "0"],
     "argument --timesteps"),
    ("analyze-selection-seed-negative", ["analyze", "selection", "--bench", "b.csv", "--split-seed", "-1"],
     "argument --split-seed"),
    ("analyze-rerank-seed-huge", ["analyze", "rerank", "--bench", "b", "--curves", "c", "--seed", str(2**32)],
     "argument --seed"),
    ("analyze-rerank-eta-1", ["analyze", "rerank", "--bench", "b", "--curves", "c", "--eta", "1"], "argument --eta"),
    ("analyze-fidelity-quantile-nan", ["analyze", "fidelity", "--bench", "{tmp}/bench.csv", "--budget-quantile", "nan",
      "--output-dir", "{tmp}/o"], "--budget-quantile must be in (0, 1]"),
    ("analyze-scenarios-cells-4", ["analyze", "scenarios", "--cells-list", "1", "4", "--output-dir", "{tmp}/o"],
     "--cells-list takes 1, 2 or 3"),
    ("analyze-report-lr-nan", ["analyze", "correlation", "--lr", "nan"], "argument --lr"),
    ("analyze-correlation-k-0", ["analyze", "correlation", "--k", "0"], "argument --k"),
    pytest.param(
        ("search-backend-triton-no-cuda", ["search", "--fast", "--score", "sahd", "--backend", "triton"],
         "argument --backend: backend 'triton'"),
        marks=pytest.mark.skipif(TRITON_RUNS, reason="triton can run here (CUDA or TRITON_INTERPRET)"),
        id="search-backend-triton-no-cuda",
    ),
    # --- sizes beyond the machine's memory: refused with the estimate, before any candidate is scored ------
    ("search-width-huge", ["search", "--fast", "--width", "100000"], "needs about"),
    ("search-timesteps-beyond-memory", ["search", "--fast", "--timesteps", "2000000000"], "GiB"),
    ("search-evaluate-width-huge", ["search", "--fast", "--width", "100000", "--evaluate", "0"], "needs about"),
    ("search-output-name-300", ["search", "--fast", "--output", "a" * 300 + ".json"], "its name has 305 bytes"),
    ("train-output-dir-name-300", ["train", "--genotype", "0", "--output-dir", "b" * 300], "its name has 300 bytes"),
    ("evolution-width-huge", ["search", "--fast", "--algorithm", "evolution", "--width", "100000"], "needs about"),
    ("evolution-autosnn-width-huge", ["search", "--fast", "--algorithm", "evolution", "--space", "autosnn",
                                      "--fitness", "score", "--width", "1000000", "--input-size", "32"],
     "scoring this AutoSNN network"),
    ("train-width-huge", ["train", "--genotype", "0", "--width", "100000"], "training this network"),
    ("train-timesteps-beyond-memory", ["train", "--genotype", "0", "--timesteps", "2000000000"], "needs about"),
    ("api-search-width-huge", lambda _: spikenas.search(width=100_000), "needs about"),
    ("check-memory", lambda _: check_memory(MacroConfig(width=100_000), batch_size=64), "needs about"),
    ("check-memory-available", lambda _: check_memory(MACRO, batch_size=8, available=1), "has 0.0 GiB"),
    ("estimate-memory-batch-0", lambda _: estimate_memory(MACRO, batch_size=0), "batch_size must be an integer >= 1"),
    # --- the Python API: types, dtypes, shapes, named in the message ----------------------------------------
    ("macro-width-float", lambda _: MacroConfig(width=4.5), "width must be an integer, got 4.5"),
    ("macro-timesteps-0", lambda _: MacroConfig(timesteps=0), "timesteps must be >= 1"),
    ("macro-cells-bool", lambda _: MacroConfig(num_cells=True), "num_cells must be an integer"),
    ("macro-dropout-nan", lambda _: MacroConfig(dropout=float("nan")), "dropout must be in [0, 1)"),
    ("macro-dropout-str", lambda _: MacroConfig(dropout="0.5"), "dropout must be a number"),
    ("macro-neuron-dict", lambda _: MacroConfig(neuron={}), "neuron must be a NeuronConfig"),
    ("macro-from-dict-unknown", lambda _: MacroConfig.from_dict({"widht": 3}), "unknown macro config fields ['widht']"),
    ("macro-from-dict-list", lambda _: MacroConfig.from_dict([1, 2]), "must be a JSON object"),
    ("macro-from-dict-width-str", lambda _: MacroConfig.from_dict({"width": "8"}), "width must be an integer"),
    ("budget-bool", lambda _: Budget(True), "budget must be a positive finite number, got True"),
    ("budget-inf", lambda _: Budget(float("inf")), "budget must be a positive finite number"),
    ("budget-bits-bool", lambda _: Budget(1000, bits=True), "bits must be an integer in 1..64"),
    ("memory-bytes-bits-float", lambda _: spikenas.memory.bytes(spikenas.Genotype.from_nb201(CELL), MACRO, bits=8.0),
     "bits must be an integer"),
    ("api-search-budget-bool", lambda _: spikenas.search(budget=True),
     "budget must be a finite number or None, got True"),
    ("api-search-width-float", lambda _: spikenas.search(width=4.5), "width must be an integer, got 4.5"),
    ("api-search-seed-negative", lambda _: spikenas.search(seed=-1), "seed must be an integer in 0..4294967295"),
    ("api-search-input-size-0", lambda _: spikenas.search(input_size=0), "input_size must be an integer >= 1"),
    ("api-search-config-width-float",
     lambda _: spikenas.search(spikenas.SearchRequest(macro=spikenas.nas.MacroOptions(width=4.5))),
     "width must be an integer, got 4.5"),
    ("api-search-unknown-field", lambda _: spikenas.search(widht=8), "unknown search fields ['widht']"),
    ("api-search-config-wrong-type", lambda _: spikenas.search("fast"), "request must be a SearchRequest"),
    ("api-search-spike-target-inf", lambda _: spikenas.search(spike_target=float("inf")),
     "spike_target must be a finite"),
    ("score-images-int", score(images=images(dtype=torch.int64)), "got dtype torch.int64"),
    ("score-images-channels", score(images=images(8, 3, 8, 8)), "images must be [B, 1, 8, 8] float tensors"),
    ("score-images-3d", score(images=images(8, 8, 8)), "got 3 dimensions"),
    ("score-images-size", score(images=images(8, 1, 9, 9)), "got images of (9, 9) pixels"),
    ("score-images-batch-1", score(images=images(1, 1, 8, 8)), "got a batch of 1"),
    ("score-images-numpy", score(images=np.zeros((8, 1, 8, 8), np.float32)), "numpy array"),
    ("score-images-string", score(images="images.npz"), "images must be"),
    ("score-images-empty", score(images=[]), "images is empty"),
    ("score-images-list-of-numpy", score(images=[np.zeros((8, 1, 8, 8))]), "torch.from_numpy"),
    ("score-cells-float", score(cells=4.5), "cells must be a Genotype"),
    ("score-cells-object", score(cells=[object()]), "each of cells must be"),
    ("score-cells-empty", score(cells=[]), "cells is empty"),
    ("score-macro-dict", score(macro={"width": 4}), "macro must be a MacroConfig"),
    ("score-seed-negative", score(seed=-1), "seed must be an integer in 0..4294967295"),
    ("score-seed-float", score(seed=0.5), "seed must be an integer"),
    ("score-name-int", score(name=3), "name must be a registered score's name"),
    ("score-config-dict", score(config={"name": "sahd"}), "config must be a ScoreConfig"),
    ("score-weight-seeding", score(weight_seeding="random"), "weight_seeding must be one of"),
    ("score-network-model-str", lambda _: spikenas.score_network("model", images()), "model must be a torch.nn.Module"),
    ("score-network-channels", score_network(images(8, 3, 8, 8)), "batches must be [B, 1, 8, 8] float tensors"),
    ("score-network-3d", score_network(images(8, 8, 8)), "got 3 dimensions"),
    ("score-network-int", score_network(images(dtype=torch.int32)), "floating-point tensor, got dtype torch.int32"),
    ("score-network-numpy", score_network(np.zeros((8, 1, 8, 8), np.float32)), "numpy array"),
    ("score-network-timesteps-shape", score_network(images(8, 3, 8, 8), timesteps=2), "failed on its input"),
    ("score-network-batch-1", score_network(images(1, 1, 8, 8)), "batch of 1"),
    ("score-network-config-str", score_network(images(), config="sahd"), "config must be a ScoreConfig"),
    # --- NaN and infinite input: a status, never a score ----------------------------------------------------
    *[(f"score-nan-{name}", expect_score_status(name), "status:invalid_input") for name in spikenas.list_scores()],
    ("score-inf", score(name="sahd", images=images() / 0.0), "status:invalid_input"),
    ("score-network-nan", score_network(images(nan=True)), "status:invalid_input"),
    ("score-network-nan-timesteps", lambda _: spikenas.score_network(
        network(), [images(), images(nan=True)], config=ScoreConfig(name="hamming")), "status:invalid_input"),
    ("train-label-out-of-range", lambda _: train_on_labels([0, 1, 12, 3]), "sample 2 has label 12, outside 0..9"),
    ("train-label-negative", lambda _: train_on_labels([0, -1, 2, 3]), "has label -1"),
    ("bench-nan", lambda tmp: load_bench(bench_csv(tmp, "3,3,0,0,0,0,0,17917668,nan")), "line 3: column test_acc"),
    ("bench-inf-params", lambda tmp: load_bench(bench_csv(tmp, "3,3,0,0,0,0,0,inf,10.0")), "column params holds 'inf'"),
    ("bench-empty-cell", lambda tmp: load_bench(bench_csv(tmp, "3,3,0,0,0,0,0,17917668,")), "column test_acc is empty"),
    ("bench-garbage", lambda tmp: load_bench(bench_csv(tmp, "3,3,x,0,0,0,0,17917668,10")), "column op02 holds 'x'"),
    ("curves-nan", lambda tmp: load_curves(curves_csv(tmp, "0,0,10.5\n0,1,nan\n")), "line 3: column val_acc holds nan"),
    ("curves-inf-epoch", lambda tmp: load_curves(curves_csv(tmp, "0,inf,10.5\n")), "line 2: column epoch holds inf"),
    ("analyze-selection-bench-nan", ["analyze", "selection", "--bench", "{tmp}/bench.csv", "--output-dir", "{tmp}/o"],
     "line 3: column test_acc holds 'nan'"),
]


def _id(case: object) -> str:
    return case.id if hasattr(case, "id") else case[0]


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_hostile_input(case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    name, action, expected = case
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPIKENAS_BACKEND", raising=False)
    bench_csv(tmp_path, "3,3,0,0,0,0,0,17917668,nan")  # the bench file CLI rows may name
    if isinstance(action, list):
        argv = [a.replace("{tmp}", str(tmp_path)) for a in action]
        try:
            status = cli.main(argv)
        except SystemExit as stop:
            status = stop.code
        err = capsys.readouterr().err
        assert status == 2, f"{name}: exit status {status}, stderr {err!r}"
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, f"{name}: stderr is not one line: {err!r}"
        assert expected in err, f"{name}: {expected!r} not in {err!r}"
    elif expected.startswith("status:"):
        result = action(tmp_path)
        assert result.status == expected.removeprefix("status:"), f"{name}: status {result.status}"
        assert not math.isfinite(result.score)
    else:
        with pytest.raises(SpikeNASError) as caught:
            action(tmp_path)
        assert expected in str(caught.value), f"{name}: {expected!r} not in {str(caught.value)!r}"
        assert "\n" not in str(caught.value)


def test_every_row_has_a_distinct_id() -> None:
    ids = [_id(c) for c in CASES]
    assert len(ids) == len(set(ids))
