"""Untrusted data and checkpoints: loading never runs code from the file, and bad files give one line.

Each hostile file asks pickle to call something that leaves a marker file behind (``os.system('touch ...')``,
``builtins.open(..., 'w')``, ``builtins.exec``); the test fails if the marker exists after loading.
"""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spikenas.autosnn.network import AutoSNNConfig
from spikenas.autosnn.supernet import SupernetConfig, SuperNetwork, train_supernet
from spikenas.data import load_dataset
from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig
from spikenas.safe_load import load_checkpoint_file
from spikenas.space import Genotype
from spikenas.train.__main__ import main as train_cli
from spikenas.train.trainer import CHECKPOINT_NAME, TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


class Payload:
    """An object whose unpickling calls ``call(*args)``."""

    def __init__(self, call, *args) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def payloads(marker: Path) -> dict[str, Payload]:
    """Three ways a pickle can act on the machine, each creating ``marker`` if it runs."""
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "builtins.open": Payload(builtins.open, str(marker), "w"),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
    }


def cifar_batch(n: int, seed: int, label_key: bytes = b"labels", classes: int = 10) -> dict:
    """A batch in CIFAR's "python version" layout."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch 1 of 5",
        label_key: [int(v) for v in rng.integers(0, classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def write_cifar10(root: Path, first: object, *, protocol: int = 2) -> Path:
    """A cifar-10-batches-py folder whose data_batch_1 holds ``first`` and whose other files are valid."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate(CIFAR10_FILES):
        with open(folder / name, "wb") as f:
            pickle.dump(first if i == 0 else cifar_batch(4, i), f, protocol=protocol)
    return folder


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_real_cifar_layout_loads(tmp_path, protocol):
    """The allow-list covers what numpy writes for an array and Python for bytes, at every protocol."""
    batch = cifar_batch(6, 0)
    folder = write_cifar10(tmp_path, batch, protocol=protocol)
    ds = load_dataset("cifar10", data_dir=tmp_path, split="train")
    assert ds.images.shape == (6 + 4 * 4, 3, 32, 32) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[:6].reshape(6, -1), batch[b"data"])
    np.testing.assert_array_equal(ds.labels[:6], batch[b"labels"])
    with open(folder / "test_batch", "wb") as f:  # numpy integer labels and scalars pickle too
        pickle.dump({**cifar_batch(3, 9), b"labels": np.array([1, 2, 3]), b"extra": np.int64(5)}, f,
                    protocol=protocol)
    assert load_dataset("cifar10", data_dir=tmp_path, split="test").labels.tolist() == [1, 2, 3]


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("kind", ["os.system", "builtins.open", "builtins.exec"])
def test_cifar_payload_never_runs(tmp_path, kind, protocol):
    marker = tmp_path / "pwned"
    batch = {**cifar_batch(2, 0), b"batch_label": payloads(marker)[kind]}
    write_cifar10(tmp_path / "data", batch, protocol=protocol)
    with pytest.raises(SpikeNASError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "data", split="train")
    message = str(err.value)
    assert "\n" not in message and "data_batch_1" in message and "refused" in message
    assert kind.split(".")[1] in message  # the refused global is named
    assert not marker.exists()


def test_cifar_payload_through_the_cli_is_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"
    write_cifar10(tmp_path / "data", {**cifar_batch(2, 0), b"data": payloads(marker)["os.system"]})
    code = train_cli(["--genotype", "5", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                      "--epochs", "1", "--output-dir", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "\n" not in err and "refused" in err
    assert not marker.exists() and not (tmp_path / "out" / CHECKPOINT_NAME).exists()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"not a pickle", "malformed CIFAR pickle"),
        (pickle.dumps(cifar_batch(2, 0))[:-40], "malformed CIFAR pickle"),  # truncated
        (b"", "malformed CIFAR pickle"),
        (pickle.dumps([1, 2, 3]), "expected a dict"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "uint8"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "uint8 \\[N, 3072\\]"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), "in \\[0, 10\\)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "2 integers"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]}), "integers"),
    ],
)
def test_malformed_cifar_is_one_line(tmp_path, content, match):
    folder = write_cifar10(tmp_path, cifar_batch(2, 0))
    (folder / "data_batch_1").write_bytes(content)
    with pytest.raises(SpikeNASError, match=match) as err:
        load_dataset("cifar10", data_dir=tmp_path, split="train")
    assert "\n" not in str(err.value) and "data_batch_1" in str(err.value)


def _malicious_checkpoint(path: Path, marker: Path, kind: str = "os.system") -> None:
    torch.save({"format": 1, "fingerprint": {}, "epoch": 1, "model": {"w": torch.zeros(2)},
                "note": payloads(marker)[kind]}, path)


@pytest.mark.parametrize("kind", ["os.system", "builtins.open", "builtins.exec"])
def test_checkpoint_payload_never_runs(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / CHECKPOINT_NAME
    _malicious_checkpoint(path, marker, kind)
    with pytest.raises(SpikeNASError, match="refused checkpoint") as err:
        load_checkpoint_file(path)
    assert "\n" not in str(err.value) and kind.split(".")[1] in str(err.value)
    assert not marker.exists()


def test_export_refuses_a_malicious_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    _malicious_checkpoint(tmp_path / CHECKPOINT_NAME, marker)
    run = subprocess.run(
        [sys.executable, "-m", "spikenas.export", "--checkpoint", str(tmp_path / CHECKPOINT_NAME), "--output",
         str(tmp_path / "net.nir")], capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "refused checkpoint" in run.stderr
    assert not marker.exists() and not (tmp_path / "net.nir").exists()


def test_resume_refuses_a_malicious_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    digits = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    macro = MacroConfig(num_cells=1, width=2, in_channels=1, input_size=8, hidden=8, timesteps=2)
    _malicious_checkpoint(tmp_path / CHECKPOINT_NAME, marker)
    config = TrainConfig(epochs=1, max_train_samples=16, max_test_samples=8)
    with pytest.raises(SpikeNASError, match="refused checkpoint"):
        train(Genotype.from_index(5, "3O"), macro, *digits, config=config, checkpoint_dir=tmp_path, resume=True,
              progress=False)
    assert not marker.exists()


def test_supernet_resume_refuses_a_malicious_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "supernet.pt"
    _malicious_checkpoint(path, marker)
    supernet = SuperNetwork(AutoSNNConfig(base_channels=2, timesteps=2, in_channels=1, input_size=8))
    with pytest.raises(SpikeNASError, match="refused super-network checkpoint"):
        train_supernet(supernet, torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long),
                       config=SupernetConfig(epochs=1), checkpoint=path, resume=True, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, match",
    [
        (b'{"config": {}}', "is a JSON file, not a checkpoint"),
        (b"garbage bytes", "cannot read checkpoint"),
        (b"", "cannot read checkpoint"),
    ],
)
def test_bad_checkpoint_file_is_one_line(tmp_path, content, match):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(content)
    with pytest.raises(SpikeNASError, match=match) as err:
        load_checkpoint_file(path)
    assert "\n" not in str(err.value)


def test_real_checkpoints_load_with_weights_only(tmp_path):
    """What the trainer saves (model, optimizer, scheduler, history, RNG state) loads under weights_only."""
    digits = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    macro = MacroConfig(num_cells=1, width=2, in_channels=1, input_size=8, hidden=8, timesteps=2)
    for optimizer, schedule in (("sgd", "epoch"), ("adamw", "step")):
        folder = tmp_path / optimizer
        config = TrainConfig(epochs=1, max_train_samples=16, max_test_samples=8, optimizer=optimizer, lr=0.01,
                             eta_min=0.001, schedule=schedule)
        train(Genotype.from_index(5, "3O"), macro, *digits, config=config, checkpoint_dir=folder, progress=False,
              count_test_spikes=False)
        state = load_checkpoint_file(folder / CHECKPOINT_NAME)
        assert state["epoch"] == 1 and set(state) >= {"model", "optimizer", "scheduler", "rng", "history"}


def test_numpy_1_pickles_load(tmp_path):
    """The published CIFAR files were pickled by numpy 1.x, whose array reconstructor lives in numpy.core."""
    batch = cifar_batch(3, 0)
    folder = write_cifar10(tmp_path, batch)
    old = pickle.dumps(batch, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old
    (folder / "data_batch_1").write_bytes(old)
    ds = load_dataset("cifar10", data_dir=tmp_path, split="train")
    np.testing.assert_array_equal(ds.images[:3].reshape(3, -1), batch[b"data"])


def test_cifar_sample_with_pickled_objects_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar10_sample.npz"
    x = np.empty(1, dtype=object)
    x[0] = payloads(marker)["os.system"]
    np.savez(path, x=x, y=np.zeros(1, np.int64))
    with pytest.raises(SpikeNASError, match="malformed") as err:
        load_dataset("cifar10-sample", data_dir=tmp_path)
    assert "\n" not in str(err.value) and not marker.exists()
