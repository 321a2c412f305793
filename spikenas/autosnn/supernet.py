"""AutoSNN's one-shot super-network: every candidate block at every searched position, one uniformly
sampled path trained per mini-batch, candidates evaluated with the weights they inherit.

Training follows AutoSNN: Adam (lr 1e-3), batch 96, T = 8, loss ``MSE(voted spike count / T, one-hot)``,
on 80% of the training set; the other 20% (a seeded split) is the validation set on which a
candidate's accuracy and spikes are measured. Each epoch's shuffle and paths come from a generator
seeded with ``(seed, epoch)``, and a checkpoint is written after every epoch, so a resumed training
continues exactly where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikenas.autosnn.macro import BLOCKS, LAYOUT, SEARCHED, AutoSNNConfig, check_arch
from spikenas.autosnn.network import AutoSNNNetwork, _Shell, build_block
from spikenas.data import ImageDataset, default_input_size, load_dataset
from spikenas.errors import SpikeNASError
from spikenas.layer_graph import autosnn_graph
from spikenas.progress import Progress
from spikenas.results import atomic_path
from spikenas.safe_load import load_checkpoint_file
from spikenas.scoring.recorder import SpikeTally, neuron_pass
from spikenas.spikes import SpikeStats


@dataclass(frozen=True)
class SupernetConfig:
    """How the super-network is trained (AutoSNN's settings are the defaults, except the epochs)."""

    epochs: int = 10  # passes over the training split; FACTS.md does not give AutoSNN's, keep it small on a CPU
    batch_size: int = 96  # mini-batch; one path is sampled per mini-batch
    lr: float = 1e-3  # Adam learning rate
    val_fraction: float = 0.2  # share of the training set held out for fitness evaluation
    seed: int = 0  # weights, split, shuffles and paths

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise SpikeNASError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise SpikeNASError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise SpikeNASError(f"lr must be > 0, got {self.lr}")
        if not 0.0 < self.val_fraction < 1.0:
            raise SpikeNASError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def to_dict(self) -> dict:
        return asdict(self)


class SuperNetwork(_Shell):
    """All :data:`BLOCKS` at every searched position; ``forward(images, arch)`` runs one path.

    Parameter names are those of :class:`AutoSNNNetwork` with the block name inserted after the
    position (``layers.2.scb_k3.0.weight`` <-> ``layers.2.0.weight``), see :meth:`inherit`. A block's modules
    at a position are made from its layers in the graph of the architecture holding that block at every
    position (a block's layers depend on its position, not on its neighbours).
    """

    def __init__(self, config: AutoSNNConfig) -> None:
        graphs = {b: autosnn_graph((b,) * len(SEARCHED), config) for b in BLOCKS}
        super().__init__(config, graphs[BLOCKS[0]])
        layers: list[nn.Module] = []
        for i, x in enumerate(LAYOUT):
            prefix = f"layers.{i}"
            if x == "m":
                layers.append(build_block(graphs[BLOCKS[0]].layers, prefix))
            else:
                layers.append(nn.ModuleDict({b: build_block(graphs[b].layers, prefix) for b in BLOCKS}))
        self.layers = nn.ModuleList(layers)

    def path(self, arch: tuple[str, ...]) -> list[nn.Module]:
        blocks = iter(check_arch(arch))
        return [m[next(blocks)] if isinstance(m, nn.ModuleDict) else m for m in self.layers]

    def forward(self, images: torch.Tensor, arch: tuple[str, ...]) -> torch.Tensor:
        """``[B, C_in, H, W]`` float32 -> ``[B, classes]`` voted firing rates along path ``arch``."""
        return self._run(images, self.path(arch))

    def inherit(self, arch: tuple[str, ...]) -> AutoSNNNetwork:
        """A stand-alone network of ``arch`` holding copies of this super-network's weights."""
        arch = check_arch(arch)
        net = AutoSNNNetwork(arch, self.config)
        blocks = iter(arch)
        renames = {f"layers.{i}.": f"layers.{i}.{next(blocks)}." for i, x in enumerate(LAYOUT) if x != "m"}
        source = self.state_dict()
        state = {}
        for name in net.state_dict():
            prefix = ".".join(name.split(".")[:2]) + "."
            state[name] = source[renames[prefix] + name[len(prefix):]] if prefix in renames else source[name]
        net.load_state_dict(state)
        return net


def split_indices(n: int, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded (train, validation) partition of ``range(n)``; validation gets ``round(n * val_fraction)``."""
    order = np.random.default_rng([seed, 20]).permutation(n)
    n_val = int(round(n * val_fraction))
    if n_val < 1 or n_val >= n:
        raise SpikeNASError(f"cannot split {n} samples with val_fraction {val_fraction}: both parts must be non-empty")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def sample_path(rng: np.random.Generator) -> tuple[str, ...]:
    """A uniformly drawn path (one block per searched position)."""
    return tuple(BLOCKS[int(i)] for i in rng.integers(len(BLOCKS), size=len(SEARCHED)))


@dataclass
class TrainLog:
    """What a super-network training did."""

    epochs_done: int = 0  # epochs completed, resumed ones included
    resumed_from: int = 0  # epoch the run started at (0 for a fresh run)
    epoch_loss: list[float] = field(default_factory=list)  # mean training loss per epoch
    epoch_acc: list[float] = field(default_factory=list)  # training accuracy of the sampled paths per epoch
    seconds: float = 0.0  # wall time of this run's epochs

    def to_dict(self) -> dict:
        return asdict(self)


def _fingerprint(config: AutoSNNConfig, train: SupernetConfig, n_train: int) -> dict:
    """What a checkpoint must match to be resumed; not the epochs, so a resume may also train longer."""
    settings = {k: v for k, v in train.to_dict().items() if k != "epochs"}
    return {"net": config.to_dict(), "train": settings, "n_train": n_train}


def _save(path: Path, payload: dict) -> None:
    """``torch.save`` through a temporary file and an atomic rename (tensors, dicts, lists, str and numbers)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def train_supernet(
    supernet: SuperNetwork,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    config: SupernetConfig = SupernetConfig(),
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainLog:
    """Train ``supernet`` in place on the training split, one uniformly sampled path per mini-batch.

    :param images: float32 ``[N, C, H, W]`` training-split images; ``labels`` int64 ``[N]``.
    :param checkpoint: file written after every epoch (weights, optimiser, log); with ``resume`` an
        existing one of the same configuration (epochs aside) is loaded and training continues after
        its last epoch, exactly as an uninterrupted run would.
    :raises SpikeNASError: a checkpoint of a different configuration, or mismatched inputs.
    """
    if images.ndim != 4 or len(images) != len(labels):
        raise SpikeNASError(f"images must be [N, C, H, W] with N = len(labels), got {tuple(images.shape)}")
    num_classes = supernet.config.num_classes
    optimizer = torch.optim.Adam(supernet.parameters(), lr=config.lr)
    log = TrainLog()
    fingerprint = _fingerprint(supernet.config, config, len(labels))
    path = Path(checkpoint) if checkpoint else None
    if path is not None and resume and path.exists():
        saved = load_checkpoint_file(path, what="super-network checkpoint")
        if saved.get("fingerprint") != fingerprint:
            raise SpikeNASError(
                f"cannot resume from {path}: it was written for a different super-network or training "
                "configuration (delete it or run without --resume)"
            )
        supernet.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        log = TrainLog(**saved["log"])
        log.resumed_from = log.epochs_done
    start = time.perf_counter()
    n = len(labels)
    steps = (n + config.batch_size - 1) // config.batch_size
    remaining = config.epochs - log.epochs_done
    with Progress(max(remaining, 0) * steps, "super-network", enabled=progress) as bar:
        for epoch in range(log.epochs_done, config.epochs):
            rng = np.random.default_rng([config.seed, epoch])
            order = torch.from_numpy(rng.permutation(n))
            supernet.train()
            total_loss, correct = 0.0, 0
            for s in range(steps):
                idx = order[s * config.batch_size : (s + 1) * config.batch_size]
                x, y = images[idx], labels[idx]
                out = supernet(x, sample_path(rng))
                loss = F.mse_loss(out, F.one_hot(y, num_classes).float())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += float(loss.detach()) * len(y)
                correct += int((out.argmax(1) == y).sum())
                bar.update(1, loss=f"{float(loss.detach()):.4f}")
            log.epoch_loss.append(total_loss / n)
            log.epoch_acc.append(correct / n)
            log.epochs_done = epoch + 1
            if path is not None:
                _save(path, {
                    "fingerprint": fingerprint, "model": supernet.state_dict(),
                    "optimizer": optimizer.state_dict(), "log": log.to_dict(),
                })
    log.seconds = time.perf_counter() - start
    return log


@dataclass(frozen=True)
class PathEvaluation:
    """A candidate measured with inherited weights."""

    accuracy: float  # top-1 accuracy on the evaluation images, in [0, 1]
    spikes: float  # mean spikes per sample summed over T and every spiking layer (AutoSNN's count)
    samples: int  # evaluation images


def recalibrate_bn(model: nn.Module, images: torch.Tensor, *, batch_size: int) -> None:
    """Re-estimate BatchNorm running statistics of ``model`` for its own path (cumulative average over
    ``images``, float32 ``[N, C, H, W]``): shared super-network statistics mix every path."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            model(images[s : s + batch_size])
    for m, (momentum, _) in zip(norms, saved, strict=True):
        m.momentum = momentum


def evaluate_path(
    supernet: SuperNetwork,
    arch: tuple[str, ...],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 256,
    calibration: torch.Tensor | None = None,
) -> PathEvaluation:
    """Accuracy and spikes of ``arch`` with weights inherited from ``supernet`` (eval mode, no grad).

    :param images: float32 ``[N, C, H, W]`` validation images; ``labels`` int64 ``[N]``.
    :param calibration: float32 training images on which BatchNorm statistics are re-estimated for this
        path first (``None`` keeps the super-network's running statistics).
    """
    net = supernet.inherit(arch)
    if calibration is not None and len(calibration):
        recalibrate_bn(net, calibration, batch_size=batch_size)
    correct = 0
    with SpikeTally(net) as tally, neuron_pass(net, bn_mode="eval", no_grad=True):
        for s in range(0, len(labels), batch_size):
            out = net(images[s : s + batch_size])
            correct += int((out.argmax(1) == labels[s : s + batch_size]).sum())
    stats = SpikeStats.from_tally(tally, samples=len(labels))
    return PathEvaluation(accuracy=correct / len(labels), spikes=stats.total, samples=len(labels))


CALIBRATION_IMAGES = 384  # training images (4 AutoSNN batches) re-estimating BatchNorm statistics per path


@dataclass
class SupernetSetup:
    """The data split and the freshly initialised super-network of one AutoSNN run."""

    supernet: SuperNetwork  # seeded initial weights
    train_config: SupernetConfig
    train_images: torch.Tensor  # float [N_train, C, H, W]
    train_labels: torch.Tensor  # int64 [N_train]
    val_images: torch.Tensor  # float [N_val, C, H, W]: where candidates' accuracy and spikes are measured
    val_labels: torch.Tensor  # int64 [N_val]

    @property
    def calibration(self) -> torch.Tensor:
        """The first CALIBRATION_IMAGES training images: BatchNorm recalibration per evaluated path."""
        return self.train_images[:CALIBRATION_IMAGES]


def prepare_supernet(
    dataset: ImageDataset, config: AutoSNNConfig, train_config: SupernetConfig, *, train_images: int | None, seed: int
) -> SupernetSetup:
    """AutoSNN's recipe for a run: ``train_images`` drawn (seeded by ``[seed, 7]``) from ``dataset``, split into
    training and validation parts (``train_config.val_fraction``), and a super-network initialised under
    ``torch.manual_seed(seed)``. The evolutionary search and the sweep task both start here."""
    n = len(dataset) if train_images is None else min(train_images, len(dataset))
    chosen = np.sort(np.random.default_rng([seed, 7]).permutation(len(dataset))[:n])
    images, labels = dataset.tensors(chosen, input_size=config.input_size)
    tr, va = split_indices(n, val_fraction=train_config.val_fraction, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        supernet = SuperNetwork(config)
    return SupernetSetup(supernet, train_config, images[tr], labels[tr], images[va], labels[va])


SUPERNET_CHECKPOINT = "supernet.pt"


def supernet_task(
    *,
    network: dict,
    train: dict,
    dataset: str = "digits",
    data_dir: str | None = None,
    train_images: int | None = None,
    paths: int | list[list[str]] = 3,
    checkpoint_dir: str | None = None,
    seed: int = 0,
) -> dict:
    """Train AutoSNN's super-network (``spikenas.autosnn.supernet``) and measure a few paths on validation.

    Data, split, weight initialisation and BatchNorm recalibration are those of the evolutionary
    search's ``--fitness autosnn`` (:func:`prepare_supernet`).

    :param network: :class:`~spikenas.autosnn.network.AutoSNNConfig` fields; ``in_channels`` and
        ``num_classes`` come from the dataset, ``input_size`` defaults to 16 on digits, else the native size.
    :param train: :class:`~spikenas.autosnn.supernet.SupernetConfig` fields (its ``seed`` is set from ``seed``).
    :param train_images: images drawn (seeded) from the training split before the train/validation split;
        None: all.
    :param paths: paths measured with inherited weights: a count of seeded uniformly drawn paths, or
        explicit paths (5 block names each).
    :param checkpoint_dir: ``supernet.pt`` is written there after every epoch; a retried run resumes
        from the last finished epoch (on a cluster this must be storage every node sees).
    :returns: the training log, split sizes, and accuracy and spikes of each path.
    """
    data = load_dataset(dataset, data_dir=data_dir, split="train")
    config = AutoSNNConfig.from_dict({
        **network, "in_channels": data.in_channels, "num_classes": data.num_classes,
        "input_size": network.get("input_size") or default_input_size(dataset, data.size),
    })
    setup = prepare_supernet(data, config, SupernetConfig(**{**train, "seed": seed}), train_images=train_images,
                             seed=seed)
    checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir) / SUPERNET_CHECKPOINT
    log = train_supernet(setup.supernet, setup.train_images, setup.train_labels, config=setup.train_config,
                         checkpoint=checkpoint, resume=checkpoint is not None, progress=False)
    if isinstance(paths, int):
        rng = np.random.default_rng([seed, 11])
        arches = [sample_path(rng) for _ in range(paths)]
    else:
        arches = [tuple(p) for p in paths]
    measured = []
    for arch in arches:
        ev = evaluate_path(setup.supernet, arch, setup.val_images, setup.val_labels, calibration=setup.calibration)
        measured.append({"arch": list(arch), "accuracy": ev.accuracy, "spikes": ev.spikes})
    return {
        "network": config.to_dict(), "train": setup.train_config.to_dict(), "log": log.to_dict(),
        "train_images": len(setup.train_labels), "val_images": len(setup.val_labels), "paths": measured,
    }
