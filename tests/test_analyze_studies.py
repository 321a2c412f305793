"""The ops, scenarios and correlation studies end to end on tiny settings (digits, 1 epoch)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from spikenas.analyze.__main__ import main
from spikenas.analyze.correlation import correlations, sample_indices
from spikenas.analyze.ops import reduced_sets
from spikenas.analyze.report import write_tables
from spikenas.errors import SpikeNASError
from spikenas.ops import get_op_set
from spikenas.space import Genotype

pytest.importorskip("matplotlib", reason="the studies' plots need matplotlib (the 'plots' extra)")

TINY = [
    "--dataset", "digits", "--width", "2", "--hidden", "8", "--timesteps", "2", "--input-size", "8",
    "--score-batch", "16", "--epochs", "1", "--max-train-samples", "96", "--max-test-samples", "64",
    "--batch-size", "32", "--threads", "1", "--quiet",
]


def _rows(out):
    with open(out / "table.csv") as f:
        return list(csv.DictReader(f))


def test_reduced_sets_drop_one_op_each():
    sets = reduced_sets()
    full = get_op_set("5O")
    assert sets[0] == ("5O", None) and len(sets) == len(full) + 1
    for name, removed in sets[1:]:
        assert get_op_set(name) == tuple(o for o in full if o != removed)


def test_sample_indices_seeded_distinct_connected():
    a = sample_indices("5O", 10, seed=1)
    assert a == sample_indices("5O", 10, seed=1) and len(set(a)) == 10
    assert all(Genotype.from_index(i, "5O").is_connected() for i in a)
    with pytest.raises(SpikeNASError, match="--k"):
        sample_indices("2O", 65, seed=0)


def test_correlations_skip_infinite_scores():
    out = correlations([1.0, float("-inf"), 2.0, 3.0], [0.1, 0.9, 0.2, 0.3])
    assert out["n"] == 3 and out["kendall_tau"] == pytest.approx(1.0) and out["spearman_rho"] == pytest.approx(1.0)
    assert math.isnan(correlations([1.0], [0.5])["kendall_tau"])


def test_markdown_escapes_genotype_bars(tmp_path):
    md, _ = write_tables([{"cell": "|skip~0|", "x": 0.5}], ["cell", "x"], tmp_path)
    assert "\\|skip~0\\|" in md.read_text()


def test_scenarios_command(tmp_path):
    out = tmp_path / "sc"
    assert main(["scenarios", *TINY, "--cells-list", "1", "--op-sets", "2O", "--output-dir", str(out)]) == 0
    rows = _rows(out)
    assert [r["scenario"] for r in rows] == ["1 cell, 2O, no budget", "1 cell, 2O, budget"]
    assert rows[0]["budget"] == "" and int(rows[1]["budget"]) > 0
    assert int(rows[1]["params"]) <= int(rows[1]["budget"]) and rows[1]["meets_budget"] == "True"
    assert int(rows[0]["bytes_32"]) == 4 * int(rows[0]["params"]) == 4 * int(rows[0]["bytes_8"])
    assert (out / "accuracy_vs_memory.png").stat().st_size > 0 and (out / "search_time.png").exists()
    payload = json.loads((out / "results.json").read_text())
    assert {"config", "seed", "versions", "timings", "rows"} <= set(payload)
    # the network searched is the one trained: the recipe's, with the flags given applied to both
    assert payload["config"]["recipe"] == "digits" and payload["config"]["train"]["optimizer"] == "adamw"
    assert payload["config"]["trained_macro"]["width"] == 2 == payload["config"]["search"]["width"]
    # a rerun with --resume takes every row from its result file and computes nothing
    runs = sorted((out / "runs").glob("*.json"))
    assert [p.name for p in runs] == ["1cells-2O-budget.json", "1cells-2O-free.json"]
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert main(["scenarios", *TINY, "--cells-list", "1", "--op-sets", "2O", "--output-dir", str(out), "--resume"]) == 0
    assert _rows(out) == rows
    assert [p.stat().st_mtime_ns for p in runs] == stamps


def test_correlation_command(tmp_path):
    out = tmp_path / "corr"
    argv = ["correlation", *TINY, "--k", "3", "--ops", "2O", "--cells", "1", "--scores", "sahd", "params"]
    assert main([*argv, "--output-dir", str(out)]) == 0
    payload = json.loads((out / "results.json").read_text())
    assert len(payload["rows"]) == 3 and set(payload["summary"]) == {"sahd", "params"}
    assert all(c["n"] <= 3 for c in payload["summary"].values())
    assert all(r["params"] == float(r["score_params"]) and isinstance(r["params"], int) for r in payload["rows"])
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in payload["rows"])
    assert "Kendall tau-b" in (out / "table.md").read_text() and (out / "score_vs_accuracy.png").exists()
    # one result file per cell; --resume takes every row from them and computes nothing
    runs = sorted((out / "runs").glob("*.json"))
    assert sorted(p.name for p in runs) == sorted(f"cell-{r['index']}.json" for r in payload["rows"])
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert main([*argv, "--output-dir", str(out), "--resume"]) == 0
    assert json.loads((out / "results.json").read_text())["rows"] == payload["rows"]
    assert [p.stat().st_mtime_ns for p in runs] == stamps


def test_ops_command(tmp_path):
    out = tmp_path / "ops"
    assert main(["ops", *TINY, "--samples", "2", "--cells", "1", "--output-dir", str(out)]) == 0
    rows = _rows(out)
    assert [r["op_set"] for r in rows][0] == "5O" and len(rows) == 6
    assert float(rows[0]["d_score"]) == 0.0 and (out / "ops.png").exists()
    assert sorted(p.stem for p in (out / "runs").glob("*.json")) == sorted(r["op_set"] for r in rows)


def test_unknown_score_is_one_line(tmp_path, capsys):
    assert main(["correlation", *TINY, "--k", "3", "--scores", "nope", "--output-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("error:")


def test_bad_argument_is_one_line(tmp_path, capsys):
    assert main(["scenarios", *TINY, "--cells-list", "4", "--output-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --cells-list")
