"""Searches: budgets respected, deterministic, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spikenas.errors import SpikeNASError
from spikenas.memory import Budget, enumerate_params, network_params
from spikenas.nas import consecutive_search, random_search
from spikenas.nas.engine import Evaluator
from spikenas.nas.space_api import CellSpace
from spikenas.scoring import ScoreConfig
from spikenas.space import Genotype


def make_evaluator(macro, **kw) -> Evaluator:
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(10, macro.in_channels, macro.input_size, macro.input_size, generator=gen)]
    return Evaluator(macro, batches, ScoreConfig(), seed=0, **kw)  # the default score and tie-breaks


@pytest.mark.parametrize("quantile", [0.05, 0.3, 0.7])
def test_alg1_respects_budget_and_prunes(tiny_macro, quantile):
    limit = float(np.quantile(enumerate_params("2O", tiny_macro), quantile))
    ev = make_evaluator(tiny_macro)
    result = consecutive_search(CellSpace(ev.config, op_set="2O"), ev, budget=Budget(limit), progress=False)
    assert result.meets_budget is True
    assert network_params(result.best.cells, tiny_macro) == result.best.params <= limit
    assert ev.counters.pruned > 0
    for record in ev.records:  # nothing over budget was ever built
        assert record.params <= limit
    assert len(result.passes) == tiny_macro.num_cells


def test_alg1_byte_budget(tiny_macro):
    params = enumerate_params("2O", tiny_macro)
    limit_bytes = float(np.median(params)) * 4 / 8  # 4-bit weights
    result = consecutive_search(
        CellSpace(tiny_macro, op_set="2O"),
        make_evaluator(tiny_macro), budget=Budget(limit_bytes, bits=4),
                                progress=False)
    assert result.best.params * 4 / 8 <= limit_bytes


def test_alg1_deterministic_and_searches_later_cells(tiny_macro):
    a = consecutive_search(CellSpace(tiny_macro, op_set="2O"), make_evaluator(tiny_macro), progress=False)
    b = consecutive_search(CellSpace(tiny_macro, op_set="2O"), make_evaluator(tiny_macro), progress=False)
    assert a.best.cells == b.best.cells and a.best.score == b.best.score
    # pass 2 scored 64 networks whose first cell is pass 1's winner
    first = Genotype.from_nb201(a.passes[0]["best_of_pass"]["cells"][0])
    assert a.passes[1]["in_budget"] == 64
    assert a.best.score >= a.passes[0]["best_of_pass"]["score"]
    assert a.best.cells[0] == first
    assert a.counters.memo_hits == 1  # pass 2 meets pass 1's winner again


def test_infeasible_budget_names_smallest_network(tiny_macro):
    smallest = int(enumerate_params("2O", tiny_macro).min())
    with pytest.raises(SpikeNASError, match=f"smallest network .* has {smallest:,} parameters"):
        consecutive_search(
            CellSpace(tiny_macro, op_set="2O"),
            make_evaluator(tiny_macro), budget=Budget(smallest - 1), progress=False)


def test_random_search_deterministic_and_reports_budget(tiny_macro):
    a = random_search(
        CellSpace(tiny_macro, op_set="5O"),
        make_evaluator(tiny_macro), samples=12, seed=3, budget=Budget(1e9), progress=False)
    tight = Budget(a.best.params - 1)  # some networks fit, the unconstrained pick does not
    b = random_search(
        CellSpace(tiny_macro, op_set="5O"),
        make_evaluator(tiny_macro), samples=12, seed=3, budget=tight, progress=False)
    assert a.best.cells == b.best.cells
    assert a.meets_budget is True and b.meets_budget is False
    with pytest.raises(SpikeNASError, match="smallest network of op set 5O .edge .0,3. not zero. with 2 cell"):
        random_search(
            CellSpace(tiny_macro, op_set="5O"),
            make_evaluator(tiny_macro), samples=12, seed=3, budget=Budget(10), progress=False)
    assert all(g.ops[2] != "zero" for g in a.best.cells)  # edge (0,3) never zero
    assert len(set(a.best.cells)) == 1  # the same cell everywhere


def test_disconnected_cells_are_not_built(tiny_macro):
    ev = make_evaluator(tiny_macro)
    g = Genotype(("conv3x3", "zero", "zero", "zero", "conv3x3", "zero"))  # 0 -> 1 -> 3
    cut = Genotype(("conv3x3", "conv3x3", "zero", "zero", "zero", "zero"))  # nothing reaches node 3
    assert g.is_connected() and not cut.is_connected()
    record = ev.evaluate((cut, cut))
    assert record.status == "disconnected" and record.score == float("-inf")
    assert ev.counters.disconnected == 1 and ev.counters.scored == 0


def test_resume_reuses_journal_and_gives_same_result(tiny_macro, tmp_path):
    journal = tmp_path / "j.jsonl"
    full = consecutive_search(
        CellSpace(tiny_macro, op_set="2O"),
        make_evaluator(tiny_macro, journal=journal), progress=False)
    lines = journal.read_text().splitlines()
    assert len(lines) == 1 + full.counters.scored
    # Simulate a crash: keep the header and 40 records, and cut the next line in half.
    journal.write_text("\n".join(lines[:41]) + "\n" + lines[41][:25])
    ev = make_evaluator(tiny_macro, journal=journal, resume=True)
    again = consecutive_search(CellSpace(ev.config, op_set="2O"), ev, progress=False)
    assert ev.counters.resumed == 40
    assert ev.counters.scored == full.counters.scored - 40
    assert again.best.cells == full.best.cells and again.best.score == full.best.score
    assert len(journal.read_text().splitlines()) == len(lines)
    header = json.loads(lines[0])["header"]
    assert header == {}


def test_resume_refuses_other_configuration(tiny_macro, tmp_path):
    journal = tmp_path / "j.jsonl"
    make_evaluator(tiny_macro, journal=journal, fingerprint={"seed": 1}).evaluate((Genotype.from_index(5, "2O"),) * 2)
    with pytest.raises(SpikeNASError, match="different search configuration"):
        make_evaluator(tiny_macro, journal=journal, resume=True, fingerprint={"seed": 2})


def test_ties_at_the_top_are_broken_by_the_tie_break_scores(tiny_macro):
    from spikenas.scoring.structural import conv_depth, live_skips

    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(10, 1, 8, 8, generator=gen)]
    config = ScoreConfig(name="conv_depth", tie_break=("depth_skip", "hamming"), backend="torch")
    ev = Evaluator(tiny_macro, batches, config, seed=0)
    result = consecutive_search(CellSpace(ev.config, op_set="2O"), ev, progress=False)
    records = ev.records
    top = max(r.score for r in records)
    uniform = [r.cells[0] for r in records if len(set(r.cells)) == 1]
    assert result.best.score == top == max(2 * conv_depth(g) for g in uniform)
    tied = [r for r in records if r.score == top]
    assert len(tied) > 1  # conv_depth is coarse: the tie-break decided
    best_skip = max(sum(conv_depth(g) + 0.1 * live_skips(g) for g in r.cells) for r in tied)
    assert sum(conv_depth(g) + 0.1 * live_skips(g) for g in result.best.cells) == pytest.approx(best_skip)
    assert set(result.best.tie_scores) == {"depth_skip", "hamming"}
    finalists = [r for r in tied if "hamming" in r.tie_scores]
    assert result.best.tie_scores["hamming"] == max(r.tie_scores["hamming"] for r in finalists)
    with pytest.raises(SpikeNASError, match="equal scores"):
        ev.break_ties([records[0], next(r for r in records if r.score != records[0].score)])


def test_smallest_network_of_the_cell_space_is_the_brute_force_minimum(tiny_macro):
    import itertools

    from spikenas.memory import smallest_network_params
    from spikenas.nas.random_search import drawable_mask, sample_cell
    from spikenas.space import connected_mask, enumerate_genotypes

    cells = list(enumerate_genotypes("2O"))
    assert smallest_network_params("2O", tiny_macro) == min(network_params(g, tiny_macro) for g in cells)
    connected = [g for g in cells if g.is_connected()]
    pairs = min(network_params(list(p), tiny_macro) for p in itertools.product(connected, repeat=2))
    assert smallest_network_params("2O", tiny_macro, same_cell=False, allowed=connected_mask("2O")) == pairs
    rng = np.random.default_rng(0)
    drawn = {sample_cell(rng, "5O").index("5O") for _ in range(2000)}
    assert drawn <= set(np.flatnonzero(drawable_mask("5O")))
    with pytest.raises(SpikeNASError, match="no cell of op set 2O is allowed"):
        smallest_network_params("2O", tiny_macro, allowed=np.zeros(64, dtype=bool))


def test_every_strategy_explains_an_infeasible_budget_the_same_way(tiny_macro):
    from spikenas.nas.evolution import evolution_search

    ev = make_evaluator(tiny_macro)
    tight = Budget(10)
    messages = []
    for run in (
        lambda: consecutive_search(CellSpace(ev.config, op_set="2O"), ev, budget=tight, progress=False),
        lambda: random_search(CellSpace(ev.config, op_set="2O"), ev, samples=3, budget=tight, progress=False),
        lambda: evolution_search(CellSpace(tiny_macro, op_set="2O"), lambda arch: None, budget=tight,
                                 progress=False),
    ):
        with pytest.raises(SpikeNASError) as info:
            run()
        messages.append(str(info.value))
    for message in messages:
        assert message.startswith("no architecture fits the budget of 10 parameters: the smallest network of op set 2O")
        assert "raise the budget or narrow the network (--width, --hidden)" in message
    assert ev.counters.scored == 0
