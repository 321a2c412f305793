"""Evolutionary search: valid children, no duplicate evaluation, the budget, resume, both spaces, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from spikenas.autosnn import AutoSNNConfig, AutoSNNSpace, enumerate_params
from spikenas.autosnn.fitness import ScoreFitness
from spikenas.errors import SpikeNASError
from spikenas.memory import Budget
from spikenas.nas.__main__ import main
from spikenas.nas.evolution import Evaluation, EvolutionRecord, evolution_search, pareto_front
from spikenas.nas.space_api import CellSpace
from spikenas.network import MacroConfig
from spikenas.scoring import ScoreConfig


@pytest.fixture
def auto_space() -> AutoSNNSpace:
    return AutoSNNSpace(AutoSNNConfig(base_channels=2, timesteps=2, in_channels=1, input_size=8))


@pytest.fixture
def cell_space() -> CellSpace:
    macro = MacroConfig(num_cells=2, width=4, in_channels=1, input_size=8, hidden=16, timesteps=3)
    return CellSpace(macro, op_set="5O")


class FakeFitness:
    """A deterministic fitness that records every call."""

    def __init__(self, space):
        self.space, self.calls = space, []

    def __call__(self, arch) -> Evaluation:
        key = self.space.key(arch)
        self.calls.append(key)
        h = sum((i + 1) * (ord(c[0]) + len(c)) for i, c in enumerate(key))
        return Evaluation(fitness=(h % 97) / 97.0, spikes=float(h % 13), metrics={"accuracy": (h % 97) / 97.0})


@pytest.mark.parametrize("which", ["auto", "cell"])
def test_every_mutated_and_crossed_genotype_is_well_formed(which, auto_space, cell_space):
    space = auto_space if which == "auto" else cell_space
    rng = np.random.default_rng(0)
    for _ in range(300):
        a, b = space.sample(rng), space.sample(rng)
        for child in (space.mutate(a, rng, p=0.2), space.crossover(a, b, rng)):
            genes = space.encode(child)
            assert len(genes) == space.length
            assert all(g in space.choices(i) for i, g in enumerate(genes))
            assert space.decode(genes) == child
        ga, gb, gc = space.encode(a), space.encode(b), space.encode(space.crossover(a, b, rng))
        assert any(gc == ga[:cut] + gb[cut:] for cut in range(1, space.length))


def test_mutation_probability_extremes(auto_space):
    rng = np.random.default_rng(1)
    arch = auto_space.sample(rng)
    assert auto_space.mutate(arch, rng, p=0.0) == arch
    changed = auto_space.mutate(arch, rng, p=1.0)
    assert all(x != y for x, y in zip(arch, changed, strict=True))
    with pytest.raises(SpikeNASError, match="p must be"):
        auto_space.mutate(arch, rng, p=1.5)


def test_mutation_rate_is_p_per_position(auto_space):
    rng = np.random.default_rng(2)
    arch = ("skip",) * 5
    changed = sum(sum(x != "skip" for x in auto_space.mutate(arch, rng, p=0.2)) for _ in range(2000))
    assert changed / (2000 * 5) == pytest.approx(0.2, abs=0.02)


def test_cell_space_validity_and_memory(cell_space):
    from spikenas.space import Genotype

    connected = Genotype(("conv3x3", "zero", "skip", "zero", "zero", "zero"))
    cut = Genotype(("conv3x3", "zero", "zero", "zero", "zero", "zero"))
    assert cell_space.is_valid((connected, connected))
    assert not cell_space.is_valid((connected, cut))
    net = cell_space.build((connected, connected), seed=0)
    assert cell_space.params((connected, connected)) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("which", ["auto", "cell"])
def test_no_architecture_evaluated_twice_and_only_valid_ones(which, auto_space, cell_space):
    space = auto_space if which == "auto" else cell_space
    fake = FakeFitness(space)
    result = evolution_search(space, fake, population=8, iterations=6, top_k=4, mutations=4, crossovers=4,
                              seed=0, progress=False)
    assert len(fake.calls) == len(set(fake.calls)) == len(result.records) == result.counters.evaluated
    assert len(fake.calls) > 8
    assert all(space.is_valid(space.decode(k)) for k in fake.calls)
    assert result.counters.duplicates > 0  # children equal to earlier ones were drawn and refused
    assert result.best.fitness == max(r.fitness for r in result.records)
    assert [h["iteration"] for h in result.history] == list(range(6))
    bests = [h["best_fitness"] for h in result.history]
    assert bests == sorted(bests)


def test_small_space_exhaustion_stops_without_repeats():
    macro = MacroConfig(num_cells=1, width=2, in_channels=1, input_size=4, hidden=4, timesteps=1)
    space = CellSpace(macro, op_set="2O")  # 64 cells, all connected
    fake = FakeFitness(space)
    result = evolution_search(space, fake, population=20, iterations=10, seed=0, max_tries=50, progress=False)
    assert len(fake.calls) == len(set(fake.calls)) == 64
    assert result.counters.evaluated == 64


@pytest.mark.parametrize("quantile", [0.1, 0.5])
def test_budget_is_a_hard_constraint(auto_space, quantile):
    limit = float(np.quantile(enumerate_params(auto_space.config), quantile))
    fake = FakeFitness(auto_space)
    result = evolution_search(auto_space, fake, population=10, iterations=4, top_k=5, mutations=5, crossovers=5,
                              budget=Budget(limit), seed=1, progress=False)
    assert all(auto_space.params(auto_space.decode(k)) <= limit for k in fake.calls)
    assert result.counters.pruned > 0 and result.meets_budget is True


def test_byte_budget_and_infeasible_budget(auto_space):
    table = enumerate_params(auto_space.config)
    limit_bytes = float(np.median(table)) * 4 / 8
    result = evolution_search(auto_space, FakeFitness(auto_space), population=4, iterations=2, top_k=2,
                              mutations=2, crossovers=2, budget=Budget(limit_bytes, bits=4), progress=False)
    assert all(math.ceil(r.params * 4 / 8) <= limit_bytes for r in result.records)
    smallest = int(table.min())
    with pytest.raises(SpikeNASError, match=f"smallest network of the AutoSNN space .* has {smallest:,} parameters"):
        evolution_search(auto_space, FakeFitness(auto_space), population=4, iterations=2, top_k=2, mutations=2,
                         crossovers=2, budget=Budget(smallest - 1), max_tries=5, progress=False)


def test_deterministic_for_a_seed(auto_space):
    runs = [evolution_search(auto_space, FakeFitness(auto_space), population=6, iterations=4, top_k=3, mutations=3,
                             crossovers=3, seed=s, progress=False) for s in (7, 7, 8)]
    keys = [[r.key for r in run.records] for run in runs]
    assert keys[0] == keys[1] != keys[2]


class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_an_uninterrupted_run(auto_space, tmp_path):
    opts = dict(population=6, iterations=4, top_k=3, mutations=3, crossovers=3, seed=3, progress=False,
                fingerprint={"run": 1})
    full = evolution_search(auto_space, FakeFitness(auto_space), **opts)

    state = tmp_path / "state.json"
    fake = FakeFitness(auto_space)

    def stops_after_9(arch):
        if len(fake.calls) == 9:
            raise Interrupt
        return fake(arch)

    with pytest.raises(Interrupt):
        evolution_search(auto_space, stops_after_9, state=state, **opts)
    assert len(json.loads(state.read_text())["records"]) == 9
    again = FakeFitness(auto_space)
    resumed = evolution_search(auto_space, again, state=state, resume=True, **opts)
    assert resumed.counters.resumed == 9
    assert set(again.calls).isdisjoint(fake.calls)
    assert [r.key for r in resumed.records] == [r.key for r in full.records]
    assert resumed.history == full.history
    with pytest.raises(SpikeNASError, match="different search"):
        evolution_search(auto_space, again, state=state, resume=True, **{**opts, "fingerprint": {"run": 2}})


def test_option_validation(auto_space):
    with pytest.raises(SpikeNASError, match="population"):
        evolution_search(auto_space, FakeFitness(auto_space), population=10, mutations=6, crossovers=6)
    with pytest.raises(SpikeNASError, match="mutation_prob"):
        evolution_search(auto_space, FakeFitness(auto_space), mutation_prob=2.0)


def _record(fitness, spikes, params, key="x"):
    return EvolutionRecord((key,), params, fitness, spikes, {"score": fitness}, "ok", 0)


def test_pareto_front():
    records = [
        _record(0.9, 100.0, 50, "a"),  # best fitness
        _record(0.8, 50.0, 50, "b"),  # fewer spikes
        _record(0.7, 60.0, 60, "c"),  # dominated by b
        _record(0.6, 80.0, 10, "d"),  # smallest
        _record(0.9, 100.0, 60, "e"),  # dominated by a
        _record(-math.inf, 1.0, 1, "f"),  # failed: never on the front
    ]
    assert [r.key[0] for r in pareto_front(records)] == ["a", "b", "d"]
    assert [r.key[0] for r in pareto_front(records, metric="score")] == ["a", "b", "d"]


@pytest.mark.parametrize("which", ["auto", "cell"])
def test_training_free_evolution_in_both_spaces(which, auto_space, cell_space):
    space = auto_space if which == "auto" else cell_space
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(6, 1, 8, 8, generator=gen)]
    config = ScoreConfig(name="sahd", backend="torch")
    source = ScoreFitness(space, batches, score_config=config, seed=0, target=1000.0)
    assert source.scale == 6
    result = evolution_search(space, source, population=4, iterations=2, top_k=2, mutations=2, crossovers=2,
                              metric="score", progress=False)
    assert result.counters.evaluated == len(result.records) >= 5
    for r in result.records:
        assert r.spikes >= 0 and "score" in r.metrics
        if math.isfinite(r.metrics["score"]):
            expected = r.metrics["score"] + 6 * -0.08 * math.log(max(r.spikes, 1.0) / 1000.0)
            assert r.fitness == pytest.approx(expected)
    assert result.pareto and all(math.isfinite(r.metrics["score"]) for r in result.pareto)


def test_cli_training_free_evolution_autosnn_space(tmp_path, capsys):
    out = tmp_path / "evo.json"
    code = main([
        "--algorithm", "evolution", "--space", "autosnn", "--fitness", "score", "--dataset", "digits",
        "--input-size", "8", "--width", "2", "--timesteps", "2", "--batch-size", "8", "--population", "4",
        "--iterations", "2", "--budget", "20k", "--backend", "torch", "--output", str(out), "--quiet",
    ])
    assert code == 0
    payload = json.loads(out.read_text())
    for key in ("config", "seed", "versions", "timings", "result", "pareto", "history", "counters"):
        assert key in payload
    assert payload["config"]["algorithm"] == "evolution" and payload["space"] == "autosnn"
    assert payload["result"]["params"] <= 20_000 and payload["meets_budget"] is True
    assert payload["pareto"]["objectives"][0].startswith("score")
    assert len(payload["history"]) == 2
    assert "blocks:" in capsys.readouterr().out


def test_cli_autosnn_fitness_path_end_to_end(tmp_path):
    out = tmp_path / "evo.json"
    args = [
        "--algorithm", "evolution", "--space", "autosnn", "--fitness", "autosnn", "--dataset", "digits",
        "--input-size", "8", "--width", "2", "--timesteps", "2", "--supernet-epochs", "1", "--train-images", "100",
        "--population", "2", "--iterations", "2", "--spike-target", "500", "--output", str(out), "--quiet",
    ]
    assert main(args) == 0
    payload = json.loads(out.read_text())
    assert payload["supernet"]["train_images"] == 80 and payload["supernet"]["val_images"] == 20
    assert 0.0 <= payload["result"]["accuracy"] <= 1.0 and payload["result"]["spikes"] >= 0
    assert payload["fitness"]["target"] == 500
    assert main(args + ["--resume"]) == 0  # everything is already done: nothing is trained or evaluated again
    resumed = json.loads(out.read_text())
    assert resumed["counters"]["evaluated"] == 0 and resumed["counters"]["resumed"] == 4
    assert resumed["supernet"]["log"]["resumed_from"] == 1


def test_cli_rejects_autosnn_fitness_on_the_cell_space(tmp_path, capsys):
    code = main(["--algorithm", "evolution", "--space", "cell", "--fitness", "autosnn", "--output",
                 str(tmp_path / "x.json"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: fitness autosnn needs --space autosnn") and "Traceback" not in err


def test_smallest_autosnn_network_is_the_minimum_of_the_space(auto_space):
    from spikenas.autosnn.memory import smallest_network_params

    smallest = smallest_network_params(auto_space.config)
    assert smallest == int(enumerate_params(auto_space.config).min())
    assert auto_space.infeasible(Budget(smallest)) is None
    message = auto_space.infeasible(Budget(smallest - 1, bits=8))
    assert f"has {smallest:,} parameters = {smallest:,} bytes at 8 bits" in message and "--width" in message
