"""The search request (spikenas.nas.request): its parts, its flat form, the library's defaults, and the same
request (and result) from the command line and from ``spikenas.search``."""

from __future__ import annotations

import dataclasses
import json

import pytest

import spikenas
from spikenas.errors import SpikeNASError
from spikenas.journal import fingerprint_hash
from spikenas.nas import (
    BudgetOptions,
    DataOptions,
    EvolutionOptions,
    MacroOptions,
    ModeOptions,
    RandomOptions,
    SearchConfig,
    SearchRequest,
    SpikeNASOptions,
)
from spikenas.nas.__main__ import build_parser, main, request_from_args
from spikenas.nas.fast import FastConfig
from spikenas.nas.macro import macro_for
from spikenas.nas.request import FIELDS
from spikenas.nas.rerank import RerankConfig
from spikenas.scoring import ScoreConfig

# The flat form results.json's "config" block and the journal fingerprints have always had (key, default),
# in this order: written out here because it is the contract with files made by earlier versions.
HISTORICAL = {
    "algorithm": "spikenas", "op_set": "3O", "dataset": "digits", "data_dir": None, "num_cells": 2, "width": 16,
    "hidden": 256, "timesteps": 5, "input_size": None, "batch_size": 64, "num_batches": 1, "samples": 5000,
    "budget": None, "bits": None, "budget_kind": None, "state_bits": None, "activation_bits": None,
    "buffer_scope": "timestep",
    "score": {"name": "conv_depth", "alpha": None, "reduce": None, "bn_mode": None, "backend": None,
              "tie_break": ["threshold_rise"]},
    "mode": "exact", "weight_seeding": None, "proxy_batch": None, "rescore_fraction": 0.05, "race_top": 10, "seed": 0,
    "space": "cell", "fitness": "score", "population": 20, "iterations": 20, "supernet_epochs": 10,
    "spike_target": 110000.0, "train_images": None, "rerank": None,
}
# Tiny searches of each algorithm (a few seconds each): flat fields, and the same as command-line flags.
TINY = dict(dataset="digits", op_set="2O", num_cells=1, width=4, hidden=8, timesteps=2, input_size=8, batch_size=8)
TINY_FLAGS = ["--dataset", "digits", "--ops", "2O", "--cells", "1", "--width", "4", "--hidden", "8",
              "--timesteps", "2", "--input-size", "8", "--batch-size", "8"]
ALGORITHM_CASES = {
    "spikenas": ({}, []),
    "random": ({"samples": 12, "seed": 3}, ["--samples", "12", "--seed", "3"]),
    "evolution": ({"population": 4, "iterations": 2}, ["--population", "4", "--iterations", "2"]),
}
TIMING_KEYS = {"timings", "versions", "seconds"}


def as_json(data: object) -> object:
    return json.loads(json.dumps(data))


def without_timings(data: object) -> object:
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if k not in TIMING_KEYS}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data


def test_the_flat_form_keeps_its_historical_keys_order_and_defaults():
    assert SearchConfig is SearchRequest and spikenas.SearchConfig is SearchRequest
    flat = as_json(SearchRequest().to_dict())
    assert list(flat) == list(HISTORICAL) == list(FIELDS) and flat == HISTORICAL
    old = {**HISTORICAL, "algorithm": "random", "samples": 7, "width": 8, "budget": 1e4, "bits": 8}
    request = SearchRequest.from_dict(old)
    assert isinstance(request.algorithm, RandomOptions) and request.algorithm.samples == 7
    assert (request.macro.width, request.budget.limit, request.budget.bits) == (8, 1e4, 8)
    assert as_json(request.to_dict()) == old
    assert fingerprint_hash({"config": request.to_dict()}) == fingerprint_hash({"config": old})


@pytest.mark.parametrize("algorithm", ["spikenas", "random", "evolution"])
def test_to_dict_and_from_dict_round_trip(algorithm):
    request = SearchRequest.from_fields(algorithm=algorithm, **TINY, **ALGORITHM_CASES[algorithm][0])
    assert SearchRequest.from_dict(request.to_dict()) == request
    assert SearchRequest.from_dict(as_json(request.to_dict())) == request


def test_a_request_is_made_of_parts_by_keyword_only():
    request = SearchRequest(
        algorithm=RandomOptions(samples=30), macro=MacroOptions(op_set="2O", width=8, timesteps=3),
        data=DataOptions(batch_size=16), budget=BudgetOptions(limit=5e4, bits=8),
        mode=ModeOptions(name="fast", fast=FastConfig(proxy_batch=4)), rerank=RerankConfig(top=3), seed=5,
    )
    flat = request.to_dict()
    assert (flat["algorithm"], flat["samples"], flat["op_set"], flat["width"], flat["timesteps"]) == (
        "random", 30, "2O", 8, 3)
    assert (flat["batch_size"], flat["budget"], flat["bits"], flat["mode"], flat["proxy_batch"], flat["seed"]) == (
        16, 5e4, 8, "fast", 4, 5)
    assert flat["rerank"]["top"] == 3 and flat["population"] == 20  # other algorithms' options: their defaults
    assert SearchRequest.from_dict(flat) == request
    with pytest.raises(TypeError):
        SearchRequest(RandomOptions())  # keyword-only
    with pytest.raises(TypeError):
        MacroOptions("2O")


def test_parts_that_are_not_options_classes_are_refused():
    with pytest.raises(SpikeNASError, match="algorithm must be SpikeNASOptions, RandomOptions or EvolutionOptions"):
        SearchRequest(algorithm="random")
    with pytest.raises(SpikeNASError, match="macro must be MacroOptions, got"):
        SearchRequest(macro={"width": 4})
    with pytest.raises(SpikeNASError, match=r"width must be an integer, got 4.5 \(float\)"):
        MacroOptions(width=4.5)
    with pytest.raises(SpikeNASError, match="limit must be a finite number or None, got True"):
        BudgetOptions(limit=True)


@pytest.mark.parametrize("fields,message", [
    ({"algorithm": "random", "population": 4},
     "population is an option of algorithm 'evolution' only; algorithm 'random' does not read it"),
    ({"algorithm": "spikenas", "samples": 10},
     "samples is an option of algorithm 'random' only; algorithm 'spikenas' does not read it"),
    ({"samples": 10}, "algorithm 'spikenas' does not read it"),
    ({"algorithm": "evolution", "samples": 10}, "samples is an option of algorithm 'random' only"),
    ({"algorithm": "evolution", "mode": "fast"},
     "mode is an option of algorithms 'spikenas' and 'random' only; algorithm 'evolution' does not read it"),
    ({"algorithm": "evolution", "proxy_batch": 4}, "proxy_batch is an option of algorithms 'spikenas' and 'random'"),
    ({"algorithm": "evolution", "rerank": {"top": 3}}, "rerank is an option of algorithms 'spikenas' and 'random'"),
    ({"algorithm": "spikenas", "spike_target": 1e5}, "spike_target is an option of algorithm 'evolution' only"),
])
def test_an_option_the_algorithm_does_not_read_is_an_error(fields, message):
    with pytest.raises(SpikeNASError, match=message) as info:
        SearchRequest.from_fields(**fields)
    assert "\n" not in str(info.value)


def test_parts_the_evolution_does_not_read_are_refused():
    with pytest.raises(SpikeNASError, match="mode is an option of algorithms 'spikenas' and 'random' only"):
        SearchRequest(algorithm=EvolutionOptions(), mode=ModeOptions(name="fast"))
    with pytest.raises(SpikeNASError, match="race_top is an option of algorithms 'spikenas' and 'random' only"):
        SearchRequest(algorithm=EvolutionOptions(), mode=ModeOptions(fast=FastConfig(race_top=3)))
    with pytest.raises(SpikeNASError, match="rerank needs algorithm spikenas or random"):
        SearchRequest(algorithm=EvolutionOptions(), rerank=RerankConfig(top=3))


def test_the_library_fills_the_algorithms_defaults():
    evolution = SearchRequest(algorithm=EvolutionOptions())
    assert evolution.score == ScoreConfig(name="sahd", tie_break=()) and evolution.macro.timesteps == 5
    assert SearchRequest.from_fields(algorithm="evolution") == evolution
    autosnn = SearchRequest.from_fields(algorithm="evolution", space="autosnn")
    assert autosnn.macro.timesteps == 8 and autosnn.score.name == "sahd"
    assert SearchRequest.from_fields(algorithm="evolution", space="autosnn", timesteps=3).macro.timesteps == 3
    assert SearchRequest.from_fields(algorithm="evolution", space="autosnn", fitness="autosnn").score == ScoreConfig()
    assert SearchRequest().score == ScoreConfig() and SearchRequest().macro.timesteps == 5
    # a score without a name adds its options to the algorithm's default score; a named one replaces it
    assert SearchRequest.from_fields(algorithm="evolution", score={"alpha": 0.25}).score == ScoreConfig(
        name="sahd", alpha=0.25, tie_break=())
    assert SearchRequest.from_fields(algorithm="evolution", score={"name": "sahd"}).score == ScoreConfig(name="sahd")
    with pytest.raises(SpikeNASError, match="needs a spike-kernel score"):
        SearchRequest.from_fields(algorithm="evolution", score=ScoreConfig())


@pytest.mark.parametrize("argv,fields", [
    (["--algorithm", "evolution"], {"algorithm": "evolution"}),
    (["--algorithm", "evolution", "--space", "autosnn"], {"algorithm": "evolution", "space": "autosnn"}),
    (["--algorithm", "evolution", "--alpha", "0.25"], {"algorithm": "evolution", "score": {"alpha": 0.25}}),
    (["--fast", "--algorithm", "random", "--samples", "9", "--tie-break", "none"],
     {**spikenas.nas.PRESETS["fast"], "algorithm": "random", "samples": 9, "score": {"tie_break": ()}}),
    (["--mode", "fast", "--proxy-batch", "8", "--score", "sahd", "--rerank-top", "2"],
     {"mode": "fast", "proxy_batch": 8, "score": ScoreConfig(name="sahd"), "rerank": RerankConfig(top=2)}),
    (["--rerank-top", "4", "--rerank-margin", "off"], {"rerank": RerankConfig(top=4, margin=None)}),
    (["--rerank-budget", "16", "--rerank-margin", "0.5"], {"rerank": RerankConfig(budget=16, margin=0.5)}),
    (["--budget", "20k", "--bits", "8", "--budget-kind", "onchip_bytes", "--state-bits", "16"],
     {"budget": 20e3, "bits": 8, "budget_kind": "onchip_bytes", "state_bits": 16}),
])
def test_the_command_line_builds_the_request_the_library_builds(argv, fields):
    assert request_from_args(build_parser().parse_args(argv)) == SearchRequest.from_fields(**fields)


def test_the_command_line_refuses_an_option_the_algorithm_does_not_read(tmp_path, capsys):
    assert main(["--algorithm", "random", "--population", "4", "--output", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "population is an option of algorithm 'evolution' only" in err


@pytest.mark.parametrize("argv,message", [
    (["--rerank-margin", "1"], "--rerank-margin 1.0 needs --rerank-top or --rerank-budget"),
    (["--rerank-top", "2", "--rerank-margin", "-1"],
     "argument --rerank-margin: must be a finite number >= 0, got '-1'"),
])
def test_a_bad_rerank_margin_is_refused_in_one_line(tmp_path, capsys, argv, message):
    try:
        code = main([*argv, "--output", str(tmp_path / "r.json")])
    except SystemExit as stop:  # argparse's own refusal
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_modules_receive_their_part():
    macro = macro_for(MacroOptions(width=4, timesteps=2), "digits", in_channels=1, num_classes=10, native_size=8)
    assert (macro.width, macro.timesteps, macro.input_size, macro.num_cells) == (4, 2, 16, 2)
    with pytest.raises(SpikeNASError, match="timesteps is None"):
        macro_for(MacroOptions(), "digits", in_channels=1, num_classes=10, native_size=8)
    assert ModeOptions(name="fast").seeding() == "per_edge" and ModeOptions().seeding() == "network"
    with pytest.raises(SpikeNASError, match="fast mode needs weight_seeding per_edge"):
        ModeOptions(name="fast", weight_seeding="network")
    assert BudgetOptions().build() is None and BudgetOptions(limit=1e3).build().kind == "params"
    assert BudgetOptions(state_bits=4).deployment_target().state_bits == 4


def test_fast_options_outside_the_flat_form_are_recorded_only_when_set():
    request = SearchRequest(mode=ModeOptions(name="fast", fast=FastConfig(rescore_min=3)))
    assert request.to_dict()["rescore_min"] == 3 and "rescore_min" not in SearchRequest().to_dict()
    assert SearchRequest.from_dict(request.to_dict()) == request


def test_with_fields_changes_flat_keys():
    request = SearchRequest.from_fields(**TINY)
    changed = request.with_fields(budget=1e3, bits=8)
    assert changed.budget == BudgetOptions(limit=1e3, bits=8) and changed.macro == request.macro
    assert dataclasses.replace(request, algorithm=SpikeNASOptions()) == request


@pytest.mark.parametrize("algorithm", ["spikenas", "random", "evolution"])
def test_command_line_and_library_give_the_same_result(algorithm, tmp_path, capsys):
    fields, flags = ALGORITHM_CASES[algorithm]
    out = tmp_path / "results.json"
    assert main(["--algorithm", algorithm, *TINY_FLAGS, *flags, "--quiet", "--output", str(out)]) == 0
    capsys.readouterr()
    from_cli = json.loads(out.read_text())
    result = spikenas.search(algorithm=algorithm, **TINY, **fields)
    from_library = as_json(result.payload)
    assert without_timings(from_cli) == without_timings(from_library)
    assert from_cli["config"]["algorithm"] == algorithm and from_cli["config"]["width"] == 4
    if algorithm == "evolution":
        assert from_cli["config"]["score"]["name"] == "sahd"  # the library's default, not the command line's
        assert from_cli["result"]["arch"] == from_library["result"]["arch"]
    else:
        assert [c["nb201"] for c in from_cli["result"]["cells"]] == [g.to_nb201() for g in result.best.cells]
        assert from_cli["result"]["score"] == result.best.score
