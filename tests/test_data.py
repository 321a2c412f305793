"""Dataset readers on tiny files written in the standard layouts."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from spikenas.data import load_dataset
from spikenas.errors import SpikeNASError


def write_idx(path, array: np.ndarray, *, compress: bool) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_idx(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    ext = ".gz" if compress else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{ext}", images, compress=compress)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{ext}", labels, compress=compress)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path, split="test")
    assert ds.images.shape == (7, 1, 28, 28) and (ds.images[:, 0] == images).all()
    assert (ds.labels == labels).all()
    with pytest.raises(SpikeNASError, match=r"train-images-idx3-ubyte\[.gz\]"):
        load_dataset("fashion-mnist", data_dir=tmp_path, split="train")


def test_fashion_mnist_malformed(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x01\x02\x03")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3), compress=False)
    with pytest.raises(SpikeNASError, match="malformed IDX"):
        load_dataset("fashion-mnist", data_dir=tmp_path, split="test")


def write_cifar(folder, files, label_key, n, classes, rng):
    folder.mkdir()
    expected = {}
    for name in files:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, label_key: labels}, f)
        expected[name] = (data, labels)
    return expected


def test_cifar10_and_cifar100(tmp_path):
    rng = np.random.default_rng(1)
    c10 = write_cifar(tmp_path / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
                      b"labels", 4, 10, rng)
    ds = load_dataset("cifar10", data_dir=tmp_path, split="train")
    assert ds.images.shape == (20, 3, 32, 32) and ds.num_classes == 10
    assert (ds.images[0].reshape(-1) == c10["data_batch_1"][0][0]).all()  # CHW row layout
    assert ds.labels.tolist()[:4] == c10["data_batch_1"][1]
    write_cifar(tmp_path / "cifar-100-python", ["train", "test"], b"fine_labels", 5, 100, rng)
    ds = load_dataset("cifar100", data_dir=tmp_path, split="test")
    assert ds.images.shape == (5, 3, 32, 32) and ds.num_classes == 100


def test_cifar_missing_and_malformed(tmp_path):
    with pytest.raises(SpikeNASError, match="data_batch_1.*python-version layout"):
        load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(SpikeNASError, match="does not exist"):
        load_dataset("cifar10", data_dir=tmp_path / "nope")
    with pytest.raises(SpikeNASError, match="needs --data-dir"):
        load_dataset("cifar100")
    (tmp_path / "train").write_bytes(b"not a pickle")
    (tmp_path / "test").write_bytes(b"not a pickle")
    with pytest.raises(SpikeNASError, match="malformed CIFAR pickle"):
        load_dataset("cifar100", data_dir=tmp_path)


def test_digits_and_batches():
    ds = load_dataset("digits")
    assert ds.images.shape[1:] == (1, 8, 8) and ds.images.dtype == np.uint8
    a = ds.batches(16, 2, seed=5, input_size=16)
    b = ds.batches(16, 2, seed=5, input_size=16)
    assert a[0].shape == (16, 1, 16, 16)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    with pytest.raises(SpikeNASError, match="fewer than"):
        ds.batches(1000, 2, seed=0)
    with pytest.raises(SpikeNASError, match="unknown dataset"):
        load_dataset("imagenet")


def test_cifar_sample(cifar_sample_path):
    ds = load_dataset("cifar10-sample", data_dir=cifar_sample_path.parent)
    assert ds.images.shape == (2000, 3, 32, 32) and (ds.labels[:10] == np.arange(10)).all()
