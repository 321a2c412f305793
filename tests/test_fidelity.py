"""The fidelity study: its figures on a tiny benchmark file, and its one-line errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from spikenas.analyze import fidelity
from spikenas.analyze.__main__ import main
from tests.conftest import BENCH_DEV


def test_benchmark_percentile_and_selection() -> None:
    population = np.array([1.0, 2.0, 3.0, 4.0])
    assert fidelity.benchmark_percentile(4.0, population) == 87.5
    assert fidelity.benchmark_percentile(0.0, population) == 0.0
    score = np.array([0.1, 0.9, 0.9, 0.3])
    acc = np.array([4.0, 1.0, 2.0, 3.0])
    top1, top5, ties = fidelity.selection_percentiles(score, acc, population)
    assert (top1, top5, ties) == (12.5, 87.5, 2)  # ties keep sample order: record 1 first


def test_benchmark_percentile_is_the_mid_rank_percentile_for_scalars_and_arrays() -> None:
    population = np.array([3.0, 1.0, 2.0, 2.0, 5.0])  # unsorted, with a tie
    values = np.array([[2.0, 0.5], [5.0, 2.5]])
    expected = np.array([[100 * (1 + 0.5 * 2) / 5, 0.0], [100 * (4 + 0.5) / 5, 100 * 3 / 5]])
    np.testing.assert_array_equal(fidelity.benchmark_percentile(values, population), expected)
    for v, e in zip(values.ravel(), expected.ravel(), strict=True):
        out = fidelity.benchmark_percentile(v, population)
        assert isinstance(out, float) and out == e


def test_finite_for_ranking_puts_failures_last() -> None:
    v = fidelity.finite_for_ranking(np.array([2.0, -np.inf, -3.0, np.nan]))
    assert v[0] == 2.0 and v[2] == -3.0 and v[1] < -3.0 and v[3] < -3.0


def test_metrics_perfect_score() -> None:
    acc = np.array([10.0, 81.0, 85.0, 89.0, 83.0])
    params = np.array([1, 2, 3, 4, 5])
    m = fidelity.metrics(acc.copy(), acc, acc > 10, params, population=acc, population_params=params, budget=3)
    assert m["tau_all"] == pytest.approx(1.0) and m["tau_conn"] == pytest.approx(1.0)
    assert m["top1_pct"] == 90.0 and m["budget_top1_pct"] == pytest.approx(100 * 2.5 / 3)


def test_resolve_scores_groups() -> None:
    names = fidelity.resolve_scores("structure,sahd")
    assert names[:3] == ["params", "live_convs", "conv_depth"] and names[-1] == "sahd"
    assert "synflow" in fidelity.resolve_scores("gradients")


def _tiny_bench(tmp_path) -> str:
    if not BENCH_DEV.exists():
        pytest.skip(f"SpikeNAS-Bench dev split not found at {BENCH_DEV}")
    with open(BENCH_DEV) as f:
        rows = list(csv.reader(f))
    path = tmp_path / "bench.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([rows[0], *rows[1:400:40]])
    return str(path)


def test_fidelity_command_on_a_tiny_bench(tmp_path, cifar_sample_path) -> None:
    bench = _tiny_bench(tmp_path)
    out = tmp_path / "out"
    argv = ["fidelity", "--bench", bench, "--all", "--width", "2", "--timesteps", "2", "--batch-size", "8",
            "--scores", "sahd,hamming,sahd_live_rate,params,live_convs", "--data-dir", str(cifar_sample_path.parent),
            "--output-dir", str(out)]
    assert main(argv) == 0
    payload = json.loads((out / "fidelity.json").read_text())
    assert payload["num_records"] == 10 and payload["versions"]["torch"]
    assert [r["score"] for r in payload["table"]] == ["sahd", "hamming", "sahd_live_rate", "params", "live_convs"]
    assert all(-1.0 <= r["tau_all"] <= 1.0 for r in payload["table"])
    assert (out / "fidelity.md").read_text().count("| sahd |") == 1
    assert (out / "scatter_sahd.png").stat().st_size > 0
    cached = sorted((out / "cache").rglob("*.npz"))
    assert len(cached) == 10
    stamp = [p.stat().st_mtime_ns for p in cached]
    assert main([*argv, "--no-plots"]) == 0  # second run: everything from the cache
    assert [p.stat().st_mtime_ns for p in cached] == stamp
    again = json.loads((out / "fidelity.json").read_text())["table"]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in again] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in payload["table"]
    ]


@pytest.mark.parametrize("extra,message", [
    (["--scores", "nope"], "unknown score"),
    (["--sample", "1"], "--sample"),
    (["--budget-quantile", "0"], "--budget-quantile"),
])
def test_bad_input_is_one_line_error(tmp_path, capsys, extra, message) -> None:
    bench = _tiny_bench(tmp_path)
    assert main(["fidelity", "--bench", bench, *extra, "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_missing_bench_file(tmp_path, capsys) -> None:
    assert main(["fidelity", "--bench", str(tmp_path / "none.csv")]) == 2
    assert "not found" in capsys.readouterr().err


def test_budget_search_pick_follows_the_search_tie_breaks(tmp_path, cifar_sample_path) -> None:
    from spikenas import spikenas_bench
    from spikenas.scoring import ScoreConfig
    from spikenas.scoring.structural import conv_depth, live_skips

    records = spikenas_bench.load_bench(_tiny_bench(tmp_path))
    setting = fidelity.FidelitySetting(2, 2, 8, 1, "train", 0)
    budget = float(np.max(records.params))
    check = fidelity.budget_search_pick(records, budget, setting, data_dir=cifar_sample_path.parent,
                                        config=ScoreConfig(tie_break=("depth_skip",)))
    cells = records.genotypes()
    depth = [conv_depth(g) for g in cells]
    best = [i for i, d in enumerate(depth) if d == max(depth)]
    assert check["tied_at_top"] == len(best)
    chosen = next(i for i in best if int(records.arch_id[i]) == check["arch_id"])
    assert conv_depth(cells[chosen]) + 0.1 * live_skips(cells[chosen]) == max(
        conv_depth(cells[i]) + 0.1 * live_skips(cells[i]) for i in best
    )
    assert 0.0 <= check["percentile_in_budget"] <= 100.0 and check["records_in_budget"] == len(records)
