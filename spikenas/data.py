"""Datasets read from local files in their standard layouts; nothing is downloaded.

``digits`` (scikit-learn's bundled 8x8 digits) is the embedded default. ``fashion-mnist`` reads the
four IDX files (gzipped or not; Debian's ``dataset-fashion-mnist`` installs them under
``/usr/share/datasets/fashion-mnist``). ``cifar10`` and ``cifar100`` read the "python version"
pickles with a restricted unpickler that builds only dicts, lists, bytes, str, numbers and numpy arrays
(:mod:`spikenas.safe_load`), so a batch file never runs code. ``cifar10-sample`` reads the 2,000-image
``cifar10_sample.npz`` (x NHWC uint8, y int64).
``tinyimagenet`` reads TinyImageNet-200's JPEG tree (``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
``val/images/*.JPEG`` labelled by ``val/val_annotations.txt``) with Pillow; its ``test`` split is the
labelled validation set (the official test images carry no labels).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spikenas.errors import SpikeNASError
from spikenas.safe_load import load_cifar_batch

DATASETS = ("digits", "fashion-mnist", "cifar10", "cifar100", "cifar10-sample", "tinyimagenet")
SPLITS = ("train", "test")
FASHION_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
TINYIMAGENET_FOLDER = "tiny-imagenet-200"  # the archive's top folder; data_dir may be it or its parent
TINYIMAGENET_SIZE = 64  # every TinyImageNet image is 64x64 RGB
JPEG_SUFFIXES = (".jpeg", ".jpg")


@dataclass
class ImageDataset:
    """Images and labels in memory."""

    name: str
    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N]
    num_classes: int

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or len(self.images) != len(self.labels) or len(self.images) == 0:
            raise SpikeNASError(
                f"dataset {self.name}: images must be [N, C, H, W] with N = len(labels) > 0, got "
                f"{self.images.shape} and {self.labels.shape}"
            )

    @property
    def in_channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> int:
        return self.images.shape[2]

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, indices: np.ndarray | None = None, *, input_size: int | None = None) -> tuple:
        """(float32 ``[n, C, S, S]`` images scaled to [0, 1] then standardised per channel, int64 labels)."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices)
        x = torch.from_numpy(self.images[idx]).float() / 255.0
        x = (x - self.mean()) / self.std()
        if input_size is not None and input_size != x.shape[-1]:
            x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
        return x, torch.from_numpy(self.labels[idx])

    def mean(self) -> torch.Tensor:
        return torch.from_numpy(self.images.mean(axis=(0, 2, 3)) / 255.0).float().view(1, -1, 1, 1)

    def std(self) -> torch.Tensor:
        return torch.from_numpy(self.images.std(axis=(0, 2, 3)) / 255.0 + 1e-6).float().view(1, -1, 1, 1)

    def batches(
        self, batch_size: int, num_batches: int, *, seed: int, input_size: int | None = None
    ) -> list[torch.Tensor]:
        """``num_batches`` disjoint random batches of images, ``[batch_size, C, S, S]`` float32 each."""
        if batch_size < 1 or num_batches < 1:
            raise SpikeNASError(f"batch_size and num_batches must be >= 1, got {batch_size}, {num_batches}")
        if batch_size * num_batches > len(self):
            raise SpikeNASError(
                f"dataset {self.name} has {len(self)} images, fewer than batch_size x num_batches = "
                f"{batch_size} x {num_batches}"
            )
        order = np.random.default_rng(seed).permutation(len(self))
        return [
            self.tensors(order[i * batch_size : (i + 1) * batch_size], input_size=input_size)[0]
            for i in range(num_batches)
        ]


def default_input_size(name: str, native: int) -> int:
    """The input size a network for dataset ``name`` uses when none is given: 16 for the 8x8 digits (upsampled
    so that two cells and their poolings fit), the native size otherwise."""
    return 16 if name == "digits" else native


def default_stem_stride(name: str) -> int:
    """The stem stride a network for dataset ``name`` uses: 2 for TinyImageNet's 64x64 images (SNASNet's
    TinyImageNet macro), 1 otherwise."""
    return 2 if name == "tinyimagenet" else 1


def load_dataset(name: str, *, data_dir: str | Path | None = None, split: str = "train") -> ImageDataset:
    """Load ``name`` (one of :data:`DATASETS`) from ``data_dir``; ``digits`` needs no directory.

    :raises SpikeNASError: unknown name or split, or files missing or malformed; the message says
        where it looked and what layout it expects.
    """
    if name not in DATASETS:
        raise SpikeNASError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise SpikeNASError(f"split must be one of {SPLITS}, got {split!r}")
    if name == "digits":
        return _digits(split)
    if name == "fashion-mnist":
        return _fashion(Path(data_dir) if data_dir else FASHION_DEFAULT_DIR, split)
    if data_dir is None:
        raise SpikeNASError(f"dataset {name} needs --data-dir: it is read from local files only")
    root = Path(data_dir)
    if not root.exists():
        raise SpikeNASError(f"data directory {root} does not exist (dataset {name})")
    if name == "cifar10-sample":
        return _cifar_sample(root)
    if name == "tinyimagenet":
        return _tinyimagenet(root, split)
    return _cifar(name, root, split)


def _digits(split: str) -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    cut = int(0.8 * len(labels))  # the file's order is fixed: first 80% train, rest test
    part = slice(0, cut) if split == "train" else slice(cut, None)
    return ImageDataset("digits", images[part], labels[part], 10)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        return array.reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as err:
        raise SpikeNASError(f"malformed IDX file {path}: {err}") from err


def _fashion(root: Path, split: str) -> ImageDataset:
    prefix = "train" if split == "train" else "t10k"
    found = {}
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        candidates = [root / f"{prefix}-{kind}{ext}" for ext in (".gz", "")]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise SpikeNASError(
                f"Fashion-MNIST not found in {root}: expected {prefix}-{kind}[.gz] (the IDX files; "
                f"`apt-get install dataset-fashion-mnist` puts them in {FASHION_DEFAULT_DIR})"
            )
        found[kind] = _read_idx(path)
    images, labels = found["images-idx3-ubyte"], found["labels-idx1-ubyte"]
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise SpikeNASError(f"malformed Fashion-MNIST in {root}: images {images.shape}, labels {labels.shape}")
    return ImageDataset("fashion-mnist", images[:, None].copy(), labels.astype(np.int64), 10)


def _unpickle(path: Path) -> dict:
    """One CIFAR batch dict, read by a restricted unpickler that never runs code from the file
    (:func:`spikenas.safe_load.load_cifar_batch`)."""
    return load_cifar_batch(path)


def _cifar(name: str, root: Path, split: str) -> ImageDataset:
    folder, files, label_key, classes = {
        "cifar10": ("cifar-10-batches-py", None, b"labels", 10),
        "cifar100": ("cifar-100-python", None, b"fine_labels", 100),
    }[name]
    base = root / folder if (root / folder).is_dir() else root
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    else:
        files = [split]
    missing = [f for f in files if not (base / f).exists()]
    if missing:
        raise SpikeNASError(
            f"{name} not found: looked for {', '.join(str(base / f) for f in missing)} (the python-version "
            f"layout: {folder}/{' '.join(files)} as pickled dicts with b'data' and {label_key!r})"
        )
    images, labels = [], []
    for f in files:
        batch = _unpickle(base / f)
        if b"data" not in batch or label_key not in batch:
            raise SpikeNASError(f"malformed {name} file {base / f}: needs keys b'data' and {label_key!r}")
        data, label = batch[b"data"], batch[label_key]
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
            got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise SpikeNASError(f"malformed {name} file {base / f}: b'data' must be uint8 [N, 3072], got {got}")
        try:
            label = np.asarray(label, dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as err:
            raise SpikeNASError(f"malformed {name} file {base / f}: {label_key!r} must be integers ({err})") from err
        if label.shape != (len(data),) or (len(label) and (label.min() < 0 or label.max() >= classes)):
            raise SpikeNASError(
                f"malformed {name} file {base / f}: {label_key!r} must be {len(data)} integers in [0, {classes}), "
                f"got shape {label.shape}" + (f", range [{label.min()}, {label.max()}]" if label.size else "")
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(label)
    return ImageDataset(name, np.concatenate(images), np.concatenate(labels), classes)


def _cifar_sample(root: Path) -> ImageDataset:
    path = root / "cifar10_sample.npz" if root.is_dir() else root
    if not path.exists():
        raise SpikeNASError(f"cifar10-sample: {path} not found (an .npz with x uint8 [N,32,32,3] and y int64 [N])")
    try:
        with np.load(path) as data:
            x, y = data["x"], data["y"]
    except (OSError, KeyError, ValueError) as err:
        raise SpikeNASError(f"malformed {path}: {err} (needs arrays x uint8 [N,32,32,3] and y)") from err
    if x.ndim != 4 or x.shape[-1] != 3:
        raise SpikeNASError(f"malformed {path}: x must be [N, 32, 32, 3], got {x.shape}")
    return ImageDataset("cifar10-sample", np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64), 10)


TINYIMAGENET_LAYOUT = (
    "wnids.txt (one class id per line), train/<wnid>/images/*.JPEG, val/images/*.JPEG and "
    "val/val_annotations.txt (file, wnid, box per line, tab-separated)"
)


def _tinyimagenet(root: Path, split: str) -> ImageDataset:
    """TinyImageNet-200 from its extracted archive; ``split`` ``test`` is the labelled ``val`` folder.

    Images are decoded with Pillow, converted to RGB (a few TinyImageNet JPEGs are greyscale) and must
    be 64x64. Labels are positions in ``wnids.txt``; images are in sorted file order per class (train)
    or in annotation-file order (val).
    :returns: uint8 ``[N, 3, 64, 64]`` images, int64 ``[N]`` labels, 200 classes for the real set.
    :raises SpikeNASError: a missing file or folder, an unknown class id, an unreadable or wrongly sized
        image: the message names the path and the expected layout.
    """
    base = root / TINYIMAGENET_FOLDER if (root / TINYIMAGENET_FOLDER).is_dir() else root
    wnids_path = base / "wnids.txt"
    if not wnids_path.is_file():
        raise SpikeNASError(f"TinyImageNet not found: {wnids_path} does not exist (expected {TINYIMAGENET_LAYOUT})")
    wnids = [line.strip() for line in wnids_path.read_text().splitlines() if line.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise SpikeNASError(f"malformed {wnids_path}: expected distinct class ids, one per line, got {len(wnids)} "
                            f"lines with {len(set(wnids))} distinct")
    label_of = {wnid: i for i, wnid in enumerate(wnids)}
    files: list[tuple[Path, int]] = []
    if split == "train":
        for wnid in wnids:
            folder = base / "train" / wnid / "images"
            if not folder.is_dir():
                raise SpikeNASError(f"TinyImageNet: {folder} does not exist (expected {TINYIMAGENET_LAYOUT})")
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in JPEG_SUFFIXES)
            if not paths:
                raise SpikeNASError(f"TinyImageNet: no .JPEG images in {folder}")
            files += [(p, label_of[wnid]) for p in paths]
    else:
        annotations = base / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise SpikeNASError(f"TinyImageNet: {annotations} does not exist (expected {TINYIMAGENET_LAYOUT})")
        for number, line in enumerate(annotations.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in label_of:
                raise SpikeNASError(
                    f"malformed {annotations} line {number}: expected '<file>\\t<wnid>\\t...' with a wnid of "
                    f"{wnids_path}, got {line[:80]!r}"
                )
            files.append((base / "val" / "images" / fields[0], label_of[fields[1]]))
        if not files:
            raise SpikeNASError(f"TinyImageNet: {annotations} lists no images")
    images = np.empty((len(files), 3, TINYIMAGENET_SIZE, TINYIMAGENET_SIZE), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        images[i] = _read_jpeg(path, TINYIMAGENET_SIZE)
    labels = np.array([label for _, label in files], dtype=np.int64)
    return ImageDataset("tinyimagenet", images, labels, len(wnids))


def _read_jpeg(path: Path, size: int) -> np.ndarray:
    """Decode one image file to uint8 ``[3, size, size]`` RGB with Pillow; it must be ``size`` x ``size``."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ModuleNotFoundError as err:
        raise SpikeNASError("TinyImageNet's JPEGs are decoded with Pillow: pip install pillow") from err
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise SpikeNASError(f"TinyImageNet: cannot decode image {path}: {err}") from err
    if rgb.shape != (size, size, 3):
        raise SpikeNASError(f"TinyImageNet: image {path} is {rgb.shape[1]}x{rgb.shape[0]}, expected {size}x{size}")
    return rgb.transpose(2, 0, 1)
