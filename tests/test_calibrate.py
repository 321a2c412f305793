"""The calibration of the training-free ordering (``python -m spikenas search --calibrate N``)."""

from __future__ import annotations

import functools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spikenas.errors import SpikeNASError
from spikenas.nas import PRESETS, SearchRequest, journal_fingerprint
from spikenas.nas import rerank as rerank_module
from spikenas.nas.calibrate import CalibrateConfig, advise, calibrate_search, stratified_sample
from spikenas.nas.engine import CandidateRecord
from spikenas.network import MacroConfig
from spikenas.space import Genotype
from spikenas.stats import kendall_tau


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n": 2}, "at least 3 candidates, got 2"),
        ({"n": 4, "epochs": 0}, "epochs must be >= 1, got 0"),
        ({"n": 4, "train_samples": 1}, "train_samples must be >= 2 or None, got 1"),
        ({"n": 4, "val_fraction": 1.0}, r"val_fraction must be in \(0, 1\), got 1.0"),
        ({"n": 4, "seeds": (3, 3)}, r"two different integers >= 0, got \(3, 3\)"),
        ({"n": 4, "seeds": (0, 1, 2)}, "two different integers"),
        ({"n": 4, "recipe": "nope"}, "unknown recipe 'nope'"),
        ({"n": 4.5}, "calibrate n must be an integer, got 4.5"),
    ],
)
def test_config_errors_name_the_bad_value(fields, message) -> None:
    with pytest.raises(SpikeNASError, match=message):
        CalibrateConfig(**fields)


def test_stratified_sample_covers_the_order_and_is_seeded() -> None:
    ordered = list(range(100))
    picks = stratified_sample(ordered, 5, seed=0)
    assert len(picks) == 5 and picks == sorted(set(picks))
    assert all(20 * k <= p < 20 * (k + 1) for k, p in enumerate(picks))  # one per fifth: top, middle, bottom
    assert picks == stratified_sample(ordered, 5, seed=0)
    assert any(stratified_sample(ordered, 5, seed=s) != picks for s in range(1, 5))
    assert stratified_sample(ordered[:3], 5, seed=0) == [0, 1, 2]


def test_advice_rule() -> None:
    assert advise(0.6, 0.2, float("nan"), n=8)["verdict"] == "inconclusive"
    assert advise(0.6, 0.2, -0.1, n=8)["verdict"] == "inconclusive"
    half = advise(0.39, 0.05, 0.8, n=8)  # below half the noise floor
    assert half["verdict"] == "rerank" and "less than half" in half["text"] and "--rerank-budget 16" in half["text"]
    wide = advise(0.5, -0.1, 0.8, n=8)  # interval reaches 0
    assert wide["verdict"] == "rerank" and "on 8 candidates" in wide["text"]
    trust = advise(0.41, 0.1, 0.8, n=8)
    assert trust["verdict"] == "trust" and "trustworthy" in trust["text"]


def test_request_writes_calibrate_only_when_set() -> None:
    plain = SearchRequest.from_fields(**PRESETS["fast"])
    assert "calibrate" not in plain.to_dict()
    calibrated = plain.with_fields(calibrate={"n": 5, "epochs": 1, "seeds": [2, 7]})
    assert calibrated.calibrate == CalibrateConfig(n=5, epochs=1, seeds=(2, 7))
    flat = json.loads(json.dumps(calibrated.to_dict()))
    assert flat["calibrate"]["seeds"] == [2, 7] and SearchRequest.from_dict(flat) == calibrated
    assert SearchRequest.from_fields(**PRESETS["fast"], calibrate=CalibrateConfig(n=5, epochs=1, seeds=(2, 7))) == (
        calibrated
    )
    macro = MacroConfig(num_cells=2, width=4, hidden=32, timesteps=4, in_channels=1, input_size=16, num_classes=10)
    assert journal_fingerprint(calibrated, macro) == journal_fingerprint(plain, macro)
    with pytest.raises(SpikeNASError, match="calibrate is an option of algorithms 'spikenas' and 'random' only"):
        SearchRequest.from_fields(algorithm="evolution", calibrate={"n": 4})
    with pytest.raises(SpikeNASError, match="at least 3 candidates"):
        SearchRequest.from_fields(calibrate={"n": 1})


# ---- real short training on digits ------------------------------------------------------------------------

MACRO = MacroConfig(num_cells=2, width=4, hidden=32, timesteps=2, in_channels=1, input_size=16, num_classes=10)


def _evaluator(n: int) -> SimpleNamespace:
    """What calibrate_search reads of an evaluator: scored records, the score's tie-breaks and the seed."""
    records = [CandidateRecord((Genotype.from_index(i, "3O"),) * 2, 100 + i, float(i % 5), "ok") for i in range(n)]
    records.append(CandidateRecord((Genotype.from_index(n, "3O"),) * 2, 1, float("-inf"), "disconnected"))
    return SimpleNamespace(records=records, score_config=SimpleNamespace(tie_break=()), seed=0,
                           tie_score=lambda r, name: 0.0)


def _run(tmp_path, *, resume: bool = False, n: int = 4, val_samples: int | None = 2000) -> dict:
    config = CalibrateConfig(n=n, epochs=1, train_samples=64, val_samples=val_samples, recipe="snasnet")
    return calibrate_search(
        _evaluator(12), config, budget=None,
        macro=MACRO, dataset="digits", data_dir=None, seed=0, directory=tmp_path / "cal", resume=resume,
        progress=False,
    )


def test_small_calibration_on_digits(tmp_path) -> None:
    report = _run(tmp_path)
    assert report["n"] == 4 and report["eligible"] == 12 and report["epochs"] == 1
    assert report["validation"] == {"split": "train", "fraction": 0.2, "seeds": [0, 1]}
    rows = report["candidates"]
    assert [r["position"] for r in rows] == sorted({r["position"] for r in rows})
    assert all(0.0 <= a <= 1.0 for r in rows for a in r["val_accuracy"].values())
    order = np.array([r["order_rank"] for r in rows], dtype=float)
    assert sorted(order) == sorted(np.unique(order, return_inverse=True)[1] + 1)  # dense ranks of the scores
    kt = report["kendall_tau"]
    mean = np.array([r["val_accuracy_mean"] for r in rows])
    seeds = {s: np.array([r["val_accuracy"][s] for r in rows]) for s in ("0", "1")}
    expected = {"ordering_vs_mean": kendall_tau(order, mean), "noise_floor": kendall_tau(seeds["0"], seeds["1"])}
    for name, value in expected.items():
        assert (kt[name] is None and math.isnan(value)) or kt[name] == pytest.approx(value)
    for value in [kt["ordering_vs_mean"], kt["noise_floor"], *kt["ordering_vs_seed"].values(), *kt["interval_90"]]:
        assert value is None or -1.0 <= value <= 1.0
    assert report["advice"]["verdict"] in ("inconclusive", "rerank", "trust") and report["advice"]["rule"]
    assert report["epochs_trained_this_run"] == 2 * 4 * 1


def test_interrupted_calibration_resumes_without_retraining(tmp_path, monkeypatch) -> None:
    real = rerank_module.rerank_stacked_task
    seen: list[int] = []

    @functools.wraps(real)  # the same task name, so the finished run's result file is the real task's
    def killed_on_seed_1(**kwargs):
        seen.append(kwargs["seed"])
        if kwargs["seed"] == 1:
            raise RuntimeError("killed")
        return real(**kwargs)

    monkeypatch.setattr(rerank_module, "rerank_stacked_task", killed_on_seed_1)
    with pytest.raises(SpikeNASError, match="calibrate-seed1"):
        _run(tmp_path, n=3)
    assert seen == [0, 1]
    finished = tmp_path / "cal" / "runs" / "calibrate-seed0.json"
    assert finished.exists() and not (tmp_path / "cal" / "runs" / "calibrate-seed1.json").exists()
    stamp = finished.stat().st_mtime_ns
    monkeypatch.setattr(rerank_module, "rerank_stacked_task", real)
    report = _run(tmp_path, n=3, resume=True)
    assert report["epochs_trained_this_run"] == 3 * 1  # only seed 1 was trained
    assert finished.stat().st_mtime_ns == stamp
    again = _run(tmp_path, n=3, resume=True)
    assert again["epochs_trained_this_run"] == 0 and again["kendall_tau"] == report["kendall_tau"]
    assert _run(tmp_path, n=3)["epochs_trained_this_run"] == 2 * 3  # without resume it starts over


def test_checkpoints_of_a_run_killed_before_its_result_file_are_reused(tmp_path) -> None:
    """A kill after the last epoch's checkpoints but before the seed's result file: the resumed run reads the
    accuracies from the checkpoints (measured on val_samples images of the validation part) and trains nothing."""
    first = _run(tmp_path, n=3, val_samples=50)
    (tmp_path / "cal" / "runs" / "calibrate-seed1.json").unlink()
    again = _run(tmp_path, n=3, val_samples=50, resume=True)
    assert again["epochs_trained_this_run"] == 0
    assert [c["val_accuracy"] for c in again["candidates"]] == [c["val_accuracy"] for c in first["candidates"]]
    assert all(round(a * 50) == pytest.approx(a * 50) for c in first["candidates"] for a in c["val_accuracy"].values())


# ---- the command ------------------------------------------------------------------------------------------


def test_cli_calibrate_on_digits(tmp_path, capsys) -> None:
    from spikenas.nas.__main__ import main

    out = tmp_path / "c.json"
    args = ["--fast", "--calibrate", "3", "--calibrate-epochs", "1", "--calibrate-train-samples", "64",
            "--output", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "noise floor" in printed and "advice: " in printed
    payload = json.loads(out.read_text())
    cal = payload["calibration"]
    assert payload["config"]["calibrate"]["n"] == 3 and cal["n"] == 3 and len(cal["candidates"]) == 3
    assert cal["directory"] == str(tmp_path / "c.calibrate") and "calibrate_s" in payload["timings"]
    assert cal["epochs_trained_this_run"] == 2 * 3
    assert main([*args, "--resume"]) == 0
    assert json.loads(out.read_text())["calibration"]["epochs_trained_this_run"] == 0


def test_cli_calibrate_errors_are_one_line(tmp_path, capsys) -> None:
    from spikenas.nas.__main__ import main

    out = str(tmp_path / "c.json")
    with pytest.raises(SystemExit) as exited:
        main(["--fast", "--calibrate", "2", "--output", out])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--calibrate: must be an integer >= 3, got '2'" in err[-1]
    assert main(["--fast", "--calibrate-epochs", "2", "--output", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--calibrate-epochs 2 needs --calibrate N" in err[0]
    assert main(["--fast", "--algorithm", "evolution", "--calibrate", "4", "--output", out]) == 2
    assert "calibrate" in capsys.readouterr().err
    assert main(["--fast", "--evaluate", "0", "--calibrate", "4", "--output", out]) == 2
    assert "--evaluate scores one network" in capsys.readouterr().err


def test_readme_command_runs_under_its_reduction(tmp_path, monkeypatch) -> None:
    from test_readme import REDUCTIONS, readme_commands, reduced_argv

    from spikenas.nas.__main__ import main

    text = "```bash\npython -m spikenas search --fast --calibrate 8 --output calibrated.json\n```\n"
    (command,) = readme_commands(text)
    assert command.kind in REDUCTIONS
    monkeypatch.chdir(tmp_path)
    argv = reduced_argv(command)
    assert main(argv[1:]) == 0
    cal = json.loads((tmp_path / "calibrated.json").read_text())["calibration"]
    assert cal["n"] == 8 and cal["epochs"] == 1 and cal["config"]["train_samples"] == 128
