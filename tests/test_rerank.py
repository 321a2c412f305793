"""The multi-fidelity stage: successive-halving schedule, benchmark replay, resume and a live rerank on digits."""

from __future__ import annotations

import csv
import gzip
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from spikenas.analyze import rerank as replay_study
from spikenas.errors import SpikeNASError
from spikenas.nas import rerank
from spikenas.nas.engine import CandidateRecord
from spikenas.nas.rerank import RerankConfig, RerankSchedule, fit_schedule, run_schedule, training_free_ranking
from spikenas.nas.seed_noise import statistic_noise
from spikenas.space import Genotype
from spikenas.spikenas_bench import OP_SET, genotype


def _monotone_curves(n: int, epochs: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Curves ``[n, epochs]`` rising to a final accuracy ``[n]``, the same shape for every candidate (so every
    epoch ranks the candidates as the final one does)."""
    rng = np.random.default_rng(seed)
    final = rng.permutation(np.linspace(60.0, 90.0, n))
    shape = 1.0 - np.exp(-np.arange(1, epochs + 1) / 5.0)
    return final, final[:, None] * shape[None, :]


def test_schedule_spends_within_budget_and_counts_epochs() -> None:
    for budget in (2, 7, 16, 62, 128, 500):
        for epochs in ((1,), (1, 3), (1, 3, 10), (2, 4, 8, 16)):
            for eta in (2, 3, 4):
                try:
                    schedule = fit_schedule(budget, epochs=epochs, eta=eta)
                except SpikeNASError:
                    assert RerankSchedule(top=2, epochs=epochs, eta=eta).epochs_needed() > budget
                    continue
                assert schedule.epochs_needed() <= budget
                bigger = RerankSchedule(top=schedule.top + 1, epochs=epochs, eta=eta)
                assert bigger.epochs_needed() > budget or schedule.top == rerank.MAX_TOP
                trained: dict[int, int] = {}

                def evaluate(c: int, e: int, trained: dict[int, int] = trained) -> float:
                    trained[c] = max(trained.get(c, 0), e)
                    return float(c % 7)

                outcome = run_schedule(list(range(300)), schedule, evaluate)
                assert outcome.epochs_spent == schedule.epochs_needed(300) == sum(trained.values())
                assert outcome.epochs_spent <= budget


def test_best_final_candidate_wins_when_curves_are_monotone() -> None:
    final, curves = _monotone_curves(40, 30, seed=3)
    for schedule in (RerankSchedule(top=40, epochs=(1, 3, 10), eta=4), RerankSchedule(top=40, epochs=(2,)),
                     RerankSchedule(top=40, epochs=(1, 5, 20, 30), eta=2, window=3)):
        outcome = run_schedule(list(range(40)), schedule, lambda c, e: curves[c, e - 1])
        assert outcome.chosen == int(np.argmax(final))
    # Only the top of the ranking is trained: the best of the first 8.
    outcome = run_schedule(list(range(40)), RerankSchedule(top=8, epochs=(1, 3), eta=2), lambda c, e: curves[c, e - 1])
    assert outcome.chosen == int(np.argmax(final[:8]))
    assert [r["candidates"] for r in outcome.rungs][0] == list(range(8))


def test_ties_keep_the_training_free_order_and_rungs_shrink() -> None:
    outcome = run_schedule(list("abcdefgh"), RerankSchedule(top=8, epochs=(1, 2, 3), eta=2), lambda c, e: 0.5)
    assert outcome.chosen == 0
    assert [len(r["candidates"]) for r in outcome.rungs] == [8, 4, 2]
    assert outcome.epochs_spent == 8 + 4 + 2
    assert RerankSchedule(top=3, epochs=(1, 5), eta=4).rung_sizes() == [3]  # a rung of one is dropped


def test_guard_keeps_the_training_free_pick_unless_beaten_by_more_than_the_margin() -> None:
    # Candidate 0 looks worst after one epoch and is 1.5 points behind candidate 3 at the end.
    curves = {0: [50.0, 80.0], 1: [60.0, 70.0], 2: [61.0, 75.0], 3: [62.0, 81.5]}

    def evaluate(c: int, e: int) -> float:
        return curves[c][e - 1]

    plain = run_schedule(list(range(4)), RerankSchedule(top=4, epochs=(1, 2), eta=2, window=1), evaluate)
    assert plain.rungs[1]["candidates"] == [3, 2] and plain.chosen == 3
    for margin, chosen in ((2.0, 0), (1.0, 3), (0.0, 3)):
        outcome = run_schedule(list(range(4)), RerankSchedule(top=4, epochs=(1, 2), eta=2, window=1, margin=margin),
                               evaluate)
        assert outcome.rungs[1]["candidates"] == [3, 0]  # the pick takes the last place kept, the rung size stays
        assert outcome.epochs_spent == plain.epochs_spent
        assert outcome.chosen == chosen and outcome.kept_training_free == (chosen == 0)


def test_guarded_pick_is_never_behind_the_training_free_pick() -> None:
    rng = np.random.default_rng(11)
    for trial in range(200):
        n, epochs = int(rng.integers(2, 12)), int(rng.integers(3, 9))
        curves = rng.normal(70.0, 5.0, (n, epochs))
        margin = float(rng.choice([0.0, 0.5, 2.0, 6.0]))
        rungs = tuple(sorted(rng.choice(np.arange(1, epochs + 1), size=int(rng.integers(1, 4)), replace=False)))
        schedule = RerankSchedule(top=n, epochs=tuple(int(e) for e in rungs), eta=int(rng.integers(2, 4)),
                                  window=int(rng.integers(1, 4)), margin=margin)
        outcome = run_schedule(list(range(n)), schedule, lambda c, e, curves=curves: float(curves[c, e - 1]))
        assert all(0 in r["candidates"] for r in outcome.rungs), trial
        last = outcome.rungs[-1]
        stat = dict(zip(last["candidates"], last["statistic"], strict=True))
        final = dict(zip(last["candidates"], last["accuracies"], strict=True))
        winner = max(last["candidates"], key=lambda c: (stat[c], -last["candidates"].index(c)))
        assert outcome.chosen == (winner if final[winner] - final[0] > margin else 0), trial


def test_guard_compares_final_accuracies_not_the_window_mean() -> None:
    """A slow starter (the training-free pick) trails the window mean by more than any margin and finishes
    ahead; the guard keeps it. Curves of two 2-cell 3O networks of the Fashion-MNIST ground truth."""
    curves = {0: [9.4, 28.5, 65.9], 1: [14.8, 50.1, 63.1]}
    schedule = RerankSchedule(top=2, epochs=(3,), window=2)
    assert run_schedule([0, 1], schedule, lambda c, e: curves[c][e - 1]).chosen == 1  # 56.6 against 47.2
    for margin in (0.0, 2.58, 4.72):
        outcome = run_schedule([0, 1], replace(schedule, margin=margin), lambda c, e: curves[c][e - 1])
        assert outcome.chosen == 0 and outcome.kept_training_free


def test_schedule_errors_name_the_bad_value() -> None:
    with pytest.raises(SpikeNASError, match="epochs must increase"):
        RerankSchedule(top=4, epochs=(3, 1))
    with pytest.raises(SpikeNASError, match="eta"):
        RerankSchedule(top=4, epochs=(1, 2), eta=1)
    with pytest.raises(SpikeNASError, match="window"):
        RerankSchedule(top=4, epochs=(1,), window=0)
    with pytest.raises(SpikeNASError, match="budget 1 epochs"):
        fit_schedule(1, epochs=(1, 3, 10))
    with pytest.raises(SpikeNASError, match="--rerank-budget 10"):
        RerankConfig(top=32, epochs=(1, 3, 10), budget=10)
    with pytest.raises(SpikeNASError, match="--rerank-top or --rerank-budget"):
        RerankConfig(epochs=(1,))
    with pytest.raises(SpikeNASError, match="val_fraction"):
        RerankConfig(top=2, val_fraction=1.0)
    with pytest.raises(SpikeNASError, match="margin must be a finite number >= 0.*-1"):
        RerankConfig(top=2, margin=-1.0)
    with pytest.raises(SpikeNASError, match="margin must be a number >= 0, 'auto' or None, got 'wide'"):
        RerankConfig(top=2, margin="wide")
    assert RerankConfig(top=4).schedule().margin == statistic_noise(6, 1) == 2.42  # the default schedule, 4@1 -> 2@6
    assert RerankConfig(top=4, epochs=(1, 30), window=2).schedule().margin == statistic_noise(30, 1)
    assert RerankConfig(top=2, epochs=(1, 30), margin=0.5).schedule().margin == 0.5
    assert RerankConfig(budget=16, margin=None).schedule() == rerank.RECOMMENDED[16]


def test_training_free_ranking_follows_the_search_order() -> None:
    g = [Genotype.from_index(i, "3O") for i in range(6)]
    recs = [
        CandidateRecord((g[0],), 50, 2.0, "ok"), CandidateRecord((g[1],), 40, 3.0, "ok"),
        CandidateRecord((g[2],), 30, 3.0, "ok"), CandidateRecord((g[3],), 20, 3.0, "ok"),
        CandidateRecord((g[4],), 10, float("-inf"), "disconnected"), CandidateRecord((g[5],), 99, 3.0, "ok"),
    ]
    tie = {recs[1].cells: 1.0, recs[2].cells: 1.0, recs[3].cells: 0.0, recs[5].cells: 1.0}
    asked = []

    def value(r: CandidateRecord, name: str) -> float:
        asked.append(r.cells)
        return tie[r.cells]

    ranked = training_free_ranking(recs, tie_break=("t",), tie_value=value, fits=lambda r: r.params < 90)
    # score, then the tie-break, then the fewest parameters; over budget and failed records are left out
    assert ranked == [recs[2], recs[1], recs[3], recs[0]]
    assert recs[4].cells not in asked


# ---- the replay --------------------------------------------------------------------------------------------


def _write_bench(tmp_path, n: int = 80, epochs: int = 24, seed: int = 0):
    """A SpikeNAS-Bench-like CSV and curves file whose validation curves rise monotonically to test_acc."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(5**6, size=n, replace=False)
    bench, curves = tmp_path / "bench.csv", tmp_path / "curves.csv.gz"
    with open(bench, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_id", "op01", "op02", "op03", "op12", "op13", "op23", "params", "test_acc"])
        for a in ids:
            ops = [(int(a) // 5**k) % 5 for k in range(6)]
            w.writerow([int(a), *ops, int(rng.choice([100, 200, 300, 400])), round(float(rng.uniform(80, 90)), 2)])
    acc = {}
    with open(bench) as f:
        for row in csv.DictReader(f):
            acc[int(row["arch_id"])] = float(row["test_acc"])
    with gzip.open(curves, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_id", "epoch", "train_acc", "train_loss", "val_acc", "val_loss"])
        for a, t in acc.items():
            for e in range(epochs):
                w.writerow([a, e, 0.0, 0.0, round(t * (1 - math.exp(-(e + 1) / 4.0)), 4), 0.0])
    return bench, curves, acc


def test_fast_replay_matches_run_schedule(tmp_path) -> None:
    bench_path, curves_path, _ = _write_bench(tmp_path)
    bench = replay_study.spikenas_bench.load_bench(bench_path)
    curves = replay_study.load_curves(curves_path)
    noise = np.random.default_rng(1).normal(0, 3, curves.val_acc.shape)
    noisy = replay_study.Curves(curves.arch_id, curves.val_acc + noise)
    problem = replay_study.make_problem(bench, noisy, seeds=[0, 1, 2], depth=8)
    for schedule in (RerankSchedule(top=8, epochs=(1, 3, 10), eta=2), RerankSchedule(top=5, epochs=(4,)),
                     RerankSchedule(top=8, epochs=(2, 6), eta=3, window=3),
                     RerankSchedule(top=8, epochs=(1, 3, 10), eta=2, margin=1.5),
                     RerankSchedule(top=6, epochs=(1, 6), eta=2, window=3, margin=0.0),
                     RerankSchedule(top=8, epochs=(2,), margin=4.0)):
        pct, spent = replay_study.replay_fast(problem, schedule)
        for s in range(3):
            rows = replay_study.replay(problem, schedule, seed_index=s)
            assert [r["percentile"] for r in rows] == pytest.approx(list(pct[:, s]))
            assert all(r["epochs_spent"] == spent[0, 0] for r in rows)


def test_replay_study_on_a_synthetic_benchmark(tmp_path) -> None:
    bench_path, curves_path, acc = _write_bench(tmp_path)
    out = tmp_path / "out"
    code = replay_study.main([
        "--bench", str(bench_path), "--curves", str(curves_path), "--folds", "2", "--tie-seeds", "2",
        "--max-epochs", "16", "--top", "4", "--epochs", "1,3", "--eta", "2", "--output-dir", str(out), "--no-plot",
    ])
    assert code == 0
    result = json.loads((out / "rerank.json").read_text())
    assert {"config", "seed", "versions", "timings"} <= set(result)
    assert result["whole"]["schedule"]["epochs_needed"] == 4 * 1 + 2 * 2
    for row in result["whole"]["budgets"]:
        # monotone curves: the pick is the most accurate of the ranking's top 4 within budget
        top4 = [a for a in row["rungs"][0]["arch_ids"]]
        assert row["arch_id"] == max(top4, key=lambda a: acc[a])
        assert row["epochs_spent"] <= 8
    cv = result["cross_validation"]
    assert {r["fold"] for r in cv} == {0, 1}
    assert all(r["epochs_spent"] <= r["cap"] <= 16 for r in cv)
    assert "| cap | fold |" in (out / "rerank.md").read_text()


def test_replay_study_on_folds_too_small_for_a_cap(tmp_path) -> None:
    bench_path, curves_path, _ = _write_bench(tmp_path, n=10, epochs=3)
    out = tmp_path / "out"
    assert replay_study.main(["--bench", str(bench_path), "--curves", str(curves_path), "--folds", "5",
                              "--max-epochs", "8", "--top", "2", "--epochs", "1,3", "--output-dir", str(out),
                              "--no-plot"]) == 0
    result = json.loads((out / "rerank.json").read_text())
    assert all(r["epochs_spent"] <= r["cap"] for r in result["cross_validation"])


def test_load_curves_rejects_gaps(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("arch_id,epoch,val_acc\n1,0,10\n1,2,12\n")
    with pytest.raises(SpikeNASError, match="arch_id 1"):
        replay_study.load_curves(path)
    with pytest.raises(SpikeNASError, match="not found"):
        replay_study.load_curves(tmp_path / "missing.csv")


def test_conv_depth_ranking_is_seeded() -> None:
    from spikenas.spikenas_bench import BenchRecords

    ids = np.arange(0, 5**6, 97)
    recs = BenchRecords(ids, np.array([[(a // 5**k) % 5 for k in range(6)] for a in ids]), ids * 0 + 1, ids * 0.0)
    a, b = replay_study.conv_depth_ranking(recs, 0), replay_study.conv_depth_ranking(recs, 0)
    assert (a == b).all() and sorted(a.tolist()) == list(range(len(ids)))
    depth = [replay_study.conv_depth(genotype(int(i))) for i in ids[a]]
    assert depth == sorted(depth, reverse=True)
    assert genotype(int(ids[1])).index(OP_SET) == ids[1]
    order = replay_study.search_ranking(recs, 0)
    assert sorted(order.tolist()) == list(range(len(ids)))
    depth = [replay_study.conv_depth(genotype(int(i))) for i in ids[order]]
    assert depth == sorted(depth, reverse=True)  # the search's order starts with its score


# ---- the live stage ----------------------------------------------------------------------------------------


def _records(n: int) -> list[CandidateRecord]:
    return [CandidateRecord((Genotype.from_index(i, "2O"),) * 2, 100 + i, float(n - i), "ok") for i in range(n)]


def test_interrupted_rerank_does_not_retrain_finished_runs(tmp_path, monkeypatch) -> None:
    calls: list[tuple[str, int]] = []
    fail = {"at": 3}

    def fake_task(*, cells, macro, train, dataset, data_dir, val_fraction, stop_epoch, checkpoint_dir, seed=0):
        calls.append((checkpoint_dir, stop_epoch))
        if len(calls) == fail["at"]:
            raise RuntimeError("killed")
        quality = sum(map(ord, cells[0])) % 97 / 100
        return {"val_accuracy": [quality * e / stop_epoch for e in range(1, stop_epoch + 1)], "history": [],
                "epochs_trained": stop_epoch}

    monkeypatch.setattr(rerank, "rerank_task", fake_task)
    config = RerankConfig(top=6, epochs=(1, 2), eta=2)
    kwargs = dict(config=config, macro={}, dataset="digits", data_dir=None, seed=0, directory=tmp_path / "rr",
                  progress=False)
    with pytest.raises(SpikeNASError, match="1 sweep run"):
        rerank.live_rerank(_records(8), **kwargs)
    first = list(calls)
    assert len(first) == 6  # every run of the rung was tried; one failed
    calls.clear()
    fail["at"] = -1
    chosen, report = rerank.live_rerank(_records(8), resume=True, **kwargs)
    assert calls[0] == first[2]  # only the failed run of rung 1 is redone ...
    assert all(c[1] == 2 for c in calls[1:])  # ... then rung 2
    assert report["epochs_spent"] == 6 * 1 + 3 * 1
    # The guard compares fractions with a margin in points: candidate 0 stays unless beaten by more than it.
    last = report["rungs"][-1]
    stat = dict(zip(last["candidates"], last["statistic"], strict=True))
    final = dict(zip(last["candidates"], last["accuracies"], strict=True))
    winner = max(stat, key=stat.get)
    lead, margin = 100 * (final[winner] - final[0]), statistic_noise(2, 1)  # accuracy after the last epoch
    assert report["guard"]["margin"] == margin
    assert report["chosen_rank"] == (0 if lead <= margin else winner)
    assert 0 in report["rungs"][-1]["candidates"]
    calls.clear()
    again, _ = rerank.live_rerank(_records(8), resume=True, **kwargs)
    assert calls == [] and again is not None and again.cells == chosen.cells
    calls.clear()
    rerank.live_rerank(_records(8), resume=False, **kwargs)  # without resume it starts over
    assert len(calls) == 6 + 3


def test_live_rerank_on_digits_through_the_cli(tmp_path) -> None:
    from spikenas.nas.__main__ import main

    out = tmp_path / "r.json"
    args = ["--fast", "--width", "2", "--hidden", "8", "--timesteps", "2", "--input-size", "8", "--rerank-top", "3",
            "--rerank-epochs", "1", "--rerank-train-samples", "48", "--output", str(out), "--quiet"]
    assert main(args) == 0
    payload = json.loads(out.read_text())
    rr = payload["rerank"]
    assert rr["schedule"]["rung_sizes"] == [3] and rr["epochs_spent"] == 3 == rr["epochs_trained_this_run"]
    assert len(rr["candidates"]) == 3 and sum(c["chosen"] for c in rr["candidates"]) == 1
    assert all(0.0 <= c["val_accuracy"] <= 1.0 for c in rr["candidates"])
    chosen = next(c for c in rr["candidates"] if c["chosen"])
    assert [c["nb201"] for c in payload["result"]["cells"]] == chosen["cells"]
    assert payload["result"]["chosen_by"] == "rerank"
    assert rr["validation"]["split"] == "train"
    # a rerun with --resume retrains nothing
    assert main([*args, "--resume"]) == 0
    assert json.loads(out.read_text())["rerank"]["epochs_trained_this_run"] == 0


def test_calibration_measures_the_guard_margin_of_the_rerank_stage(tmp_path, capsys) -> None:
    """With --calibrate, the auto margin is the calibration's median seed difference on this data; a margin
    given on the command line stays as given; without calibration auto is the SpikeNAS-Bench prior."""
    from spikenas.nas.__main__ import main
    from spikenas.nas.seed_noise import statistic_noise

    out = tmp_path / "r.json"
    base = ["--fast", "--width", "2", "--hidden", "8", "--timesteps", "2", "--input-size", "8", "--rerank-top", "3",
            "--rerank-epochs", "1", "--rerank-train-samples", "48", "--output", str(out), "--quiet"]
    calibrate = ["--calibrate", "3", "--calibrate-epochs", "1", "--calibrate-train-samples", "48"]
    assert main([*base, *calibrate]) == 0
    payload = json.loads(out.read_text())
    rows = payload["calibration"]["candidates"]
    differences = [abs(r["val_accuracy"]["0"] - r["val_accuracy"]["1"]) for r in rows]
    guard = payload["rerank"]["guard"]
    assert guard["margin"] == pytest.approx(100 * float(np.median(differences)))
    assert guard["source"].startswith("calibration: the median seed difference of its 3 candidates after 1 epochs")
    assert payload["rerank"]["config"]["margin"] == pytest.approx(guard["margin"])
    assert f"guard margin {guard['margin']:.2f} points (calibration" in capsys.readouterr().out

    assert main([*base, *calibrate, "--rerank-margin", "1.5", "--resume"]) == 0
    guard = json.loads(out.read_text())["rerank"]["guard"]
    assert guard["margin"] == 1.5 and guard["source"] == "given: --rerank-margin"

    assert main(base) == 0
    rr = json.loads(out.read_text())["rerank"]
    noise = statistic_noise(rr["schedule"]["epochs"][-1], 1)
    assert rr["guard"]["margin"] == pytest.approx(noise) and rr["guard"]["source"].startswith("auto: ")


def test_cli_rerank_errors_are_one_line(tmp_path, capsys) -> None:
    from spikenas.nas.__main__ import main

    out = tmp_path / "r.json"
    assert main(["--fast", "--rerank-top", "4", "--rerank-epochs", "3,1", "--quiet", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "epochs must increase" in err[0]
    assert main(["--fast", "--rerank-eta", "3", "--quiet", "--output", str(out)]) == 2
    assert "--rerank-top or --rerank-budget" in capsys.readouterr().err
