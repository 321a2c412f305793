"""Evolution's final choice goes through the search ordering: fitness, tie-breaks, fewest parameters, seeded draw."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from spikenas.autosnn import AutoSNNConfig, AutoSNNSpace
from spikenas.autosnn.fitness import ScoreFitness
from spikenas.errors import SpikeNASError
from spikenas.nas.__main__ import main
from spikenas.nas.evolution import Evaluation, EvolutionRecord, evolution_search, final_choice
from spikenas.nas.ordering import DRAW, FINAL_RULE, draw_key
from spikenas.nas.space_api import CellSpace
from spikenas.network import MacroConfig
from spikenas.scoring import ScoreConfig, score_candidate


@pytest.fixture
def auto_space() -> AutoSNNSpace:
    return AutoSNNSpace(AutoSNNConfig(base_channels=2, timesteps=2, in_channels=1, input_size=8))


def _keys(space, count: int, seed: int = 0) -> list[tuple[str, ...]]:
    """``count`` distinct gene tuples of ``space``, drawn with ``seed``."""
    rng, keys = np.random.default_rng(seed), []
    while len(keys) < count:
        key = space.encode(space.sample(rng))
        if key not in keys:
            keys.append(key)
    return keys


def _records(keys, fitness, params) -> list[EvolutionRecord]:
    return [EvolutionRecord(k, p, f, 1.0, {}, "ok", 0) for k, f, p in zip(keys, fitness, params, strict=True)]


def test_fewest_parameters_decide_among_the_top_fitness_not_the_first_seen(auto_space):
    keys = _keys(auto_space, 5)
    records = _records(keys, [0.9, 0.9, 0.5, 0.9, 0.9], [50, 40, 10, 30, 60])
    resolution = final_choice(records, auto_space, seed=0)
    assert resolution.pick.record is records[3]  # 30 parameters; the 0.5 record with 10 is not tied at the top
    assert resolution.decided_by == FINAL_RULE
    assert [c.record for c in resolution.tied] == [records[i] for i in (0, 1, 3, 4)]


def test_seeded_draw_among_exact_ties(auto_space):
    keys = _keys(auto_space, 8)
    records = _records(keys, [0.7] * 8, [20] * 8)
    picks = {}
    for seed in range(16):
        resolution = final_choice(records, auto_space, seed=seed)
        assert resolution.decided_by == DRAW and len(resolution.smallest) == 8
        expected = min(records, key=lambda r: draw_key(auto_space.decode(r.key), seed))
        assert resolution.pick.record is expected
        assert final_choice(records, auto_space, seed=seed).pick.record is expected  # same seed, same pick
        assert final_choice(records[::-1], auto_space, seed=seed).pick.record is expected  # not order-dependent
        picks[seed] = expected.key
    assert len(set(picks.values())) > 1  # different seeds, different picks
    assert any(key != keys[0] for key in picks.values())  # not the first seen


def test_tie_breaks_come_before_the_final_rule(auto_space):
    keys = _keys(auto_space, 4)
    records = _records(keys, [0.8, 0.8, 0.8, 0.1], [10, 90, 90, 5])
    asked = []

    def value(arch, name):
        asked.append(tuple(arch))
        return {keys[0]: 1.0, keys[1]: 2.0, keys[2]: 2.0}[tuple(arch)]

    resolution = final_choice(records, auto_space, seed=3, tie_break=("t",), tie_value=value)
    assert resolution.stages == [("t", 2)] and resolution.decided_by == DRAW
    assert resolution.pick.record in (records[1], records[2])
    assert sorted(asked) == sorted(keys[:3])  # computed for the records tied at the top only
    with pytest.raises(SpikeNASError, match="needs tie_value"):
        final_choice(records, auto_space, tie_break=("t",))


def test_failed_records_compete_only_when_nothing_succeeded(auto_space):
    keys = _keys(auto_space, 3)
    failed = _records(keys, [-math.inf] * 3, [30, 10, 20])
    assert final_choice(failed, auto_space).pick.record is failed[1]
    mixed = _records(keys, [-math.inf, -math.inf, 0.2], [30, 10, 20])
    assert final_choice(mixed, auto_space).pick.record is mixed[2]
    with pytest.raises(SpikeNASError, match="at least one"):
        final_choice([], auto_space)


class TiedFitness:
    """Every architecture gets the same fitness: the whole search is one tie."""

    def __call__(self, arch) -> Evaluation:
        return Evaluation(fitness=0.5, spikes=1.0)


@pytest.mark.parametrize("which", ["auto", "cell"])
def test_search_returns_the_ordering_pick_and_reports_it(which, auto_space):
    macro = MacroConfig(num_cells=2, width=4, in_channels=1, input_size=8, hidden=16, timesteps=3)
    space = auto_space if which == "auto" else CellSpace(macro, op_set="5O")
    opts = dict(population=6, iterations=2, top_k=3, mutations=3, crossovers=3, progress=False)
    result = evolution_search(space, TiedFitness(), seed=5, **opts)
    fewest = min(r.params for r in result.records)
    assert result.best.params == fewest
    smallest = [r for r in result.records if r.params == fewest]
    # the draw a consecutive or random search with seed 5 makes among these cells (their NAS-Bench-201 strings)
    assert result.best is min(smallest, key=lambda r: draw_key(space.decode(r.key), 5))
    selection = result.selection(bits=8)
    assert selection["score"] == "fitness" and selection["tied_at_top"] == len(result.records)
    assert selection["decided_by"] == (DRAW if len(smallest) > 1 else FINAL_RULE)
    chosen = [t for t in selection["tied_set"] if t["chosen"]]
    cells = [g if isinstance(g, str) else g.to_nb201() for g in space.decode(result.best.key)]
    assert len(chosen) == 1 and chosen[0]["cells"] == cells and chosen[0]["params"] == fewest


def test_score_fitness_tie_breaks_match_the_search_engine():
    macro = MacroConfig(num_cells=2, width=4, in_channels=1, input_size=8, hidden=16, timesteps=3)
    space = CellSpace(macro, op_set="5O")
    batches = [torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))]
    source = ScoreFitness(space, batches, score_config=ScoreConfig(name="sahd", backend="torch"), seed=0)
    assert source.tie_break == ("threshold_rise",)
    arch = space.sample(np.random.default_rng(0))
    expected = score_candidate(tuple(arch), None, batches, config=ScoreConfig(name="threshold_rise"), macro=macro)
    assert source.tie_score(arch, "threshold_rise") == expected.score
    auto = AutoSNNSpace(AutoSNNConfig(base_channels=2, timesteps=2, in_channels=1, input_size=8))
    assert ScoreFitness(auto, batches, score_config=ScoreConfig(name="sahd")).tie_break == ()  # structural: cells


def test_cli_evolution_writes_the_selection_block(tmp_path):
    out = tmp_path / "evo.json"
    code = main([
        "--algorithm", "evolution", "--space", "autosnn", "--fitness", "score", "--dataset", "digits",
        "--input-size", "8", "--width", "2", "--timesteps", "2", "--batch-size", "8", "--population", "2",
        "--iterations", "1", "--backend", "torch", "--output", str(out), "--quiet",
    ])
    assert code == 0
    payload = json.loads(out.read_text())
    selection = payload["selection"]
    assert selection["score"] == "fitness" and selection["tie_break"] == []
    assert selection["decided_by"] in ("score", FINAL_RULE, DRAW)
    chosen = [t for t in selection["tied_set"] if t["chosen"]]
    assert len(chosen) == 1 and chosen[0]["cells"] == payload["result"]["key"]
