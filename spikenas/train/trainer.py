"""Surrogate-gradient BPTT training of a searched network, with SNASNet's recipe as the defaults.

Recipe (SNASNet's ``train.py``): SGD with lr 0.1, momentum 0.9 and weight decay 5e-4 (passed by
keyword: SNASNet passes it by position, where SGD's fourth slot is *dampening*, so its weights are
never decayed), cosine annealing over the epochs down to ``eta_min`` 0.001, batch 64, T = 5 (a
:class:`~spikenas.network.MacroConfig` field), random crop with 4 pixels of padding and horizontal
flip, cross-entropy on the output averaged over timesteps. Gradients flow through spikingjelly's
ATan surrogate (BPTT over the T steps of the multi-step neurons). The per-dataset recipes that
train quickly on a CPU (AdamW, a per-batch warm-up and cosine schedule, label smoothing) are named
presets in :mod:`spikenas.train.recipes`.

Speed: every LIF is a multi-step spikingjelly neuron, which spikingjelly 2.0 dispatches by device
(on CPU its registered ``sj_lif`` operator with a hand-written backward, on CUDA its native or
Triton kernels; 2.0 has no ``backend=`` argument to set). The stem runs once per image and is
repeated over T; evaluation runs under :func:`torch.inference_mode`.

Reproducibility and resume: every random choice of epoch ``e`` (data order, crop offsets, flips and
dropout masks) is drawn from generators seeded with ``(seed, e)`` at the start of the epoch, and a
checkpoint written atomically after every epoch holds the model, optimizer, scheduler, history and
torch's RNG state (nothing draws from numpy's or Python's global generators during training).
Resuming from epoch ``k`` therefore replays epochs ``k+1..`` exactly as an uninterrupted run would:
on the same machine and thread count the final weights are bit-for-bit equal (tested).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

from spikenas.data import ImageDataset
from spikenas.errors import SpikeNASError
from spikenas.fingerprint import first_differing_field
from spikenas.network import MacroConfig, build_network, head_init
from spikenas.progress import Progress
from spikenas.results import atomic_path
from spikenas.safe_load import load_checkpoint_file
from spikenas.space import Genotype
from spikenas.spikes import SpikeStats, count_spikes

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "checkpoint.pt"
HEAD_INITS = ("fan_in", "network")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("epoch", "step")
_CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """One training run; the defaults are SNASNet's recipe (T lives in MacroConfig.timesteps)."""

    epochs: int = 5  # passes over the training set
    batch_size: int = 64  # samples per optimizer step
    optimizer: str = "sgd"  # sgd: SGD with momentum (SNASNet); adamw: AdamW (decoupled weight decay)
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum (sgd only)
    weight_decay: float = 5e-4  # L2 penalty given to SGD by keyword, or AdamW's decoupled decay
    eta_min: float = 1e-3  # learning rate the cosine schedule ends at
    schedule: str = "epoch"  # epoch: cosine stepped once per epoch (SNASNet); step: warm-up then cosine per batch
    warmup_steps: int = 0  # schedule "step": batches of linear warm-up to lr, at most a tenth of all batches
    label_smoothing: float = 0.0  # cross-entropy label smoothing, in [0, 1)
    crop_padding: int = 4  # random crop from the image padded by this many pixels; 0 disables it
    flip: bool = True  # random horizontal flip with probability 1/2
    max_train_samples: int | None = None  # seeded subset of the training set; None: all of it
    max_test_samples: int | None = None  # first n test images; None: all of them
    eval_batch_size: int = 256  # samples per evaluation forward pass
    head_init: str = "fan_in"  # fan_in: redraw the head's Linear weights (see head_init); network: keep SNASNet's
    seed: int = 0  # weights, subset, data order, augmentation and dropout

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("lr", self.lr > 0, "> 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("eta_min", 0 <= self.eta_min <= self.lr, "in [0, lr]"),
            ("schedule", self.schedule in SCHEDULES, f"one of {SCHEDULES}"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
            ("warmup_steps", self.warmup_steps == 0 or self.schedule == "step", "0 unless schedule is 'step'"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("crop_padding", self.crop_padding >= 0, ">= 0"),
            ("max_train_samples", self.max_train_samples is None or self.max_train_samples >= 1, ">= 1 or None"),
            ("max_test_samples", self.max_test_samples is None or self.max_test_samples >= 1, ">= 1 or None"),
            ("eval_batch_size", self.eval_batch_size >= 1, ">= 1"),
            ("head_init", self.head_init in HEAD_INITS, f"one of {HEAD_INITS}"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise SpikeNASError(f"{name} must be {allowed}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return replace(self, **changes)


@dataclass
class TrainResult:
    """What a training run produced."""

    history: list[dict]  # per epoch: epoch, lr, train_loss, train_accuracy, test_accuracy, test_loss, seconds
    test_accuracy: float  # after the last epoch, in [0, 1]
    test_loss: float  # mean cross-entropy on the test set after the last epoch
    spikes: SpikeStats | None  # per-layer spike counts and firing rates on the test set
    train_seconds: float  # wall time of the epochs run in this call
    resumed_from: int = 0  # epochs already done in the checkpoint this call started from
    model: nn.Module | None = field(default=None, repr=False)  # the trained network
    epochs_asked: int = 0  # config.epochs
    fingerprint: dict = field(default_factory=dict, repr=False)  # the checkpoint's (see fingerprint())

    @property
    def epochs_finished(self) -> int:
        """Epochs done, resumed ones included (fewer than ``epochs_asked`` when a callback stopped it)."""
        return len(self.history)

    def to_dict(self) -> dict:
        return {
            "history": self.history,
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "spikes": None if self.spikes is None else self.spikes.to_dict(),
            "train_seconds": self.train_seconds,
            "resumed_from": self.resumed_from,
            "epochs_finished": self.epochs_finished,
            "epochs_asked": self.epochs_asked,
        }


class StopTraining(Exception):
    """Raised by a callback to stop after the current epoch's checkpoint (a simulated kill in tests)."""


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for epoch ``epoch`` of run ``seed`` (stable across processes and Python versions)."""
    digest = hashlib.sha256(f"spikenas-train:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def augment(
    images: torch.Tensor,
    *,
    padding: int,
    flip: bool,
    fill: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Random crop (same size, from the image padded by ``padding``) and horizontal flip.

    :param images: float32 ``[B, C, S, S]`` standardised images.
    :param fill: float32 ``[1, C, 1, 1]``: the padding value per channel (a black pixel after
        standardisation, as torchvision pads the raw image with 0 before normalising).
    :param generator: draws the offsets ``[B]`` and the flips ``[B]``, in that order.
    :returns: float32 ``[B, C, S, S]``.
    """
    b, _, h, w = images.shape
    out = images
    if padding > 0:
        padded = F.pad(images - fill, (padding, padding, padding, padding)) + fill
        oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
        ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
        rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # [B, 1, H, 1]
        cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # [B, 1, 1, W]
        batch = torch.arange(b)[:, None, None, None]
        chans = torch.arange(images.shape[1])[None, :, None, None]
        out = padded[batch, chans, rows, cols]
    if flip:
        mask = torch.rand(b, generator=generator) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(-1), out)
    return out


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256
) -> tuple[float, float]:
    """Accuracy in [0, 1] and mean cross-entropy of ``model`` (eval mode, under :func:`torch.inference_mode`).

    :param images: float32 ``[N, C, H, W]``; :param labels: int64 ``[N]``.
    """
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    try:
        with torch.inference_mode():
            for start in range(0, len(labels), batch_size):
                device = next(model.parameters()).device
                x = images[start : start + batch_size].to(device)
                y = labels[start : start + batch_size].to(device)
                logits = model(x)
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(dim=1) == y).sum())
    finally:
        functional.reset_net(model)
        model.train(was_training)
    return correct / len(labels), loss_sum / len(labels)


def train_subset(dataset: ImageDataset, max_samples: int | None, *, seed: int) -> np.ndarray:
    """Indices of the training images used: all, or a seeded random subset of ``max_samples``."""
    if max_samples is None or max_samples >= len(dataset):
        return np.arange(len(dataset))
    return np.sort(np.random.default_rng(seed).permutation(len(dataset))[:max_samples])


def fingerprint(genotypes: Sequence[Genotype], macro: MacroConfig, config: TrainConfig, data: str) -> dict:
    """What a checkpoint must match to be resumed: cells, network, recipe and data."""
    return {
        "cells": [g.to_nb201() for g in genotypes],
        "macro": macro.to_dict(),
        "train": config.to_dict(),
        "data": data,
    }


def _rng_states() -> dict:
    return {"torch": torch.get_rng_state()}


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` through a temporary file and an atomic rename (:func:`spikenas.results.atomic_path`)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, expected: dict) -> dict:
    """Load a checkpoint (``weights_only``: nothing in it runs) and check it belongs to the same run.

    :raises SpikeNASError: an unreadable or foreign file, or a fingerprint that differs from ``expected``; the
        message names the first differing field and both values.
    """
    state = load_checkpoint_file(path, hint="the checkpoint.pt written by python -m spikenas.train")
    if state.get("format") != _CHECKPOINT_FORMAT:
        raise SpikeNASError(f"checkpoint {path} has format {state.get('format')!r}, expected {_CHECKPOINT_FORMAT}")
    saved = state.get("fingerprint")
    difference = first_differing_field(saved, expected)
    if difference is not None:
        field_name, theirs, ours = difference
        raise SpikeNASError(
            f"cannot resume from {path}: it was written for a different run: its {field_name} is {theirs}, this "
            f"run's is {ours} (delete it or run without --resume)"
        )
    return state


def cell_list(genotypes: Genotype | Sequence[Genotype], macro: MacroConfig) -> list[Genotype]:
    """One genotype per cell position: a single genotype is repeated in every cell."""
    if isinstance(genotypes, Genotype):
        return [genotypes] * macro.num_cells
    return list(genotypes)


@dataclass
class TrainingData:
    """The tensors a training run uses (see :func:`training_data`)."""

    indices: np.ndarray  # int64 [N]: the training images used (all, or the seeded subset)
    x_train: torch.Tensor  # float32 [N, C, S, S], standardised and resized to the macro's input size
    y_train: torch.Tensor  # int64 [N]
    x_test: torch.Tensor  # float32 [M, C, S, S]: the first max_test_samples test images
    y_test: torch.Tensor  # int64 [M]
    fill: torch.Tensor  # float32 [1, C, 1, 1]: a black pixel after standardisation (crop padding)
    data_id: str  # names the data in the checkpoint fingerprint


def training_data(
    train_set: ImageDataset, test_set: ImageDataset, macro: MacroConfig, config: TrainConfig
) -> TrainingData:
    """Check the data fits the network and take the tensors :func:`train` trains and evaluates on.

    :raises SpikeNASError: channels or classes that differ from the macro's, or a label outside the classes.
    """
    if train_set.in_channels != macro.in_channels or train_set.num_classes != macro.num_classes:
        raise SpikeNASError(
            f"dataset {train_set.name} has {train_set.in_channels} channels and {train_set.num_classes} classes, "
            f"the network expects {macro.in_channels} and {macro.num_classes}"
        )
    for split, data in (("training", train_set), ("test", test_set)):  # a label the head has no output for
        bad = np.flatnonzero((data.labels < 0) | (data.labels >= data.num_classes))
        if bad.size:
            raise SpikeNASError(
                f"{split} set {data.name}: sample {bad[0]} has label {data.labels[bad[0]]}, outside "
                f"0..{data.num_classes - 1} ({bad.size} such labels)"
            )
    indices = train_subset(train_set, config.max_train_samples, seed=config.seed)
    x_train, y_train = train_set.tensors(indices, input_size=macro.input_size)
    n_test = len(test_set) if config.max_test_samples is None else min(config.max_test_samples, len(test_set))
    x_test, y_test = test_set.tensors(np.arange(n_test), input_size=macro.input_size)
    fill = -train_set.mean() / train_set.std()
    data_id = f"{train_set.name}:train={len(indices)}:test={n_test}"
    return TrainingData(indices, x_train, y_train, x_test, y_test, fill, data_id)


def initial_model(genotypes: Sequence[Genotype], macro: MacroConfig, config: TrainConfig) -> nn.Module:
    """The network :func:`train` starts from: ``build_network`` seeded with ``config.seed``, then the
    head's fan-in init when ``config.head_init`` is ``fan_in``."""
    model = build_network(list(genotypes), macro, seed=config.seed)
    if config.head_init == "fan_in":
        head_init(model, seed=config.seed)
    return model


def train(
    genotypes: Genotype | Sequence[Genotype],
    macro: MacroConfig,
    train_set: ImageDataset,
    test_set: ImageDataset,
    *,
    config: TrainConfig = TrainConfig(),
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    count_test_spikes: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train ``build_network(genotypes, macro, seed=config.seed)`` and evaluate it after each epoch.

    :param train_set: images are resized to ``macro.input_size``; a seeded subset of
        ``config.max_train_samples`` is used when set.
    :param checkpoint_dir: where ``checkpoint.pt`` is written after every epoch; ``None``: no checkpoints.
    :param resume: continue from the checkpoint in ``checkpoint_dir`` (it must exist and match).
    :param device: where the network trains (``cpu``, ``cuda``, ...); the data stays in host memory and
        each batch is copied over; the returned model is on the CPU.
    :param on_epoch_end: called with ``(epoch, history_row)`` after the epoch's checkpoint is written;
        raising :class:`StopTraining` there ends the call early (the result then covers the epochs done).
    :raises SpikeNASError: data that does not fit the network, or a checkpoint that is missing,
        unreadable or from another run.
    """
    genotypes = cell_list(genotypes, macro)
    data = training_data(train_set, test_set, macro, config)
    x_train, y_train, x_test, y_test, fill = data.x_train, data.y_train, data.x_test, data.y_test, data.fill
    indices, n_test, data_id = data.indices, len(data.y_test), data.data_id

    model = initial_model(genotypes, macro, config)
    model.to(device)
    steps = (len(indices) + config.batch_size - 1) // config.batch_size
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch=steps)
    expected = fingerprint(genotypes, macro, config, data_id)
    ckpt_path = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
    history: list[dict] = []
    start_epoch = 0

    with torch.random.fork_rng(devices=[]):
        if resume:
            if ckpt_path is None or not ckpt_path.exists():
                raise SpikeNASError(f"--resume: no checkpoint at {ckpt_path}; run without --resume first")
            state = load_checkpoint(ckpt_path, expected)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history = list(state["history"])
            start_epoch = int(state["epoch"])
            _set_rng_states(state["rng"])
        t0 = time.perf_counter()
        for epoch in range(start_epoch, config.epochs):
            row = _run_epoch(
                model, optimizer, scheduler, x_train, y_train, fill, config, epoch=epoch, steps=steps,
                progress=progress, device=torch.device(device),
            )
            if config.schedule == "epoch":
                scheduler.step()
            row["test_accuracy"], row["test_loss"] = evaluate(
                model, x_test, y_test, batch_size=config.eval_batch_size
            )
            history.append(row)
            if ckpt_path is not None:
                save_checkpoint(
                    ckpt_path,
                    {
                        "format": _CHECKPOINT_FORMAT,
                        "fingerprint": expected,
                        "epoch": epoch + 1,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "history": history,
                        "rng": _rng_states(),
                    },
                )
            if progress:
                log.info("epoch %d/%d: %s", epoch + 1, config.epochs, row)
            if on_epoch_end is not None:
                try:
                    on_epoch_end(epoch + 1, row)
                except StopTraining:
                    break
        train_seconds = time.perf_counter() - t0

    if history:
        accuracy, loss = history[-1]["test_accuracy"], history[-1]["test_loss"]
    else:
        accuracy, loss = evaluate(model, x_test, y_test, batch_size=config.eval_batch_size)
    model.to("cpu")
    spikes = None
    if count_test_spikes:
        batches = [x_test[i : i + config.eval_batch_size] for i in range(0, n_test, config.eval_batch_size)]
        spikes = count_spikes(model, batches)
    return TrainResult(history, accuracy, loss, spikes, train_seconds, start_epoch, model, config.epochs, expected)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum and weight decay by keyword) or AdamW over every parameter of ``model``."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, *, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule: cosine from ``lr`` to ``eta_min``.

    ``schedule="epoch"`` steps it once per epoch over ``epochs`` (SNASNet); ``"step"`` steps it after
    every batch: ``warmup_steps`` batches (at most a tenth of all batches, so a short run on a subset
    still spends most of its steps at a high rate) of linear warm-up, then a cosine over the remaining
    batches, so the rate ends at ``eta_min`` after the last batch of the last epoch.
    """
    if config.schedule == "epoch":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.eta_min)
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(config.warmup_steps, total // 10)
    floor = config.eta_min / config.lr
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(_warmup_cosine, warmup=warmup, total=total, floor=floor)
    )


def _warmup_cosine(step: int, *, warmup: int, total: int, floor: float) -> float:
    """Learning-rate factor after ``step`` batches: linear warm-up to 1, then a cosine down to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
) -> tuple[float, torch.Tensor]:
    """One optimizer step of BPTT on a batch; the neurons are reset afterwards.

    :param images: float32 ``[B, C, H, W]``; :param labels: int64 ``[B]``.
    :returns: the batch's mean cross-entropy and its detached float32 ``[B, classes]`` logits.
    """
    optimizer.zero_grad(set_to_none=True)
    logits = model(images)
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    loss.backward()
    optimizer.step()
    functional.reset_net(model)
    return loss.item(), logits.detach()


def epoch_batches(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    fill: torch.Tensor,
    config: TrainConfig,
    *,
    epoch: int,
    steps: int,
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``steps`` augmented batches of epoch ``epoch``: float32 ``[b, C, S, S]`` images and int64 ``[b]``
    labels on ``device``.

    Seeds torch's global generator for the epoch's dropout masks when iteration starts, and draws the data order,
    crops and flips from a generator seeded by ``(config.seed, epoch)``.
    """
    seed = epoch_seed(config.seed, epoch)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed ^ 0x5EED)  # dropout masks come from torch's global generator
    order = torch.randperm(len(y_train), generator=generator)
    for step in range(steps):
        idx = order[step * config.batch_size : (step + 1) * config.batch_size]
        x = augment(x_train[idx], padding=config.crop_padding, flip=config.flip, fill=fill, generator=generator)
        yield x.to(device, non_blocking=True), y_train[idx].to(device, non_blocking=True)


def _run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    fill: torch.Tensor,
    config: TrainConfig,
    *,
    epoch: int,
    steps: int,
    progress: bool,
    device: torch.device,
) -> dict:
    """One epoch of training; every random draw comes from generators seeded by ``(config.seed, epoch)``.

    The scheduler is stepped after every batch when ``config.schedule`` is ``"step"``.
    """
    lr = optimizer.param_groups[0]["lr"]
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    with Progress(steps, f"epoch {epoch + 1}/{config.epochs}", enabled=progress, every=25.0) as bar:
        for x, y in epoch_batches(x_train, y_train, fill, config, epoch=epoch, steps=steps, device=device):
            loss, logits = train_step(model, optimizer, x, y, label_smoothing=config.label_smoothing)
            if config.schedule == "step":
                scheduler.step()
            loss_sum += loss * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(y)
            bar.update(1, loss=f"{loss_sum / seen:.3f}")
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": loss_sum / seen,
        "train_accuracy": correct / seen,
        "seconds": time.perf_counter() - start,
    }
