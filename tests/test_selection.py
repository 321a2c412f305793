"""Selection protocol: the shared search ordering, its tie handling, the k-fold split and the selection study."""

from __future__ import annotations

import csv
import itertools
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from spikenas import spikenas_bench
from spikenas.analyze import selection
from spikenas.analyze.__main__ import main
from spikenas.analyze.fidelity import benchmark_percentile
from spikenas.errors import SpikeNASError
from spikenas.memory import network_params
from spikenas.nas import consecutive_search, engine, ordering
from spikenas.nas.engine import Evaluator
from spikenas.nas.space_api import CellSpace
from spikenas.neuron import NeuronConfig
from spikenas.scoring import ScoreConfig, get_score
from spikenas.scoring.config import DEFAULT_TIE_BREAK
from spikenas.scoring.structural import conv_depth, threshold_rise
from spikenas.space import EDGES, Genotype
from spikenas.stats import kendall_tau

K = len(spikenas_bench.THRESHOLDS) + 2  # ops of the benchmark's op set


@dataclass(eq=False)
class Rec:
    score: float
    params: int
    name: str
    tie: dict[str, float] = field(default_factory=dict)
    cells: tuple[Genotype, ...] = ()

    def __post_init__(self) -> None:
        self.cells = (Genotype.from_index(sum(map(ord, self.name)) % 729, "3O"),)


def _value(record: Rec, name: str) -> float:
    return record.tie[name]


# ------------------------------------------------------------------------------------------ the tie handling


def test_resolve_ties_applies_tie_breaks_then_fewest_params_then_a_seeded_draw() -> None:
    a = Rec(3.0, 20, "a", {"t1": 1.0, "t2": 0.0})
    b = Rec(3.0, 10, "b", {"t1": 2.0, "t2": 5.0})
    c = Rec(3.0, 30, "c", {"t1": 2.0, "t2": 5.0})
    d = Rec(3.0, 10, "d", {"t1": 2.0, "t2": 5.0})
    res = ordering.resolve_ties([a, b, c, d], ("t1", "t2"), _value, seed=0)
    assert res.decided_by == ordering.DRAW and res.smallest == [b, d]  # b and d have 10 params: a draw
    assert res.pick is min([b, d], key=lambda r: ordering.draw_key(r.cells, 0))
    assert res.stages == [("t1", 3), ("t2", 3)] and res.remaining == [b, c, d]
    assert res.entering == [[a, b, c, d], [b, c, d]]
    # The draw is a fixed key per candidate: the same pick whatever the order or the other candidates.
    assert ordering.resolve_ties([d, c, b], ("t1",), _value, seed=0).pick is res.pick
    picks = {ordering.resolve_ties([b, d], (), _value, seed=s).pick.name for s in range(20)}
    assert picks == {"b", "d"}  # other seeds draw otherwise
    res = ordering.resolve_ties([a, c, d], ("t1",), _value)
    assert res.pick is d and res.decided_by == ordering.FINAL_RULE
    res = ordering.resolve_ties([a, b], ("t1", "t2"), _value)
    assert res.pick is b and res.decided_by == "t1" and res.stages == [("t1", 1)]  # t2 is never computed
    assert ordering.resolve_ties([a], ("t1",), _value).decided_by == "score"
    summary = ordering.resolve_ties([a, b, c, d], ("t1",), _value).summary()
    assert summary["tied_at_top"] == 4 and summary["tied_after_tie_breaks"] == 3
    assert summary["with_fewest_params"] == 2 and summary["decided_by"] == ordering.DRAW
    assert summary["stages"] == [{"tie_break": "t1", "left": 3}] and "fewest parameters" in summary["final_rule"]


def test_resolve_ties_edge_cases() -> None:
    with pytest.raises(SpikeNASError, match="equal scores"):
        ordering.resolve_ties([Rec(1.0, 1, "a"), Rec(2.0, 1, "b")], (), _value)
    with pytest.raises(SpikeNASError, match="tied"):
        ordering.resolve_ties([], (), _value)
    nan = Rec(1.0, 5, "nan", {"t": float("nan")})
    low = Rec(1.0, 9, "low", {"t": -1.0})
    assert ordering.resolve_ties([nan, low], ("t",), _value).pick is low  # an undefined value ranks last
    failed = [Rec(float("-inf"), 9, "x"), Rec(float("-inf"), 1, "y")]
    res = ordering.resolve_ties(failed, ("t",), _value)  # failed candidates: no tie-break is computed
    assert res.stages == [] and res.pick.name == "y"


def test_leaders_keep_the_top_ties_in_offer_order() -> None:
    leaders = ordering.Leaders()
    recs = [Rec(1.0, 1, "a"), Rec(2.0, 1, "b"), Rec(2.0, 1, "c"), Rec(0.5, 1, "d"), Rec(2.0, 1, "e")]
    for r in recs:
        leaders.offer(r)
    leaders.offer(recs[2])  # offered twice, kept once
    assert [r.name for r in leaders.tied] == ["b", "c", "e"] and leaders.first.name == "b"
    assert engine.Leaders is ordering.Leaders  # the engine's leaders are the shared ones


def test_ordering_rank_is_lexicographic_and_its_top_holds_the_pick() -> None:
    score = np.array([1.0, 2.0, 2.0, 2.0, np.nan])
    tie = np.array([9.0, 0.0, 1.0, 1.0, 9.0])
    params = np.array([1, 1, 7, 3, 1])
    assert ordering.ordering_rank(score, [tie]).tolist() == [2, 3, 4, 4, 1]
    assert ordering.ordering_rank(score, [tie], params).tolist() == [2, 3, 4, 5, 1]
    recs = [Rec(float(s), int(p), str(i), {"t": float(t)})
            for i, (s, t, p) in enumerate(zip(score, tie, params, strict=True))]
    top = [r for r in recs if r.score == 2.0]
    pick = ordering.resolve_ties(top, ("t",), _value).pick
    rank = ordering.ordering_rank(score, [tie], params)
    assert rank[int(pick.name)] == rank.max()
    with pytest.raises(SpikeNASError, match="one length"):
        ordering.ordering_rank(score, [tie[:3]])


def test_search_order_agrees_with_resolve_ties_and_the_rank() -> None:
    rng = np.random.default_rng(0)
    recs = [Rec(float(rng.integers(3)), int(rng.integers(1, 4)), f"r{i}", {"t": float(rng.integers(2))})
            for i in range(40)]
    asked = []

    def value(r: Rec, name: str) -> float:
        asked.append(r.name)
        return r.tie[name]

    order = ordering.search_order(recs, ("t",), value, seed=3)
    assert sorted(r.name for r in order) == sorted(r.name for r in recs)
    top = [r for r in recs if r.score == max(x.score for x in recs)]
    assert order[0] is ordering.resolve_ties(top, ("t",), _value, seed=3).pick
    index = {r.name: i for i, r in enumerate(recs)}
    rank = ordering.ordering_rank(np.array([r.score for r in recs]), [np.array([r.tie["t"] for r in recs])],
                                  np.array([r.params for r in recs]))
    ranks = [rank[index[r.name]] for r in order]
    assert all(a >= b for a, b in zip(ranks, ranks[1:], strict=False))  # the rank never rises along the order
    asked.clear()
    head = ordering.search_order(recs, ("t",), value, seed=3, limit=1)
    assert head[0] is order[0] and set(asked) <= {r.name for r in top}  # tie values only where they matter


def test_search_resolution_matches_the_search_and_reports_the_tied_set(tiny_macro) -> None:
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 1, 8, 8, generator=gen)]
    ev = Evaluator(tiny_macro, batches, ScoreConfig(tie_break=("live_skips",)), seed=0)
    result = consecutive_search(CellSpace(tiny_macro, op_set="2O"), ev, progress=False)
    tied = [r for r in ev.records if r.score == result.best.score]
    resolution = ev.resolve_ties(tied)
    assert resolution.pick is result.best and ev.break_ties(tied) is result.best
    assert ev.break_ties(tied[::-1]) is result.best  # the order of the ties does not matter
    assert len(tied) > 1  # conv_depth ties many 2O networks
    report = ordering.report_ties(resolution, score="conv_depth", tie_break=("live_skips",), bits=8)
    assert report["tied_at_top"] == len(tied) and report["tie_break"] == ["live_skips"]
    assert len(report["tied_set"]) == report["tied_after_tie_breaks"] == len(resolution.remaining)
    chosen = [t for t in report["tied_set"] if t["chosen"]]
    assert len(chosen) == 1 and chosen[0]["params"] == result.best.params == min(r.params for r in resolution.remaining)
    assert chosen[0]["bytes"] == result.best.params and chosen[0]["cells"][0] == result.best.cells[0].to_nb201()
    assert all(set(t["tie_scores"]) == {"live_skips"} for t in report["tied_set"])
    json.dumps(report)


# ---------------------------------------------------------------------------------------- threshold_rise score


def _cell(codes: list[int]) -> Genotype:
    return spikenas_bench.genotype(sum(c * K**e for e, c in enumerate(codes)))


def test_threshold_rise_follows_thresholds_along_the_chain() -> None:
    neuron = NeuronConfig()
    rising = _cell([2, 1, 1, 3, 1, 4])  # chain 0-1-2-3 with thresholds 0.5, 1.0, 1.5, skips beside
    falling = _cell([4, 1, 1, 3, 1, 2])
    flat = _cell([3, 1, 1, 3, 1, 3])
    assert threshold_rise(rising, neuron) == pytest.approx(1 / 3) and threshold_rise(falling, neuron) < 0
    assert threshold_rise(flat, neuron) == 0.0
    assert threshold_rise(Genotype.from_index(0, "2O"), neuron) == 0.0  # a single threshold: no order
    state = torch.random.get_rng_state()
    assert get_score("threshold_rise").needs == frozenset()  # structural: no network is run
    threshold_rise(_cell([2, 0, 0, 4, 0, 3]), NeuronConfig(tau=1.5))  # a new neuron config builds ops again
    assert torch.equal(state, torch.random.get_rng_state())  # building ops leaves the global generator alone
    assert DEFAULT_TIE_BREAK == ScoreConfig().tie_break


# --------------------------------------------------------------------------------------------- k-fold split


def test_kfold_is_seeded_disjoint_and_covering() -> None:
    folds = selection.kfold(23, 5, seed=3)
    assert len(folds) == 5 and sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
    joined = np.concatenate(folds)
    assert sorted(joined.tolist()) == list(range(23))  # covering and disjoint
    assert all((np.diff(f) > 0).all() for f in folds)
    assert all((a == b).all() for a, b in zip(folds, selection.kfold(23, 5, seed=3), strict=True))
    assert any((a != b).any() for a, b in zip(folds, selection.kfold(23, 5, seed=4), strict=True))
    for k in (1, 24):
        with pytest.raises(SpikeNASError, match="folds"):
            selection.kfold(23, k, seed=0)


def test_grouped_kendall_tau_counts_pairs_within_groups_only() -> None:
    x = np.array([1.0, 2.0, 3.0, 10.0, 11.0, 12.0])
    y = np.array([5.0, 6.0, 7.0, 1.0, 2.0, 3.0])  # concordant within groups, discordant across
    groups = [np.array([0, 1, 2]), np.array([3, 4, 5])]
    assert selection.grouped_kendall_tau(x, y, groups) == pytest.approx(1.0)
    assert kendall_tau(x, y) < 0.5
    assert selection.grouped_kendall_tau(x, y, [np.arange(6)]) == pytest.approx(kendall_tau(x, y))
    assert math.isnan(selection.grouped_kendall_tau(x, y, [np.array([0])]))


def test_grouped_kendall_tau_matches_counted_pairs() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, size=40).astype(float), rng.integers(0, 4, size=40).astype(float)  # many ties
    groups = [np.arange(0, 15), np.arange(15, 16), np.arange(16, 40), np.array([2, 30, 31])]
    s = px = py = 0
    for g in groups:  # concordant minus discordant pairs and pairs untied in x, in y, counted one by one
        for i, j in itertools.combinations(g, 2):
            dx, dy = np.sign(x[j] - x[i]), np.sign(y[j] - y[i])
            s, px, py = s + dx * dy, px + (dx != 0), py + (dy != 0)
    assert selection.grouped_kendall_tau(x, y, groups) == pytest.approx(s / math.sqrt(px * py), abs=1e-15)
    constant = np.zeros(40)  # every pair tied in x: no pair counts
    assert math.isnan(selection.grouped_kendall_tau(constant, y, groups))


# ---------------------------------------------------------------------------------- a benchmark with an answer


def _synthetic_bench(tmp_path, n: int = 90) -> tuple[str, spikenas_bench.BenchRecords]:
    """Records whose accuracy is a known function of (conv_depth, threshold_rise): 80 + 2 depth + rise, and
    10 for disconnected cells, so the default ordering ranks connected records perfectly."""
    rng = np.random.default_rng(0)
    ids = rng.choice(K ** len(EDGES), size=n, replace=False)
    macro, neuron = spikenas_bench.bench_macro(), NeuronConfig()
    path = tmp_path / "synthetic.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(spikenas_bench.COLUMNS)
        for arch_id in ids:
            g = spikenas_bench.genotype(int(arch_id))
            codes = [(int(arch_id) // K**e) % K for e in range(len(EDGES))]
            acc = 80.0 + 2 * conv_depth(g) + threshold_rise(g, neuron) if g.is_connected() else 10.0
            writer.writerow([int(arch_id), *codes, network_params([g, g], macro), f"{acc:.6f}"])
    return str(path), spikenas_bench.load_bench(path)


def test_selection_finds_the_known_best_on_a_synthetic_benchmark(tmp_path) -> None:
    path, bench = _synthetic_bench(tmp_path)
    table = selection.ScoreTable(bench, settings=[], data_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert (table.structural("params") == bench.params).all()  # the width-128 memory model is the CSV's column
    rows = np.arange(len(bench))
    result = selection.evaluate_rule(bench, rows, ("threshold_rise",), table, score="conv_depth")
    assert result.tau_conn == pytest.approx(1.0)
    for pick in result.picks:
        fits = bench.params <= pick.budget
        assert pick.test_acc == pytest.approx(bench.test_acc[fits].max())
        assert pick.in_budget == int(fits.sum())
        assert pick.percentile == pytest.approx(benchmark_percentile(pick.test_acc, bench.test_acc[fits]))
    none = selection.evaluate_rule(bench, rows, (), table, score="conv_depth")
    assert none.mean_random_top == pytest.approx(result.mean_random_top)  # random choice among the same ties
    assert none.mean_pick <= result.mean_pick and none.within_tie == {}
    assert result.within_tie["threshold_rise"] > 0


def test_choose_rule_refuses_a_tie_break_negative_on_any_fold() -> None:
    def fake(mean: float, within: dict[str, float]) -> selection.RuleResult:
        pick = selection.BudgetPick(0.5, 1.0, 10, 3, 1, "t", 1, 90.0, mean, mean, mean, mean, mean)
        return selection.RuleResult(("t",), None, [pick], 0.5, 0.5, 0.5, within)

    per_fold = {
        "greedy": [[fake(99.0, {"t": 0.2})], [fake(99.0, {"t": -0.1})], [fake(99.0, {"t": 0.3})]],
        "steady": [[fake(90.0, {"s": 0.1})], [fake(90.0, {"s": 0.1})], [fake(90.0, {"s": 0.1})]],
    }
    assert selection.choose_rule(per_fold, [0, 1]) == "steady"
    assert selection.choose_rule(per_fold, [0, 2]) == "greedy"
    per_fold["steady"][0][0].within_tie["s"] = float("nan")  # never applied: no evidence it helps
    assert selection.choose_rule(per_fold, [0, 1]) is None


def test_selection_command_writes_each_budgets_pick(tmp_path) -> None:
    path, bench = _synthetic_bench(tmp_path, n=60)
    out = tmp_path / "out"
    argv = ["selection", "--bench", path, "--folds", "0", "--rules", "threshold_rise;none", "--no-plots",
            "--output-dir", str(out)]
    assert main(argv) == 0
    payload = json.loads((out / "selection.json").read_text())
    assert payload["versions"]["torch"] and payload["seed"] == 0 and "total_s" in payload["timings"]
    assert list(payload["pools"]) == ["all"] and payload["cross_fold"] == []
    picks = payload["pools"]["all"]["rules"]["threshold_rise"][0]["picks"]
    assert len(picks) == 9 and [p["quantile"] for p in picks] == list(selection.QUANTILES)
    assert {"arch_id", "test_acc", "percentile", "tied_at_top", "tied_after_tie_breaks"} <= set(picks[0])
    assert "| threshold_rise |" in (out / "selection.md").read_text() or "**threshold_rise**" in (
        out / "selection.md").read_text()


def test_selection_command_on_folds_and_the_shared_search_check(tmp_path, cifar_sample_path) -> None:
    from spikenas.analyze import fidelity

    path, bench = _synthetic_bench(tmp_path, n=120)
    out = tmp_path / "out"
    argv = ["selection", "--bench", path, "--folds", "4", "--split-seed", "1", "--rules", "threshold_rise;none",
            "--output-dir", str(out)]
    assert main(argv) == 0
    payload = json.loads((out / "selection.json").read_text())
    assert list(payload["pools"]) == ["fold 1", "fold 2", "fold 3", "fold 4", "all"]
    assert sum(payload["pools"][f"fold {i}"]["records"] for i in range(1, 5)) == len(bench)
    assert [c["held_out"] for c in payload["cross_fold"]] == ["fold 1", "fold 2", "fold 3", "fold 4"]
    assert (out / "selection_pick_percentile.png").stat().st_size > 0
    # fidelity's search check (the search engine's Evaluator) chooses what the study chooses.
    pick = payload["pools"]["all"]["rules"]["threshold_rise"][0]["picks"][4]
    setting = fidelity.FidelitySetting(2, 2, 8, 1, "train", 0)
    check = fidelity.budget_search_pick(bench, pick["budget"], setting, data_dir=cifar_sample_path.parent,
                                        config=ScoreConfig(tie_break=("threshold_rise",)))
    assert check["arch_id"] == pick["arch_id"] and check["tied_at_top"] == pick["tied_at_top"]
    assert check["tied_after_tie_breaks"] == pick["tied_after_tie_breaks"]


def test_selection_reads_precomputed_values_of_network_scores(tmp_path) -> None:
    path, bench = _synthetic_bench(tmp_path, n=60)
    values = tmp_path / "values.csv"
    with open(values, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch_id", "seed", "score", "value"])
        for arch_id, acc in zip(bench.arch_id[:40], bench.test_acc[:40], strict=True):
            for seed in (0, 1, 2):
                writer.writerow([int(arch_id), seed, "oracle", acc + 0.001 * seed])
        writer.writerow([999_999_999, 0, "oracle", 1.0])  # a record of another CSV: skipped
    out = tmp_path / "out"
    argv = ["selection", "--bench", path, "--folds", "0", "--rules", "none", "--scores", "oracle,live_skips",
            "--values", str(values), "--no-plots", "--output-dir", str(out)]
    assert main(argv) == 0
    rows = {r["score"]: r for r in json.loads((out / "selection.json").read_text())["scores"]}
    assert rows["oracle"]["records"] == 40 and rows["oracle"]["seeds"] == [0, 1, 2]
    assert rows["oracle"]["tau_all"] == pytest.approx(1.0) and rows["oracle"]["tau_all_spread"] == 0.0
    assert rows["live_skips"]["records"] == 60 and rows["live_skips"]["seeds"] is None
    with pytest.raises(SpikeNASError, match="value"):
        selection.ScoreTable(bench, settings=[], data_dir=tmp_path, cache_dir=tmp_path).load_values(tmp_path / "no")

