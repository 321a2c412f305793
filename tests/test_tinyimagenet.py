"""TinyImageNet-200 from its standard JPEG tree, and the 64x64 network with the stride-2 stem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spikenas.data import default_stem_stride, load_dataset
from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig, build_network
from spikenas.space import Genotype
from spikenas.train.__main__ import main as train_cli

Image = pytest.importorskip("PIL.Image", reason="TinyImageNet's JPEGs are decoded with Pillow")

WNIDS = ["n01443537", "n01629819", "n01641577"]
TRAIN_PER_CLASS = 4
# (file, wnid) of the val split, in annotation order
VAL = [("val_0.JPEG", WNIDS[2]), ("val_1.JPEG", WNIDS[0]), ("val_2.JPEG", WNIDS[1]), ("val_3.JPEG", WNIDS[0])]


def _colour(label: int, i: int) -> tuple[int, int, int]:
    """A flat colour per (class, image) that survives JPEG compression to within a few levels."""
    return (40 + 80 * label, 200 - 30 * i, 100 + 20 * label)


def _jpeg(path, colour, size: int = 64, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (size, size), colour)
    (image.convert("L") if mode == "L" else image).save(path, format="JPEG", quality=95)


def write_tree(root) -> None:
    """A tiny TinyImageNet-200 in the archive's layout: wnids.txt, train/<wnid>/images, val/images + annotations."""
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for label, wnid in enumerate(WNIDS):
        for i in range(TRAIN_PER_CLASS):
            _jpeg(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", _colour(label, i))
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for i, (name, wnid) in enumerate(VAL):
        _jpeg(base / "val" / "images" / name, _colour(WNIDS.index(wnid), i), mode="L" if i == 3 else "RGB")
        lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tin")
    write_tree(root)
    return root


def test_reads_train_and_val(tree):
    train = load_dataset("tinyimagenet", data_dir=tree, split="train")
    assert train.images.shape == (3 * TRAIN_PER_CLASS, 3, 64, 64) and train.images.dtype == np.uint8
    assert train.num_classes == 3 and train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for k, label in enumerate(train.labels):
        expected = np.array(_colour(int(label), k % TRAIN_PER_CLASS))
        assert np.abs(train.images[k].reshape(3, -1).mean(axis=1) - expected).max() < 4
    test = load_dataset("tinyimagenet", data_dir=tree / "tiny-imagenet-200", split="test")  # the folder itself
    assert test.labels.tolist() == [WNIDS.index(w) for _, w in VAL] and test.images.shape == (4, 3, 64, 64)
    grey = test.images[3]  # a greyscale JPEG becomes three equal channels
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[1], grey[2])


def test_64x64_network_with_stride_2_stem(tree):
    assert default_stem_stride("tinyimagenet") == 2 and default_stem_stride("cifar10") == 1
    data = load_dataset("tinyimagenet", data_dir=tree)
    macro = MacroConfig(num_cells=2, width=2, hidden=8, timesteps=2, in_channels=3, input_size=64, stem_stride=2,
                        num_classes=data.num_classes)
    assert macro.cell_sizes == (32, 16) and macro.final_size == 8
    x, _ = data.tensors(np.arange(2))
    assert build_network(Genotype.from_index(100, "3O"), macro, seed=0)(x).shape == (2, 3)


def test_train_command_on_the_tree(tree, tmp_path):
    out = tmp_path / "run"
    argv = [
        "--genotype", "100", "--dataset", "tinyimagenet", "--data-dir", str(tree), "--width", "2", "--hidden", "8",
        "--timesteps", "1", "--epochs", "1", "--batch-size", "6", "--quantize-bits", "8", "--output-dir", str(out),
        "--quiet",
    ]
    assert train_cli(argv) == 0
    payload = json.loads((out / "results.json").read_text())
    macro = payload["config"]["macro"]
    assert payload["config"]["recipe"] == "tinyimagenet"
    assert (macro["input_size"], macro["stem_stride"], macro["num_classes"]) == (64, 2, 3)
    assert 0.0 <= payload["test_accuracy"] <= 1.0


def _break(base, what: str) -> str:
    """Damage one part of the tree; return what the error must mention."""
    if what == "wnids":
        (base / "wnids.txt").unlink()
        return "wnids.txt"
    if what == "class folder":
        (base / "train" / WNIDS[1] / "images").rename(base / "train" / WNIDS[1] / "imgs")
        return f"{WNIDS[1]}/images"
    if what == "annotations":
        (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
        return "line 1"
    if what == "corrupt":
        (base / "train" / WNIDS[0] / "images" / f"{WNIDS[0]}_0.JPEG").write_bytes(b"not a jpeg")
        return "cannot decode"
    _jpeg(base / "train" / WNIDS[2] / "images" / f"{WNIDS[2]}_1.JPEG", (0, 0, 0), size=32)
    return "expected 64x64"


@pytest.mark.parametrize("what", ["wnids", "class folder", "annotations", "corrupt", "size"])
def test_missing_or_malformed_tree(tmp_path, what):
    write_tree(tmp_path)
    needle = _break(tmp_path / "tiny-imagenet-200", what)
    split = "test" if what == "annotations" else "train"
    with pytest.raises(SpikeNASError, match="TinyImageNet|malformed") as info:
        load_dataset("tinyimagenet", data_dir=tmp_path, split=split)
    assert needle in str(info.value)


def test_needs_a_directory(tmp_path):
    with pytest.raises(SpikeNASError, match="--data-dir"):
        load_dataset("tinyimagenet")
    with pytest.raises(SpikeNASError, match="does not exist"):
        load_dataset("tinyimagenet", data_dir=tmp_path / "nowhere")
