"""The ground-truth sweep: which networks it trains, the tables it writes, its noise floor, and a tiny real run."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from spikenas.analyze.ground_truth import (
    NOISE_SEED,
    SETS,
    Record,
    groups,
    network_macro,
    noise_floor,
    records,
    write_tables,
)
from spikenas.errors import SpikeNASError
from spikenas.space import Genotype
from spikenas.spikenas_bench import load_bench

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_records_cover_every_cell_and_a_seeded_sample() -> None:
    recs = records(["2O-1cell", "3O-1cell", "3O-2cell"], sample=30, sample_seed=4, noise_records=10)
    first = [r for r in recs if r.seed == 0]
    assert sorted(r.cells[0] for r in first if r.set == "2O-1cell") == list(range(64))
    assert sorted(r.cells[0] for r in first if r.set == "3O-1cell") == list(range(729))
    two = [r for r in first if r.set == "3O-2cell"]
    assert len(two) == 30 and all(len(r.cells) == 2 for r in two)
    assert len({r.cells for r in two}) > 25  # independent draws, few repeats
    noisy = [r for r in recs if r.seed == NOISE_SEED]
    assert len(noisy) == 10 and all(Record(r.set, r.cells, 0) in first for r in noisy)
    assert records(["3O-2cell"], sample=30, sample_seed=4, noise_records=0) != records(
        ["3O-2cell"], sample=30, sample_seed=5, noise_records=0)
    assert records(["3O-2cell"], sample=5, sample_seed=4, noise_records=2) == records(
        ["3O-2cell"], sample=5, sample_seed=4, noise_records=2)


def test_arch_id_is_the_benchmark_index_per_cell() -> None:
    r = Record("3O-2cell", (5, 700), 0)
    assert r.arch_id == 5 + 700 * 3**6
    assert r.nb201() == [Genotype.from_index(5, "3O").to_nb201(), Genotype.from_index(700, "3O").to_nb201()]
    assert Record("2O-1cell", (63,), 1).id == "2O-1cell_63_s1"


def test_groups_stack_records_of_one_set_and_seed() -> None:
    recs = records(["2O-1cell", "3O-2cell"], sample=10, sample_seed=0, noise_records=5)
    gs = groups(recs, 8)
    assert sum(len(g) for g in gs) == len(recs)
    assert all(len({(r.set, r.seed) for r in g}) == 1 and 1 <= len(g) <= 8 for g in gs)
    paired = {(r.set, r.cells) for r in recs if r.seed == NOISE_SEED}
    order = [(r.set, r.cells) in paired for g in gs for r in g]
    assert order == sorted(order, reverse=True) and sum(order) == 10  # both seeds of the 5 noise pairs first


def _fake_payloads(recs: list[Record], rng: np.random.Generator) -> dict:
    rows = []
    for r in recs:
        hist = [{"train_accuracy": float(rng.random()), "train_loss": 1.0, "test_accuracy": float(rng.random()),
                 "test_loss": 1.0} for _ in range(3)]
        rows.append({"id": r.id, "history": hist, "test_accuracy": float(rng.random()), "params": 1000 + r.arch_id,
                     "firing_rate": 0.1})
    return {"group0": {"result": {"records": rows}}}


def test_tables_follow_the_benchmark_layout(tmp_path: Path) -> None:
    recs = records(["2O-1cell", "3O-2cell"], sample=6, sample_seed=1, noise_records=4)
    payloads = _fake_payloads(recs, np.random.default_rng(0))
    written = write_tables(tmp_path, recs, payloads)
    assert written["2O-1cell.csv"] == 64 and written["3O-2cell.csv"] == 6 and written["noise_floor.csv"] == 4
    rows = list(csv.DictReader(open(tmp_path / "3O-2cell.csv")))
    for row in rows:
        arch = int(row["arch_id"])
        codes = [int(row[f"op{s}{d}"]) for s, d in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))]
        codes2 = [int(row[f"op{s}{d}_c2"]) for s, d in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))]
        assert arch == sum(c * 3**e for e, c in enumerate(codes)) + 3**6 * sum(c * 3**e for e, c in enumerate(codes2))
        assert row["op_set"] == "3O" and row["n_epochs_logged"] == "3"
    with gzip.open(tmp_path / "2O-1cell_curves.csv.gz", "rt") as f:
        curves = list(csv.DictReader(f))
    assert len(curves) == 64 * 3 and {c["epoch"] for c in curves} == {"0", "1", "2"}
    with gzip.open(tmp_path / "noise_floor_curves.csv.gz", "rt") as f:
        noisy = list(csv.DictReader(f))
    assert len(noisy) == 4 * 2 * 3 and {r["seed"] for r in noisy} == {"0", str(NOISE_SEED)}


def test_the_benchmark_reader_reads_the_tables(tmp_path: Path) -> None:
    recs = records(["2O-1cell", "3O-2cell"], sample=6, sample_seed=1, noise_records=0)
    payloads = _fake_payloads(recs, np.random.default_rng(0))
    write_tables(tmp_path, recs, payloads)
    by_id = {row["id"]: row for row in payloads["group0"]["result"]["records"]}
    for name, cells in (("2O-1cell", 1), ("3O-2cell", 2)):
        bench = load_bench(tmp_path / f"{name}.csv")
        mine = [r for r in recs if r.set == name]
        assert bench.op_set == SETS[name][0] and bench.cell_columns == cells
        assert [tuple(g.to_nb201() for g in n) for n in bench.networks()] == [tuple(r.nb201()) for r in mine]
        assert bench.test_acc == pytest.approx([100 * by_id[r.id]["test_accuracy"] for r in mine], abs=1e-3)
        assert bench.macro() == network_macro(cells) and bench.macro().num_cells == cells
        assert bench.subset(np.array([1])).networks() == bench.networks()[1:2]
    two = load_bench(tmp_path / "3O-2cell.csv")
    with pytest.raises(SpikeNASError, match="use networks"):
        two.genotypes()
    text = (tmp_path / "3O-2cell.csv").read_text().splitlines()
    (tmp_path / "mixed.csv").write_text("\n".join([*text[:2], text[2].rsplit(",", 1)[0] + ",2O", *text[3:]]))
    with pytest.raises(SpikeNASError, match=r"op_set holds \['2O', '3O'\]"):
        load_bench(tmp_path / "mixed.csv")
    head, first = text[0].split(","), text[1].split(",")
    first[head.index("op01_c2")] = str((int(first[head.index("op01_c2")]) + 1) % 3)
    (tmp_path / "bad.csv").write_text("\n".join([text[0], ",".join(first)]))
    with pytest.raises(SpikeNASError, match=f"arch_id {first[0]} disagrees"):
        load_bench(tmp_path / "bad.csv")


def test_noise_floor_is_kendall_tau_between_seeds() -> None:
    recs = records(["3O-1cell"], sample=1, sample_seed=0, noise_records=40)
    payloads = _fake_payloads(recs, np.random.default_rng(1))
    acc = {row["id"]: row["test_accuracy"] for row in payloads["group0"]["result"]["records"]}
    floor = noise_floor(recs, payloads)
    noisy = [r for r in recs if r.seed == NOISE_SEED]
    a = [acc[Record(r.set, r.cells, 0).id] for r in noisy]
    b = [acc[r.id] for r in noisy]
    assert floor["3O-1cell"]["pairs"] == 40
    assert floor["all"]["kendall_tau_b"] == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is absent (apt-get install dataset-fashion-mnist)")
def test_a_tiny_ground_truth_runs_and_resumes(tmp_path: Path) -> None:
    from spikenas.analyze.__main__ import main

    argv = ["ground_truth", "--output-dir", str(tmp_path), "--sets", "2O-1cell", "--stack", "4", "--epochs", "1",
            "--max-train-samples", "128", "--val-samples", "64", "--noise-records", "2"]
    assert main([*argv, "--limit", "1"]) == 0
    first = json.loads((tmp_path / "noise_floor.json").read_text())
    assert first["groups_finished"] == 1
    assert main([*argv, "--limit", "0"]) == 0  # gathers only
    assert json.loads((tmp_path / "noise_floor.json").read_text())["groups_finished"] == 1
    assert main([*argv, "--limit", "3"]) == 0  # the finished group is not retrained
    # Three groups: the two noise-floor records with seed 0, then with seed 1, then four more records.
    rows = list(csv.DictReader(open(tmp_path / "2O-1cell.csv")))
    assert len(rows) == 6 and all(0.0 <= float(r["test_acc"]) <= 100.0 for r in rows)
    assert json.loads((tmp_path / "noise_floor.json").read_text())["noise_floor"]["all"]["pairs"] == 2
