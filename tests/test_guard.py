"""The rerank guard: its seed-noise table, the noise sources, and the guard's promise on SpikeNAS-Bench's dev curves
and on the Fashion-MNIST ground truth: the stage's pick is never worse than the training-free pick by more than
the seed noise, at any budget and tie seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spikenas import spikenas_bench
from spikenas.analyze import guard
from spikenas.analyze.ground_truth import records, write_tables
from spikenas.analyze.rerank import Curves, load_curves
from spikenas.errors import SpikeNASError
from spikenas.nas.rerank import RECOMMENDED, RerankSchedule
from spikenas.nas.seed_noise import EPOCHS, MEDIAN, statistic_noise
from spikenas.space import Genotype
from tests.conftest import BENCH_DEV

DEV_CURVES = BENCH_DEV.with_name("spikenas_bench_cifar10_dev_curves.csv.gz")
GROUND_TRUTH = Path(__file__).resolve().parents[1] / "docs" / "results" / "ground_truth"


@pytest.fixture(scope="module")
def dev() -> tuple[spikenas_bench.BenchRecords, Curves]:
    if not DEV_CURVES.exists():
        pytest.skip(f"SpikeNAS-Bench dev curves not found at {DEV_CURVES} (set SPIKENAS_SHARED)")
    return spikenas_bench.load_bench(BENCH_DEV), load_curves(DEV_CURVES)


def test_the_noise_table_is_what_the_dev_curves_measure(dev) -> None:
    noise = guard.noise_from_equivalents(*dev)
    assert len(noise.test) == 76_400
    for window, row in MEDIAN.items():
        measured = [np.median(noise.statistic_noise(RerankSchedule(top=1, epochs=(e,), window=window)))
                    for e in EPOCHS]
        assert row == pytest.approx(measured, abs=0.0051), window


def test_statistic_noise_takes_the_tabled_epoch_at_or_below() -> None:
    assert statistic_noise(6, 3) == MEDIAN[3][EPOCHS.index(6)]
    assert statistic_noise(7, 3) == MEDIAN[3][EPOCHS.index(6)]
    assert statistic_noise(500, 9) == MEDIAN[5][-1]
    with pytest.raises(SpikeNASError, match="epoch 0"):
        statistic_noise(0, 1)


def test_the_guard_holds_on_the_dev_curves_at_every_budget_and_tie_seed(dev) -> None:
    records, curves = dev
    noise = guard.noise_from_equivalents(records, curves)
    limit = np.percentile(noise.test_noise(), 90)
    schedules = list(dict.fromkeys([guard.DEFAULT_SCHEDULE, *RECOMMENDED.values()]))
    rows = guard.guard_rows(records, curves, noise, schedules, seeds=list(range(5)), ranking="search")
    auto = [r for r in rows if r["margin_label"] == "auto"]
    assert len(auto) == len(schedules) and all(r["cases"] == 45 for r in auto)
    assert min(r["min_diff"] for r in auto) >= -limit
    assert all(r["holds"] for r in auto)


@pytest.mark.skipif(not (GROUND_TRUTH / "noise_floor.csv").exists(), reason="ground-truth tables not committed")
def test_the_guard_holds_on_the_ground_truth() -> None:
    noise = guard.noise_from_floor(GROUND_TRUTH / "noise_floor.csv")
    limit = np.percentile(noise.test_noise(), 90)
    for name in ("2O-1cell", "3O-1cell", "3O-2cell"):
        table = spikenas_bench.load_bench(GROUND_TRUTH / f"{name}.csv")
        curves = load_curves(GROUND_TRUTH / f"{name}_curves.csv.gz")
        study = json.loads((GROUND_TRUTH / "guard" / name / "guard.json").read_text())  # its schedules
        schedules = [guard.parse_schedule(t) for t in study["config"]["schedule"]]
        rows = guard.guard_rows(table, curves, noise, schedules, seeds=list(range(5)), ranking="search")
        measured = [r for r in rows if r["margin_label"] == "noise median"]  # the margin this data's noise gives
        assert measured and all(r["holds"] and r["min_diff"] >= -limit for r in measured), (name, measured)


def test_equivalent_pairs_join_records_that_differ_on_dead_edges_only() -> None:
    # 5O-like codes of SpikeNAS-Bench: 0 zero, 1 skip, 2..4 convs. Edge (0,1) feeds node 1, which reaches the
    # output only through edges (1,2) and (1,3); with both zero, whatever (0,1) holds is dead.
    base = [3, 0, 2, 0, 0, 2]  # edges 01, 02, 03, 12, 13, 23
    other = [4, 0, 2, 0, 0, 2]
    live = [3, 0, 2, 2, 0, 2]
    ids = [sum(c * 5**e for e, c in enumerate(codes)) for codes in (base, other, live)]
    recs = spikenas_bench.BenchRecords(np.array(ids), np.array([base, other, live]), np.array([1, 1, 1]),
                                       np.array([80.0, 81.0, 82.0]))
    assert guard.equivalent_pairs(recs).tolist() == [[0, 1]]
    g = Genotype.from_index(ids[0], spikenas_bench.OP_SET)
    assert not g.live_edges()[0]


def test_noise_from_a_ground_truth_floor(tmp_path: Path) -> None:
    recs = records(["2O-1cell"], sample=1, sample_seed=0, noise_records=6)
    rng = np.random.default_rng(2)
    rows = [{"id": r.id, "test_accuracy": float(rng.random()), "params": 100, "firing_rate": 0.1,
             "history": [{"train_accuracy": 0.5, "train_loss": 1.0, "test_accuracy": float(rng.random()),
                          "test_loss": 1.0} for _ in range(3)]} for r in recs]
    write_tables(tmp_path, recs, {"g": {"result": {"records": rows}}})
    noise = guard.noise_from_floor(tmp_path / "noise_floor.csv")
    assert noise.test.shape == (6, 2) and noise.curves.shape == (6, 2, 3)
    by_id = {row["id"]: row for row in rows}
    first = [r for r in recs if r.seed == 1][0]
    twin = by_id[first.id.replace("_s1", "_s0")]
    assert noise.curves[0, 0].tolist() == pytest.approx([100 * h["test_accuracy"] for h in twin["history"]], abs=1e-3)
    assert len(noise.statistic_noise(RerankSchedule(top=2, epochs=(1, 3), window=2))) == 6
    with pytest.raises(SpikeNASError, match="not found"):
        guard.noise_from_floor(tmp_path / "missing" / "noise_floor.csv")


def test_schedule_text_and_its_errors() -> None:
    assert guard.parse_schedule("4:1,3:2:2") == RerankSchedule(top=4, epochs=(1, 3), eta=2, window=2)
    assert guard.parse_schedule("2:3") == RerankSchedule(top=2, epochs=(3,))
    with pytest.raises(SpikeNASError, match="TOP:E1,E2"):
        guard.parse_schedule("4")
    with pytest.raises(SpikeNASError, match="integers"):
        guard.parse_schedule("4:1,3:x")


def test_the_command_writes_its_report(tmp_path: Path) -> None:
    from spikenas.analyze.__main__ import main

    recs = records(["2O-1cell"], sample=1, sample_seed=0, noise_records=10)
    rng = np.random.default_rng(3)
    rows = []
    for r in recs:
        final = float(rng.uniform(0.6, 0.9))
        rows.append({"id": r.id, "test_accuracy": final, "params": 1000 + 10 * r.cells[0], "firing_rate": 0.1,
                     "history": [{"train_accuracy": 0.5, "train_loss": 1.0, "test_loss": 1.0,
                                  "test_accuracy": final * (1 - 0.3 / (e + 1)) + float(rng.normal(0, 0.01))}
                                 for e in range(3)]})
    write_tables(tmp_path, recs, {"g": {"result": {"records": rows}}})
    out = tmp_path / "out"
    files = ["--bench", str(tmp_path / "2O-1cell.csv"), "--curves", str(tmp_path / "2O-1cell_curves.csv.gz"),
             "--noise-floor", str(tmp_path / "noise_floor.csv"), "--output-dir", str(out), "--no-plot"]
    assert main(["guard", *files, "--schedule", "4:1,3:2:2", "--tie-seeds", "2"]) == 0
    result = json.loads((out / "guard.json").read_text())
    assert {"config", "seed", "versions", "timings"} <= set(result)
    assert [r["margin_label"] for r in result["rows"]] == ["none", "0", "auto", "noise median", "noise p90"]
    assert all(r["cases"] == 18 for r in result["rows"])
    assert main(["guard", *files, "--schedule", "4:1,6"]) == 2  # the curves end at epoch 3
