"""bench/ground_truth_scores.py: training-free scores of ground-truth records, as a Fashion-MNIST search scores them."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from spikenas.analyze.fidelity import FidelitySetting
from spikenas.analyze.ground_truth import Record, write_tables
from spikenas.analyze.selection import ScoreTable
from spikenas.errors import SpikeNASError
from spikenas.nas.__main__ import main as search_main
from spikenas.spikenas_bench import load_bench

REPO = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
CELLS = (0, 21, 63)  # 2O cells; 0 (every edge a skip) has no live LIF, so sahd_live is -inf (singular)
SCORES = ("sahd_live", "swap_call")

pytestmark = pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST (Debian dataset-fashion-mnist) missing")


@pytest.fixture
def gts(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import ground_truth_scores

    return ground_truth_scores


def _table(tmp_path: Path) -> Path:
    """A ground-truth 2O-1cell table of the records :data:`CELLS` (fake training results)."""
    recs = [Record("2O-1cell", (i,), 0) for i in CELLS]
    rows = [{"id": r.id, "history": [{"train_accuracy": 0.5, "train_loss": 1.0, "test_accuracy": 0.6 + 0.01 * n,
                                      "test_loss": 1.0}], "test_accuracy": 0.7 + 0.01 * n, "params": 100 + n,
             "firing_rate": 0.1} for n, r in enumerate(recs)]
    write_tables(tmp_path, recs, {"group0": {"result": {"records": rows}}})
    return tmp_path / "2O-1cell.csv"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_resume_and_load_as_selection_values(gts, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table, out = _table(tmp_path), tmp_path / "values.csv"
    argv = ["--tables", str(table), "--output", str(out), "--scores", ",".join(SCORES), "--seeds", "0"]
    assert gts.main(argv) == 0
    rows = _rows(out)
    assert sorted((int(r["arch_id"]), int(r["seed"]), r["score"]) for r in rows) == sorted(
        (a, 0, s) for a in CELLS for s in SCORES)
    value = {(int(r["arch_id"]), r["score"]): float(r["value"]) for r in rows}
    assert value[(0, "sahd_live")] == -math.inf and all(math.isfinite(value[(a, "sahd_live")]) for a in CELLS[1:])
    assert len({value[(a, "swap_call")] for a in CELLS}) == 3
    assert json.loads(out.with_suffix(".json").read_text())["run"]["rows_written"] == len(rows)
    text = out.read_text()
    assert gts.main(argv) == 0 and out.read_text() == text  # a rerun scores nothing again
    assert gts.main([*argv[:-1], "0,1"]) == 0  # a new seed: only its rows are added
    more = _rows(out)
    assert more[: len(rows)] == rows and len(more) == 2 * len(rows) and {r["seed"] for r in more[len(rows):]} == {"1"}
    bench = load_bench(table)  # as the selection study reads a table (--bench), then its --values
    scores = ScoreTable(bench, settings=[FidelitySetting(seed=0), FidelitySetting(seed=1)], data_dir=tmp_path,
                        cache_dir=tmp_path)
    assert scores.load_values(out) == set(SCORES)
    for name in SCORES:
        loaded = scores.column(name, np.arange(len(bench)), seed=0)
        assert loaded.tolist() == [value[(int(a), name)] for a in bench.arch_id]
    capsys.readouterr()
    assert gts.main([*argv[:4], "--summary"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[:3] for line in printed[1:]] == [[s, "2", "3 (3)"] for s in SCORES]


def test_value_is_the_search_evaluators(gts, tmp_path: Path) -> None:
    """Weight seed 0 is what ``python -m spikenas search --dataset fashion-mnist --fast --evaluate`` computes (one
    torch thread, as the script runs), for a spike-kernel score and a backward-pass score."""
    table, out = _table(tmp_path), tmp_path / "values.csv"
    assert gts.main(["--tables", str(table), "--output", str(out), "--scores", "sahd,zico", "--seeds", "0", "--limit",
                     "2"]) == 0
    value = {(int(r["arch_id"]), r["score"]): float(r["value"]) for r in _rows(out)}
    assert sorted(value) == sorted((a, s) for a in CELLS[:2] for s in ("sahd", "zico"))
    cells = gts.read_table(table).cells[CELLS[1]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reductions over several threads round differently (zico's last digits)
    try:
        for score in ("sahd", "zico"):
            result = tmp_path / f"search_{score}.json"
            assert search_main(["--fast", "--dataset", "fashion-mnist", "--ops", "2O", "--cells", "1", "--score",
                                score, "--evaluate", cells[0].to_nb201(), "--output", str(result), "--quiet"]) == 0
            assert value[(CELLS[1], score)] == json.loads(result.read_text())["result"]["score"]
    finally:
        torch.set_num_threads(threads)


def test_two_cell_ids_decode_to_both_cells(gts, tmp_path: Path) -> None:
    recs = [Record("3O-2cell", (5, 700), 0)]
    rows = [{"id": recs[0].id, "history": [{"train_accuracy": 0.5, "train_loss": 1.0, "test_accuracy": 0.6,
                                            "test_loss": 1.0}], "test_accuracy": 0.7, "params": 1, "firing_rate": 0.1}]
    write_tables(tmp_path, recs, {"g": {"result": {"records": rows}}})
    table = gts.read_table(tmp_path / "3O-2cell.csv")
    assert (table.op_set, table.num_cells, table.arch_ids) == ("3O", 2, (5 + 700 * 3**6,))
    assert [g.to_nb201() for g in table.cells[table.arch_ids[0]]] == recs[0].nb201()


@pytest.mark.parametrize(("argv", "message"), [
    (["--tables", "{tmp}/missing.csv"], "benchmark file {tmp}/missing.csv not found"),
    (["--tables", "{table}", "--scores", "sahd,nope"], "nope"),
    (["--tables", "{table}", "--scores", "short_training"], "short_training is left out"),
    (["--tables", "{table}", "--scores", "conv_depth"], "conv_depth reads the cells only"),
    (["--tables", "{table}", "--seeds", "0,x"], "--seeds '0,x'"),
    (["--tables", "{table}", "--output", "a.csv", "b.csv"], "--output gives 2 file"),
    (["--tables", "{table}", "--output", "{table}"], "distinct files other than the tables"),
])
def test_bad_arguments_are_one_line_errors(gts, tmp_path: Path, argv: list[str], message: str) -> None:
    table = _table(tmp_path)
    with pytest.raises(SpikeNASError, match=re.escape(message.format(tmp=tmp_path))) as err:
        gts.main([a.format(table=table, tmp=tmp_path) for a in argv])
    assert "\n" not in str(err.value)
