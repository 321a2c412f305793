"""Training: recipe, augmentation, learning on digits, checkpoint and exact resume, spike counts."""

from __future__ import annotations

import json

import pytest
import torch

from spikenas.data import load_dataset
from spikenas.errors import SpikeNASError
from spikenas.memory import network_params
from spikenas.network import MacroConfig
from spikenas.space import Genotype
from spikenas.train.__main__ import main as train_cli
from spikenas.train.recipes import RECIPES, get_recipe, recipe_name
from spikenas.train.trainer import CHECKPOINT_NAME, StopTraining, TrainConfig, augment, make_scheduler, train

GENOTYPE = Genotype.from_index(100, "3O")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits"), load_dataset("digits", split="test")


@pytest.fixture
def macro() -> MacroConfig:
    return MacroConfig(num_cells=1, width=4, in_channels=1, input_size=8, hidden=32, timesteps=3)


def _quick(**changes) -> TrainConfig:
    base = dict(epochs=3, max_train_samples=256, max_test_samples=128, crop_padding=1, batch_size=32, seed=3)
    base.update(changes)
    return TrainConfig(**base)


def test_defaults_are_snasnets_recipe():
    c = TrainConfig()
    assert (c.lr, c.momentum, c.weight_decay, c.eta_min, c.batch_size, c.crop_padding, c.flip) == (
        0.1, 0.9, 5e-4, 1e-3, 64, 4, True
    )
    assert MacroConfig().timesteps == 5


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0), ("lr", -1.0), ("eta_min", 1.0), ("head_init", "xavier"), ("optimizer", "adam"),
        ("schedule", "linear"), ("warmup_steps", -1), ("label_smoothing", 1.0),
    ],
)
def test_bad_config(field, value):
    with pytest.raises(SpikeNASError, match=field):
        TrainConfig(**{field: value})


def test_augment_crops_flips_and_is_seeded():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    fill = torch.full((1, 1, 1, 1), -7.0)
    a = augment(x, padding=2, flip=True, fill=fill, generator=torch.Generator().manual_seed(0))
    b = augment(x, padding=2, flip=True, fill=fill, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    for img, src in zip(a, x, strict=True):
        values = set(img.flatten().tolist())
        assert values <= set(src.flatten().tolist()) | {-7.0}
    same = augment(x, padding=0, flip=False, fill=fill, generator=torch.Generator())
    assert torch.equal(same, x)
    flipped = [
        augment(x, padding=0, flip=True, fill=fill, generator=torch.Generator().manual_seed(s)) for s in range(8)
    ]
    assert any(torch.equal(f[0], x[0].flip(-1)) for f in flipped)


def test_weight_decay_reaches_sgd_by_keyword(monkeypatch, digits, macro):
    seen = {}
    original = torch.optim.SGD.__init__

    def spy(self, params, *args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        original(self, params, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "__init__", spy)
    train(GENOTYPE, macro, *digits, config=_quick(epochs=1, weight_decay=1e-3), progress=False, count_test_spikes=False)
    assert seen["args"] == () and seen["kwargs"]["weight_decay"] == 1e-3 and seen["kwargs"].get("dampening", 0) == 0


def test_learns_above_chance_and_counts_spikes(digits, macro):
    result = train(GENOTYPE, macro, *digits, config=_quick(epochs=4, max_train_samples=800), progress=False)
    assert len(result.history) == 4
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.test_accuracy > 0.2  # chance is 0.1
    lrs = [row["lr"] for row in result.history]
    assert lrs[0] == 0.1 and lrs == sorted(lrs, reverse=True)
    spikes = result.spikes
    assert spikes.samples == 128 and spikes.total > 0
    assert set(spikes.per_layer) == set(spikes.rates) and all(0 <= r <= 1 for r in spikes.rates.values())


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, digits, macro):
    config = _quick(epochs=3)
    full = train(GENOTYPE, macro, *digits, config=config, checkpoint_dir=tmp_path / "full", progress=False)

    def kill_after_first(epoch, row):
        if epoch == 1:
            raise StopTraining

    part = train(
        GENOTYPE, macro, *digits, config=config, checkpoint_dir=tmp_path / "cut", progress=False,
        on_epoch_end=kill_after_first,
    )
    assert len(part.history) == 1 and (tmp_path / "cut" / CHECKPOINT_NAME).exists()
    resumed = train(
        GENOTYPE, macro, *digits, config=config, checkpoint_dir=tmp_path / "cut", resume=True, progress=False
    )
    assert resumed.resumed_from == 1 and len(resumed.history) == 3
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.test_accuracy == full.test_accuracy
    keys = ("train_loss", "train_accuracy", "test_accuracy", "test_loss", "lr")
    assert [[r[k] for k in keys] for r in resumed.history] == [[r[k] for k in keys] for r in full.history]
    assert resumed.spikes.to_dict() == full.spikes.to_dict()


def test_resume_refuses_missing_or_foreign_checkpoint(tmp_path, digits, macro):
    with pytest.raises(SpikeNASError, match="no checkpoint"):
        train(GENOTYPE, macro, *digits, config=_quick(epochs=1), checkpoint_dir=tmp_path, resume=True, progress=False)
    train(GENOTYPE, macro, *digits, config=_quick(epochs=1), checkpoint_dir=tmp_path, progress=False,
          count_test_spikes=False)
    with pytest.raises(SpikeNASError, match="different"):
        train(GENOTYPE, macro, *digits, config=_quick(epochs=1, lr=0.05), checkpoint_dir=tmp_path, resume=True,
              progress=False)


def test_dataset_must_fit_network(digits):
    wrong = MacroConfig(num_cells=1, width=4, in_channels=3, input_size=8, hidden=32, timesteps=3)
    with pytest.raises(SpikeNASError, match="channels"):
        train(GENOTYPE, wrong, *digits, config=_quick(epochs=1), progress=False)


def _search_results(path, macro: MacroConfig, **config) -> None:
    payload = {
        "config": {"dataset": "digits", "data_dir": None, "op_set": "3O", "budget": None, **config},
        "macro": macro.to_dict(),
        "result": {"cells": [{"position": i + 1, "nb201": GENOTYPE.to_nb201()} for i in range(macro.num_cells)]},
    }
    path.write_text(json.dumps(payload))


def test_cli_from_search_results_reuses_macro_and_reports(tmp_path, macro, capsys):
    results = tmp_path / "search.json"
    _search_results(results, macro.replace(hidden=24))
    out = tmp_path / "run"
    argv = [
        "--from-results", str(results), "--epochs", "1", "--max-train-samples", "64", "--max-test-samples", "32",
        "--crop-padding", "1", "--width", "3", "--output-dir", str(out), "--quiet", "--quantize-bits", "8", "4",
        "--recipe", "snasnet",
    ]
    assert train_cli(argv) == 0
    payload = json.loads((out / "results.json").read_text())
    assert payload["config"]["macro"]["hidden"] == 24 and payload["config"]["macro"]["width"] == 3
    assert payload["config"]["macro"]["input_size"] == 8 and payload["config"]["dataset"] == "digits"
    assert payload["config"]["recipe"] == "snasnet" and payload["config"]["train"]["optimizer"] == "sgd"
    assert {"config", "seed", "versions", "timings", "history", "spikes", "quantization"} <= set(payload)
    assert [r["bits"] for r in payload["quantization"]] == [32, 8, 4]
    params = network_params(GENOTYPE, MacroConfig.from_dict(payload["config"]["macro"]))
    assert payload["params"] == params
    assert [r["bytes"] for r in payload["quantization"]] == [4 * params, params, (params * 4 + 7) // 8]
    assert (out / CHECKPOINT_NAME).exists() and "bits" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--genotype", "nonsense"], "malformed genotype"),
        (["--genotype", "1", "2", "3", "--cells", "2"], "3 genotypes"),
        (["--from-results", "/nonexistent/results.json"], "cannot read search results"),
        (["--genotype", "5", "--epochs", "0"], "epochs"),
        (["--genotype", "5", "--device", "abacus"], "--device 'abacus'"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, match):
    assert train_cli([*argv, "--output-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and match in err and "\n" not in err


def test_warmup_needs_step_schedule():
    with pytest.raises(SpikeNASError, match="warmup_steps"):
        TrainConfig(warmup_steps=10)


def test_step_schedule_warms_up_then_decays_to_eta_min():
    config = TrainConfig(optimizer="adamw", lr=1e-2, eta_min=1e-4, schedule="step", warmup_steps=5, epochs=2)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch=50)  # 100 batches: warm-up capped at 10
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(2e-3) and lrs[4] == pytest.approx(1e-2) and max(lrs) == pytest.approx(1e-2)
    assert lrs[5:] == sorted(lrs[5:], reverse=True)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    short = make_scheduler(optimizer, config.replace(epochs=1), steps_per_epoch=20)  # 20 batches: 2 of warm-up
    assert short.lr_lambdas[0](0) == pytest.approx(0.5)


def test_adamw_step_schedule_learns_and_resumes_exactly(tmp_path, digits, macro):
    config = _quick(
        epochs=2, optimizer="adamw", lr=1e-2, weight_decay=1e-2, eta_min=1e-5, schedule="step", warmup_steps=4,
        label_smoothing=0.1, max_train_samples=320,
    )
    full = train(GENOTYPE, macro, *digits, config=config, checkpoint_dir=tmp_path / "full", progress=False,
                 count_test_spikes=False)
    assert full.history[1]["train_loss"] < full.history[0]["train_loss"]

    def kill_after_first(epoch, row):
        if epoch == 1:
            raise StopTraining

    train(GENOTYPE, macro, *digits, config=config, checkpoint_dir=tmp_path / "cut", progress=False,
          on_epoch_end=kill_after_first, count_test_spikes=False)
    resumed = train(GENOTYPE, macro, *digits, config=config, checkpoint_dir=tmp_path / "cut", resume=True,
                    progress=False, count_test_spikes=False)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in full.history]


def test_recipes_resolve_per_dataset():
    assert recipe_name("auto", "fashion-mnist") == "fashion-mnist"
    assert recipe_name("auto", "cifar10-sample") == "snasnet"
    assert get_recipe("snasnet").macro_fields() == {} and get_recipe("snasnet").train == TrainConfig()
    with pytest.raises(SpikeNASError, match="unknown recipe 'nope'"):
        recipe_name("nope", "digits")
    for name, recipe in RECIPES.items():  # every preset is a valid network and training config
        MacroConfig(in_channels=3, **recipe.macro_fields())
        assert recipe.description, name
    fashion = get_recipe("auto", "fashion-mnist")
    assert fashion.train.optimizer == "adamw" and fashion.train.schedule == "step" and fashion.timesteps == 2


def test_cli_applies_the_dataset_recipe_and_flags_override_it(tmp_path):
    results = tmp_path / "search.json"
    _search_results(results, MacroConfig(num_cells=1, width=4, in_channels=1, input_size=16, hidden=32, timesteps=4))
    out = tmp_path / "run"
    argv = [
        "--from-results", str(results), "--epochs", "1", "--max-train-samples", "64", "--max-test-samples", "32",
        "--hidden", "16", "--lr", "5e-3", "--output-dir", str(out), "--quiet", "--quantize-bits", "8",
    ]
    assert train_cli(argv) == 0
    payload = json.loads((out / "results.json").read_text())
    recipe = get_recipe("digits")
    macro, config = payload["config"]["macro"], payload["config"]["train"]
    assert payload["config"]["recipe"] == "digits" and payload["config"]["cells"] == [GENOTYPE.to_nb201()]
    assert macro["num_cells"] == 1  # the search's choice is what is trained
    assert (macro["width"], macro["timesteps"], macro["dropout"]) == (recipe.width, recipe.timesteps, recipe.dropout)
    assert macro["hidden"] == 16 and config["lr"] == 5e-3 and config["epochs"] == 1
    assert config["optimizer"] == recipe.train.optimizer and config["label_smoothing"] == recipe.train.label_smoothing


def test_recipe_keeps_the_size_of_a_network_searched_under_a_budget(tmp_path):
    """The search met its budget on its own network: training with the dataset's recipe must not widen it."""
    searched = MacroConfig(num_cells=1, width=4, in_channels=1, input_size=16, hidden=32, timesteps=4)
    results = tmp_path / "search.json"
    _search_results(results, searched, budget=30000.0, bits=8, budget_kind=None)
    out = tmp_path / "run"
    argv = ["--from-results", str(results), "--epochs", "1", "--max-train-samples", "64", "--max-test-samples", "32",
            "--output-dir", str(out), "--quiet"]
    assert train_cli(argv) == 0
    macro = json.loads((out / "results.json").read_text())["config"]["macro"]
    recipe = get_recipe("digits")
    assert (macro["width"], macro["hidden"], macro["input_size"]) == (4, 32, 16)  # the searched size
    assert (macro["timesteps"], macro["dropout"]) == (recipe.timesteps, recipe.dropout)  # size-neutral fields apply
