"""Every file a command produces is written through a temporary file and a rename, and arguments are checked
before anything is written: a failure mid-write, or a bad argument, leaves the previous file byte-identical."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import spikenas.export as export_module
from spikenas.analyze.report import write_tables
from spikenas.errors import SpikeNASError
from spikenas.export import main as export_cli
from spikenas.network import MacroConfig, build_network
from spikenas.results import atomic_path, save_figure, write_json, write_text
from spikenas.space import Genotype
from spikenas.train import trainer
from spikenas.train.__main__ import main as train_cli
from spikenas.train.__main__ import network_spec, run_training
from spikenas.train.trainer import CHECKPOINT_NAME, TrainConfig

OLD = b"the previous, complete file\n"
NET = ["--cells", "1", "--width", "2", "--hidden", "8", "--timesteps", "2", "--input-size", "8", "--epochs", "1",
       "--max-train-samples", "32", "--max-test-samples", "16", "--recipe", "snasnet", "--quiet"]
TINY = [*NET, "--quantize-bits", "8"]


class WriterFailed(RuntimeError):
    """Raised by a writer after it has written part of its file."""


def _half_write_then_fail(path) -> None:
    Path(path).write_bytes(b"half a fi")
    raise WriterFailed(str(path))


def _only(folder: Path) -> list[str]:
    """The names in ``folder``: no temporary file may be left behind."""
    return sorted(p.name for p in folder.iterdir())


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "table.csv"
    target.write_bytes(OLD)
    with pytest.raises(WriterFailed), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".csv" and tmp != target
        _half_write_then_fail(tmp)
    assert target.read_bytes() == OLD and _only(tmp_path) == ["table.csv"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and _only(tmp_path) == ["table.csv"]


def test_atomic_path_keeps_the_old_file_when_nothing_is_written(tmp_path):
    target = tmp_path / "x.json"
    target.write_bytes(OLD)
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass  # the writer produced no file: the old one stays
    assert target.read_bytes() == OLD


def test_write_json_and_text_keep_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_bytes(OLD)
    with pytest.raises(TypeError):
        write_json(target, {"not json": object()})
    assert target.read_bytes() == OLD and _only(tmp_path) == ["results.json"]
    monkeypatch.setattr(Path, "write_text", lambda self, text: _half_write_then_fail(self))
    with pytest.raises(WriterFailed):
        write_text(target, "new")
    assert target.read_bytes() == OLD and _only(tmp_path) == ["results.json"]


def test_figure_is_written_atomically(tmp_path):
    class Figure:
        def __init__(self, fail: bool) -> None:
            self.fail = fail

        def savefig(self, path, **kwargs) -> None:
            assert Path(path).suffix == ".png" and kwargs == {"dpi": 50}
            if self.fail:
                _half_write_then_fail(path)
            Path(path).write_bytes(b"png")

    target = tmp_path / "plot.png"
    target.write_bytes(OLD)
    with pytest.raises(WriterFailed):
        save_figure(Figure(fail=True), target, dpi=50)
    assert target.read_bytes() == OLD and _only(tmp_path) == ["plot.png"]
    save_figure(Figure(fail=False), target, dpi=50)
    assert target.read_bytes() == b"png"


def test_analysis_tables_keep_the_old_csv(tmp_path, monkeypatch):
    for name in ("table.md", "table.csv"):
        (tmp_path / name).write_bytes(OLD)

    class FailingWriter:
        def __init__(self, f, **kwargs) -> None:
            self.f = f

        def writeheader(self) -> None:
            self.f.write("a,b\n")

        def writerows(self, rows) -> None:
            raise WriterFailed("csv")

    monkeypatch.setattr("spikenas.analyze.report.csv.DictWriter", FailingWriter)
    with pytest.raises(WriterFailed):
        write_tables([{"a": 1, "b": 2}], ["a", "b"], tmp_path)
    assert (tmp_path / "table.csv").read_bytes() == OLD and _only(tmp_path) == ["table.csv", "table.md"]


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(OLD)
    monkeypatch.setattr(trainer.torch, "save", lambda state, f: _half_write_then_fail(f))
    with pytest.raises(WriterFailed):
        trainer.save_checkpoint(path, {"epoch": 1})
    assert path.read_bytes() == OLD and _only(tmp_path) == [CHECKPOINT_NAME]


def test_supernet_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    from spikenas.autosnn import supernet

    path = tmp_path / "supernet.pt"
    path.write_bytes(OLD)
    monkeypatch.setattr(supernet.torch, "save", lambda state, f: _half_write_then_fail(f))
    with pytest.raises(WriterFailed):
        supernet._save(path, {"epoch": 1})
    assert path.read_bytes() == OLD and _only(tmp_path) == ["supernet.pt"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    assert train_cli(["--genotype", "451", *TINY, "--output-dir", str(folder)]) == 0
    return folder


def test_export_failure_mid_write_keeps_the_old_graph(trained, tmp_path, monkeypatch, capsys):
    out = tmp_path / "net.nir"
    out.write_bytes(OLD)
    monkeypatch.setattr(export_module.nir, "write", lambda path, graph: _half_write_then_fail(path))
    with pytest.raises(WriterFailed):
        export_cli(["--from-results", str(trained / "results.json"), "--output", str(out)])
    assert out.read_bytes() == OLD and _only(tmp_path) == ["net.nir"]


@pytest.mark.parametrize("dt", ["inf", "-inf", "nan", "0", "-1e-4", "abc"])
def test_export_refuses_a_bad_dt_before_writing(trained, tmp_path, capsys, dt):
    out = tmp_path / "net.nir"
    out.write_bytes(OLD)
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses it while parsing
        export_cli(["--from-results", str(trained / "results.json"), "--output", str(out), f"--dt={dt}"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "--dt" in err and err.splitlines()[-1].count(dt) >= 1
    assert out.read_bytes() == OLD and _only(tmp_path) == ["net.nir"]


@pytest.mark.parametrize("dt", [float("inf"), float("nan"), 0.0, -1.0])
def test_export_api_refuses_a_bad_dt(dt):
    pytest.importorskip("nir", reason="NIR export needs the optional nir package (pip install nir)")
    model = build_network([Genotype.from_index(433, "3O")], MacroConfig(num_cells=1, width=2, hidden=8, timesteps=2,
                                                                       in_channels=1, input_size=8))
    with pytest.raises(SpikeNASError, match="dt must be a finite"):
        export_module.export_nir(model, dt=dt)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("bits", [["1"], ["17"], ["8", "x"], ["-4"]])
def test_train_bad_quantize_bits_leaves_the_old_run_intact(trained, tmp_path, capsys, bits):
    folder = Path(shutil.copytree(trained, tmp_path / "run"))
    before = _snapshot(folder)
    argv = ["--genotype", "433", *NET, "--output-dir", str(folder), "--quantize-bits", *bits]
    try:
        code = train_cli(argv)
    except SystemExit as exit_info:  # refused while parsing
        code = exit_info.code
    assert code == 2 and "quantize-bits" in capsys.readouterr().err
    assert _snapshot(folder) == before


@pytest.mark.parametrize("bits, granularity", [((8, 1), "per_channel"), ((8, 17), "per_channel"),
                                                ((8, True), "per_channel"), ((8,), "per_row")])
def test_run_training_checks_quantization_before_training(trained, tmp_path, bits, granularity):
    folder = Path(shutil.copytree(trained, tmp_path / "run"))
    before = _snapshot(folder)
    spec = network_spec(genotypes=[Genotype.from_index(433, "3O").to_nb201()], from_results=None,
                        overrides={"num_cells": 1, "width": 2, "hidden": 8, "timesteps": 2, "input_size": 8})
    with pytest.raises(SpikeNASError, match="quantize-bits|quant-granularity"):
        run_training(spec, TrainConfig(epochs=1, max_train_samples=32, max_test_samples=16), quantize_bits=bits,
                     granularity=granularity, output_dir=folder, progress=False)
    assert _snapshot(folder) == before
    assert json.loads(before["results.json"])["fingerprint"]["epochs_finished"] == 1
    assert torch.load(folder / CHECKPOINT_NAME, weights_only=True)["epoch"] == 1
