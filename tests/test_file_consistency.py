"""results.json, checkpoint and exported files check each other; train and export refuse inputs that disagree.

Each refusal is one line naming the file, the field and both values; nothing is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from spikenas.data import load_dataset
from spikenas.export import main as export_cli
from spikenas.fingerprint import check_cell, first_differing_field, network_digest
from spikenas.network import MacroConfig
from spikenas.space import Genotype
from spikenas.train.__main__ import main as train_cli
from spikenas.train.trainer import CHECKPOINT_NAME, StopTraining, TrainConfig, train

nir = pytest.importorskip("nir", reason="NIR export needs the optional nir package (pip install nir)")

TINY = ["--cells", "1", "--width", "2", "--hidden", "8", "--timesteps", "2", "--input-size", "8", "--epochs", "1",
        "--max-train-samples", "32", "--max-test-samples", "16", "--quantize-bits", "8", "--quiet",
        "--recipe", "snasnet"]
CELL_A, CELL_B = Genotype.from_index(451, "3O"), Genotype.from_index(433, "3O")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two finished trainings of different cells, and one stopped after 1 of 2 epochs."""
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for name, cell in (("a", CELL_A), ("b", CELL_B)):
        out[name] = base / name
        assert train_cli(["--genotype", cell.to_nb201(), *TINY, "--output-dir", str(out[name])]) == 0
    out["unfinished"] = base / "unfinished"
    macro = MacroConfig(num_cells=1, width=2, in_channels=1, input_size=8, hidden=8, timesteps=2)

    def stop(epoch: int, row: dict) -> None:
        raise StopTraining

    train(CELL_A, macro, load_dataset("digits", split="train"), load_dataset("digits", split="test"),
          config=TrainConfig(epochs=2, max_train_samples=32, max_test_samples=16), checkpoint_dir=out["unfinished"],
          progress=False, count_test_spikes=False, on_epoch_end=stop)
    return out


@pytest.fixture
def run_a(runs, tmp_path) -> Path:
    """A private copy of run ``a``'s folder, to tamper with."""
    return Path(shutil.copytree(runs["a"], tmp_path / "a"))


def _export(capsys, *argv: str) -> tuple[int, str]:
    code = export_cli([*argv])
    return code, capsys.readouterr().err.strip()


def _edit(path: Path, change) -> None:
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


def test_train_results_carry_the_fingerprint(runs):
    payload = json.loads((runs["a"] / "results.json").read_text())
    fingerprint = payload["fingerprint"]
    assert fingerprint["network"]["digest"] == network_digest([CELL_A.to_nb201()], payload["config"]["macro"])
    assert fingerprint["network"]["cells"] == [{"nb201": CELL_A.to_nb201(), "op_set": "3O", "index": 451}]
    assert fingerprint["network"]["quantization"] == {"bits": [8], "granularity": "per_channel"}
    assert (fingerprint["epochs_finished"], fingerprint["epochs_asked"]) == (1, 1)
    state = torch.load(runs["a"] / CHECKPOINT_NAME, weights_only=True)
    assert state["fingerprint"]["data"] == fingerprint["data"] and state["epoch"] == 1


def test_export_records_the_fingerprint(runs, tmp_path, capsys):
    out = tmp_path / "net.nir"
    code, err = _export(capsys, "--from-results", str(runs["a"] / "results.json"), "--output", str(out))
    assert code == 0, err
    digest = json.loads((runs["a"] / "results.json").read_text())["fingerprint"]["network"]["digest"]
    report = json.loads(out.with_name("net.nir.json").read_text())
    assert report["fingerprint"]["network_digest"] == digest and report["fingerprint"]["epochs_finished"] == 1
    metadata = nir.read(out).metadata
    assert metadata["network_digest"] == digest and int(metadata["epochs_asked"]) == 1


def test_export_refuses_a_checkpoint_of_another_network(runs, run_a, tmp_path, capsys):
    shutil.copy(runs["b"] / CHECKPOINT_NAME, run_a / CHECKPOINT_NAME)
    code, err = _export(capsys, "--from-results", str(run_a / "results.json"), "--output", str(tmp_path / "x.nir"))
    assert code == 2 and "\n" not in err and str(run_a / CHECKPOINT_NAME) in err
    assert "cells.0" in err and CELL_A.to_nb201() in err and CELL_B.to_nb201() in err
    assert not (tmp_path / "x.nir").exists()


def test_export_refuses_a_checkpoint_of_another_epoch(run_a, tmp_path, capsys):
    _edit(run_a / "results.json", lambda p: p["fingerprint"].update(epochs_finished=2, epochs_asked=2))
    code, err = _export(capsys, "--from-results", str(run_a / "results.json"), "--output", str(tmp_path / "x.nir"))
    assert code == 2 and "epoch is 1" in err and "epochs_finished is 2" in err


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: p["fingerprint"]["network"]["cells"][0].update(nb201=CELL_B.to_nb201()), "disagrees with"),
        (lambda p: p["config"].update(cells=[CELL_B.to_nb201()]), "config.cells"),
        (lambda p: p["config"]["macro"].update(width=3), "digest"),
        (lambda p: p["fingerprint"]["network"].update(digest="0" * 16), "digest"),
    ],
)
def test_export_refuses_results_that_disagree_with_themselves(run_a, tmp_path, capsys, change, match):
    _edit(run_a / "results.json", change)
    code, err = _export(capsys, "--from-results", str(run_a / "results.json"), "--output", str(tmp_path / "x.nir"))
    assert code == 2 and match in err and str(run_a / "results.json") in err and "\n" not in err


@pytest.mark.parametrize("dotted", ["config.cells", "config.macro", "config.train", "fingerprint",
                                    "fingerprint.network", "fingerprint.epochs_finished", "fingerprint.data"])
def test_export_refuses_results_with_a_field_removed(run_a, tmp_path, capsys, dotted):
    *parents, last = dotted.split(".")

    def remove(payload: dict) -> None:
        for part in parents:
            payload = payload[part]
        del payload[last]

    _edit(run_a / "results.json", remove)
    code, err = _export(capsys, "--from-results", str(run_a / "results.json"), "--output", str(tmp_path / "x.nir"))
    assert code == 2 and "required field" in err and dotted in err and "\n" not in err


def test_export_refuses_files_given_in_each_others_place(runs, tmp_path, capsys):
    code, err = _export(capsys, "--checkpoint", str(runs["a"] / "results.json"), "--output", str(tmp_path / "x.nir"))
    assert code == 2 and "is a JSON file, not a checkpoint" in err
    code, err = _export(capsys, "--from-results", str(runs["a"] / CHECKPOINT_NAME), "--output",
                        str(tmp_path / "x.nir"))
    assert code == 2 and "is a torch checkpoint, not a results.json" in err


def test_export_refuses_an_unfinished_training_unless_asked(runs, tmp_path, capsys):
    checkpoint = str(runs["unfinished"] / CHECKPOINT_NAME)
    code, err = _export(capsys, "--checkpoint", checkpoint, "--output", str(tmp_path / "x.nir"))
    assert code == 2 and "did not finish" in err and "epochs finished 1, epochs asked 2" in err
    assert not (tmp_path / "x.nir").exists()
    code, err = _export(capsys, "--checkpoint", checkpoint, "--output", str(tmp_path / "x.nir"), "--allow-unfinished")
    assert code == 0, err
    report = json.loads((tmp_path / "x.nir.json").read_text())
    assert report["fingerprint"]["epochs_finished"] == 1 and report["fingerprint"]["epochs_asked"] == 2


def test_export_refuses_to_overwrite_its_input(run_a, capsys):
    before = (run_a / CHECKPOINT_NAME).read_bytes()
    code, err = _export(capsys, "--checkpoint", str(run_a / CHECKPOINT_NAME), "--output", str(run_a / CHECKPOINT_NAME))
    assert code == 2 and "would overwrite the input" in err
    assert (run_a / CHECKPOINT_NAME).read_bytes() == before


def test_resume_names_the_differing_field(runs, tmp_path, capsys):
    folder = Path(shutil.copytree(runs["b"], tmp_path / "b"))
    code = train_cli(["--genotype", CELL_A.to_nb201(), *TINY, "--output-dir", str(folder), "--resume"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cells.0" in err and CELL_A.to_nb201() in err and CELL_B.to_nb201() in err


def search_results(path: Path, **changes) -> dict:
    """A search's results.json as ``python -m spikenas search`` writes it (the fields training reads)."""
    macro = MacroConfig(num_cells=1, width=2, in_channels=1, input_size=8, hidden=8, timesteps=2, num_classes=10)
    payload = {
        "config": {"dataset": "digits", "data_dir": None, "op_set": "3O", "budget": None, "budget_kind": None},
        "macro": macro.to_dict(),
        "result": {"cells": [{"position": 1, "nb201": CELL_A.to_nb201(), "ops": list(CELL_A.ops), "index": 451}]},
        "fingerprint": {"network": {"digest": network_digest([CELL_A.to_nb201()], macro.to_dict())}},
    }
    path.write_text(json.dumps(payload))
    return payload


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: p["result"]["cells"][0].update(index=433), "disagrees with result.cells.0.index 433"),
        (lambda p: p["result"]["cells"][0].update(ops=list(CELL_B.ops)), "result.cells.0.ops"),
        (lambda p: p["result"]["cells"][0].update(nb201="|x~0|"), "malformed genotype"),
        (lambda p: p["config"].pop("dataset"), "required field 'config.dataset'"),
        (lambda p: p["config"].pop("budget"), "required field 'config.budget'"),
        (lambda p: p["config"].update(budget=1000.0) or p["config"].pop("budget_kind"),
         "required field 'config.budget_kind'"),
        (lambda p: p["macro"].pop("width"), "macro lacks width"),
        (lambda p: p["macro"]["neuron"].pop("tau"), "macro.neuron lacks tau"),
        (lambda p: p["macro"].update(width="wide"), "width must be an integer"),
        (lambda p: p.pop("result"), "required field 'result.cells'"),
        (lambda p: p["result"].update(cells=[]), "hold no cells"),
        (lambda p: p["config"].update(train={}) or p.pop("result"), "is a train command's results.json"),
        (lambda p: p["result"]["cells"][0].update(nb201=CELL_B.to_nb201(), ops=list(CELL_B.ops),
                                                  index=CELL_B.index("3O")), "fingerprint.network.digest is"),
        (lambda p: p["macro"].update(width=3), "the file was changed after the search wrote it"),
    ],
)
def test_train_refuses_search_results_that_are_incomplete_or_disagree(tmp_path, capsys, change, match):
    path = tmp_path / "search.json"
    search_results(path)
    _edit(path, change)
    code = train_cli(["--from-results", str(path), "--output-dir", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and match in err and str(path) in err and "\n" not in err, err
    assert not (tmp_path / "out" / CHECKPOINT_NAME).exists()


def test_train_refuses_a_checkpoint_as_search_results(runs, tmp_path, capsys):
    code = train_cli(["--from-results", str(runs["a"] / CHECKPOINT_NAME), "--output-dir", str(tmp_path), "--quiet"])
    assert code == 2 and "is a torch checkpoint" in capsys.readouterr().err


def test_check_cell_and_first_differing_field():
    assert check_cell({"nb201": CELL_A.to_nb201(), "index": 451, "op_set": "3O"}, "f", "c") == CELL_A
    with pytest.raises(Exception, match="index 10 in op set 3O"):
        check_cell({"nb201": CELL_A.to_nb201(), "index": 10, "op_set": "3O"}, "f", "c")
    assert first_differing_field({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) is None
    assert first_differing_field({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == ("a.1.b", "2", "3")
    assert first_differing_field({"a": 1}, {}) == ("a", "1", "missing")
    assert first_differing_field({"a": 1}, {"a": 1.0}) == ("a", "1", "1.0")
