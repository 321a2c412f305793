"""Fast (shared-work) search mode: equal to exact mode under per-edge weights, budgets, proxy, resume."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from spikenas.errors import SpikeNASError
from spikenas.memory import Budget, enumerate_params
from spikenas.nas import SearchConfig, consecutive_search
from spikenas.nas.engine import Evaluator
from spikenas.nas.evaluators import make_evaluator
from spikenas.nas.fast import FastConfig, SharedEvaluator
from spikenas.nas.space_api import CellSpace
from spikenas.network import MacroConfig, SNASNetwork, build_network
from spikenas.scoring import ScoreConfig
from spikenas.space import Genotype

TOL = 1e-9  # kernels are summed in another order: scores agree to float64 rounding, not bit for bit


def batches_for(macro: MacroConfig, n: int = 1, size: int = 10) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(size, macro.in_channels, macro.input_size, macro.input_size, generator=gen) for _ in range(n)]


def pair(macro: MacroConfig, n_batches: int = 1, **fast) -> tuple[Evaluator, SharedEvaluator]:
    batches = batches_for(macro, n_batches)
    score = ScoreConfig(backend="torch", name="sahd")
    exact = Evaluator(macro, batches, score, seed=5, weight_seeding="per_edge")
    return exact, SharedEvaluator(macro, batches, score, seed=5, fast=FastConfig(**fast))


def test_per_edge_seeding_shares_op_weights_and_default_is_unchanged(tiny_macro):
    a, b = Genotype.from_index(250, "3O"), Genotype.from_index(300, "3O")
    assert a.ops[5] == b.ops[5] == "conv3x3"
    na = build_network([a, b], tiny_macro, seed=1, weight_seeding="per_edge")
    nb = build_network([b, a], tiny_macro, seed=1, weight_seeding="per_edge")
    assert torch.equal(na.cells[0].edges["23"][1].weight, nb.cells[0].edges["23"][1].weight)
    assert torch.equal(na.head[5].weight, nb.head[5].weight) and torch.equal(na.stem[0].weight, nb.stem[0].weight)
    assert not torch.equal(na.cells[0].edges["23"][1].weight, na.cells[2].edges["23"][1].weight[:4, :4])
    torch.manual_seed(1)
    reference = SNASNetwork([a, b], tiny_macro)
    default = build_network([a, b], tiny_macro, seed=1)
    for p, q in zip(reference.parameters(), default.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(SpikeNASError, match="weight_seeding"):
        build_network(a, tiny_macro, seed=1, weight_seeding="per_op")
    with pytest.raises(SpikeNASError, match="needs a seed"):
        build_network(a, tiny_macro, weight_seeding="per_edge")


@pytest.mark.parametrize("num_cells", [1, 2, 3])
def test_shared_scores_equal_exact_scores_at_every_position(num_cells):
    macro = MacroConfig(num_cells=num_cells, width=4, in_channels=1, input_size=16, hidden=16, timesteps=3)
    exact, fast = pair(macro, n_batches=2)
    rng = random.Random(num_cells)
    cells = [Genotype.from_index(rng.randrange(5**6), "5O") for _ in range(10)]
    for position in range(num_cells):
        base = tuple(Genotype.from_index(rng.randrange(3**6), "3O") for _ in range(num_cells))
        if position == 0:
            candidates = [(g,) * num_cells for g in cells]
        else:
            candidates = [base[:position] + (g,) + base[position + 1 :] for g in cells]
        shared = fast.evaluate_many(candidates)
        for record, cand in zip(shared, candidates, strict=True):
            reference = exact.evaluate(cand)
            assert record.cells == cand and record.status == reference.status
            if reference.status == "ok":
                assert record.score == pytest.approx(reference.score, rel=TOL, abs=TOL)
            else:
                assert record.score == reference.score == float("-inf")


def test_disconnected_and_repeated_candidates(tiny_macro):
    _, fast = pair(tiny_macro)
    cut = Genotype(("conv3x3", "conv3x3", "zero", "zero", "zero", "zero"))
    ok = Genotype(("conv3x3", "zero", "zero", "zero", "conv3x3", "zero"))
    records = fast.evaluate_many([(cut, cut), (ok, ok), (ok, ok)])
    assert records[0].status == "disconnected" and records[0].score == float("-inf")
    assert records[1] is records[2] and records[1].status == "ok"
    assert fast.counters.disconnected == 1 and fast.counters.scored == 1 and fast.counters.memo_hits == 1
    assert fast.evaluate_many([(ok, ok)])[0] is records[1] and fast.counters.memo_hits == 2


def test_fast_alg1_equals_exact_alg1_without_proxy(tiny_macro):
    exact, fast = pair(tiny_macro)
    a = consecutive_search(CellSpace(exact.config, op_set="2O"), exact, progress=False)
    b = consecutive_search(CellSpace(fast.config, op_set="2O"), fast, progress=False)
    assert a.best.cells == b.best.cells
    assert b.best.score == pytest.approx(a.best.score, rel=TOL)
    assert b.counters.memo_hits == 1 and b.counters.scored == a.counters.scored
    by_cells = {r.cells: r.score for r in exact.records}
    for record in fast.records:
        assert record.score == pytest.approx(by_cells[record.cells], rel=TOL, abs=TOL)


def test_fast_alg1_respects_budget(tiny_macro):
    limit = float(np.quantile(enumerate_params("3O", tiny_macro), 0.2))
    _, fast = pair(tiny_macro)
    result = consecutive_search(CellSpace(fast.config, op_set="3O"), fast, budget=Budget(limit), progress=False)
    assert result.meets_budget is True and result.best.params <= limit
    assert fast.counters.pruned > 0
    assert all(r.params <= limit for r in fast.records)


def test_proxy_screens_and_rescores_the_best(tiny_macro):
    exact, fast = pair(tiny_macro, proxy_batch=4, rescore_fraction=0.25, rescore_min=3, race_top=0)
    candidates = [(g, g) for g in (Genotype.from_index(i, "2O") for i in range(64))]
    records = fast.evaluate_many(candidates)
    full = [r for r in records if r.status != "screened"]
    screened = [r for r in records if r.status == "screened"]
    assert len(full) == 16 == fast.counters.scored and len(screened) == 48 == fast.counters.screened
    assert all(r.score == float("-inf") and r.proxy_score is not None for r in screened)
    assert min(r.proxy_score for r in full) >= max(r.proxy_score for r in screened)
    for record in full:
        assert record.score == pytest.approx(exact.evaluate(record.cells).score, rel=TOL)


@pytest.mark.parametrize("race_top", [1, 3])
def test_proxy_race_rescores_rounds_until_the_top_settles(tiny_macro, race_top):
    exact, fast = pair(tiny_macro, proxy_batch=6, rescore_fraction=0.125, rescore_min=2, race_top=race_top)
    candidates = [(g, g) for g in (Genotype.from_index(i, "2O") for i in range(64))]
    records = fast.evaluate_many(candidates)
    order = sorted(range(64), key=lambda i: (-records[i].proxy_score, i))
    full = [i for i in order if records[i].status != "screened"]
    assert full == order[: len(full)]  # rounds go down the proxy ranking
    assert len(full) % 8 == 0 and len(full) >= 16  # whole rounds of 8, at least two
    assert fast.counters.scored == len(full) and fast.counters.screened == 64 - len(full)

    def leaders(indices: list[int]) -> list[int]:
        return sorted(indices, key=lambda i: (-records[i].score, i))[:race_top]

    for end in range(16, len(full), 8):  # every round but the last changed the top
        assert leaders(full[: end - 8]) != leaders(full[:end])
    if len(full) < 64:  # the last round left it as it was
        assert leaders(full[:-8]) == leaders(full)
    for i in full:
        assert records[i].score == pytest.approx(exact.evaluate(candidates[i]).score, rel=TOL)


def test_fast_journal_resumes_without_rescoring(tiny_macro, tmp_path):
    journal = tmp_path / "j.jsonl"
    batches = batches_for(tiny_macro)
    kw = dict(seed=2, journal=journal, fingerprint={"t": 1}, fast=FastConfig(proxy_batch=4))
    score = ScoreConfig(name="sahd")
    first = consecutive_search(
        CellSpace(tiny_macro, op_set="2O"),
        SharedEvaluator(tiny_macro, batches, score, **kw), progress=False)
    again = SharedEvaluator(tiny_macro, batches, ScoreConfig(name="sahd"), resume=True, **kw)
    second = consecutive_search(CellSpace(again.config, op_set="2O"), again, progress=False)
    assert second.best.cells == first.best.cells and second.best.score == first.best.score
    assert again.counters.scored == 0 and again.counters.resumed == len(again.records)
    assert any(r.status == "screened" and r.proxy_score is not None for r in again.records)


def test_mode_validation(tiny_macro):
    with pytest.raises(SpikeNASError, match="mode"):
        SearchConfig.from_fields(mode="quick")
    with pytest.raises(SpikeNASError, match="proxy_batch"):
        SearchConfig.from_fields(mode="fast", proxy_batch=1)
    with pytest.raises(SpikeNASError, match="rescore_fraction"):
        FastConfig(rescore_fraction=0.0)
    batches = batches_for(tiny_macro)
    with pytest.raises(SpikeNASError, match="per_edge"):
        make_evaluator("fast", tiny_macro, batches, ScoreConfig(name="sahd"), weight_seeding="network")
    with pytest.raises(SpikeNASError, match="bn_mode"):
        SharedEvaluator(tiny_macro, batches, ScoreConfig(bn_mode="eval", name="sahd"))
    with pytest.raises(SpikeNASError, match="proxy_batch 64 exceeds"):
        SharedEvaluator(tiny_macro, batches, ScoreConfig(name="sahd"), fast=FastConfig(proxy_batch=64))
    with pytest.raises(SpikeNASError, match="sahd"):
        SharedEvaluator(tiny_macro, batches, ScoreConfig(name="conv_depth"))
    assert make_evaluator("exact", tiny_macro, batches, ScoreConfig(name="sahd")).weight_seeding == "network"


def test_cli_fast_mode(tmp_path, capsys):
    from spikenas.nas.__main__ import main

    out = tmp_path / "r.json"
    argv = ["--fast", "--cells", "1", "--ops", "2O", "--batch-size", "8", "--mode", "fast", "--proxy-batch", "4",
            "--score", "sahd",
            "--output", str(out), "--quiet"]
    assert main(argv) == 0
    assert out.exists() and "score" in capsys.readouterr().out
    config = json.loads(out.read_text())["config"]
    assert config["proxy_batch"] == 4 and config["race_top"] == 10
    assert main([*argv, "--race-top", "0", "--rescore-fraction", "0.5"]) == 0
    config = json.loads(out.read_text())["config"]
    assert config["race_top"] == 0 and config["rescore_fraction"] == 0.5
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--race-top", "-1"])
    assert exit_info.value.code == 2
    assert "argument --race-top: must be an integer >= 0, got '-1'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--mode", "quick"])
    assert exit_info.value.code == 2 and "invalid choice: 'quick'" in capsys.readouterr().err


def test_sharded_fast_alg1_equals_whole_passes(tiny_macro, tmp_path):
    import pickle

    from spikenas.executor import LocalExecutor

    torch.set_num_threads(1)
    batches = batches_for(tiny_macro)
    runs = []
    for name, executor in (("whole", None), ("plain-local", LocalExecutor()),
                           ("sharded", LocalExecutor(split_shared_work=True))):
        evaluator = make_evaluator("fast", tiny_macro, batches, ScoreConfig(name="sahd"), seed=3,
                                   journal=tmp_path / f"{name}.jsonl", fingerprint={"t": 1})
        result = consecutive_search(
            CellSpace(evaluator.config, op_set="2O"),
            evaluator, progress=False, executor=executor)
        journal = sorted(json.dumps({k: v for k, v in json.loads(line).items() if k not in ("seconds", "checksum")})
                         for line in (tmp_path / f"{name}.jsonl").open())  # shards are journaled as they arrive
        runs.append((result, evaluator, journal))
    (whole, ev_whole, j_whole), (_, ev_plain, _), (sharded, ev_sharded, j_sharded) = runs
    assert ev_plain._shipped is None  # a plain LocalExecutor leaves passes whole
    shipped = ev_sharded.shipped()
    assert isinstance(shipped, SharedEvaluator) and shipped.fast == ev_sharded.fast and shipped.journal is None
    assert shipped.counters.scored == ev_sharded.counters.scored > 0  # every score came from the shards
    assert shipped._edge_modules and not pickle.loads(pickle.dumps(shipped))._edge_modules
    assert (sharded.best.cells, sharded.best.score) == (whole.best.cells, whole.best.score)
    assert [(r.cells, r.score, r.status) for r in ev_sharded.records] == \
        [(r.cells, r.score, r.status) for r in ev_whole.records]  # bit for bit, in the same order
    assert sharded.counters == whole.counters and j_sharded == j_whole
    assert [p["best_of_pass"]["score"] for p in sharded.passes] == [p["best_of_pass"]["score"] for p in whole.passes]
    proxy = SharedEvaluator(tiny_macro, batches, ScoreConfig(name="sahd"), fast=FastConfig(proxy_batch=4))
    with pytest.raises(SpikeNASError, match="proxy screening .* cannot reproduce"):
        consecutive_search(
            CellSpace(proxy.config, op_set="2O"),
            proxy, progress=False, executor=LocalExecutor(split_shared_work=True))
    assert consecutive_search(
        CellSpace(proxy.config, op_set="2O"),
        proxy, progress=False, executor=LocalExecutor()).best.score > float("-inf")


@pytest.mark.parametrize("stack_elements", [1, 16_000])
def test_stacking_size_does_not_change_scores(tiny_macro, stack_elements):
    """One candidate per stacked call, a few, or all: the same scores bit for bit."""
    _, whole = pair(tiny_macro)
    _, chunked = pair(tiny_macro, stack_elements=stack_elements)
    rng = random.Random(stack_elements)
    base = Genotype.from_index(rng.randrange(5**6), "5O")
    for position in (0, 1):
        cells = [Genotype.from_index(rng.randrange(5**6), "5O") for _ in range(12)]
        candidates = [(g, g) if position == 0 else (base, g) for g in cells]
        a, b = whole.evaluate_many(candidates), chunked.evaluate_many(candidates)
        assert [r.score for r in a] == [r.score for r in b]
        assert [r.status for r in a] == [r.status for r in b]
