"""One training run from JSON-ready arguments: the sweep task (:mod:`spikenas.sweep`) that trains a network."""

from __future__ import annotations

from pathlib import Path

from spikenas.data import load_dataset
from spikenas.network import MacroConfig
from spikenas.space import Genotype
from spikenas.train.trainer import CHECKPOINT_NAME, TrainConfig
from spikenas.train.trainer import train as train_network


def train_task(
    *,
    cells: list[str],
    macro: dict,
    train: dict,
    dataset: str = "digits",
    data_dir: str | None = None,
    checkpoint_dir: str | None = None,
    seed: int = 0,
) -> dict:
    """Train one network (``spikenas.train.trainer.train``) and return its accuracy, loss, history and spikes.

    :param cells: NAS-Bench-201 strings, one per cell or one for all.
    :param macro: :class:`~spikenas.network.MacroConfig` fields.
    :param train: :class:`~spikenas.train.trainer.TrainConfig` fields (its ``seed`` is set from ``seed``).
    :param checkpoint_dir: per-epoch checkpoints; a retried run resumes from the last finished epoch
        (on a cluster this must be storage every node sees).
    """
    genotypes = [Genotype.from_nb201(c) for c in cells]
    config = TrainConfig(**{**train, "seed": seed})
    resume = checkpoint_dir is not None and (Path(checkpoint_dir) / CHECKPOINT_NAME).exists()
    result = train_network(
        genotypes if len(genotypes) > 1 else genotypes[0],
        MacroConfig(**macro),
        load_dataset(dataset, data_dir=data_dir, split="train"),
        load_dataset(dataset, data_dir=data_dir, split="test"),
        config=config,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=False,
    )
    return result.to_dict()


def train_group_task(
    *,
    ids: list[str],
    cells: list[list[str]],
    macro: dict,
    train: dict,
    dataset: str,
    data_dir: str | None,
    val_samples: int,
    checkpoint_root: str,
    seed: int = 0,
) -> dict:
    """Train several networks of one macro at once (:func:`spikenas.train.stacked_training.train_stacked`) with
    per-epoch validation on a held-out part of the training split, then test each once on the test split.

    :param ids: one name per network: its checkpoint folder under ``checkpoint_root`` and its result row's id.
    :param cells: per network, NAS-Bench-201 strings (one per cell or one for all).
    :param val_samples: training images held out for validation, drawn with seed 0 (the same split for every
        record and seed, so validation curves of different seeds compare).
    :returns: ``records``: per network its id, ``history`` (``test_*`` columns are the validation figures),
        ``test_accuracy`` and ``test_loss`` on the test split, ``params``, ``neurons``, ``firing_rate`` (spikes per
        neuron and timestep on the validation images) and ``train_seconds``.
    """
    import numpy as np

    from spikenas.data import ImageDataset
    from spikenas.deployment import deployment_report
    from spikenas.errors import SpikeNASError
    from spikenas.memory import network_params
    from spikenas.train.stacked_training import train_stacked
    from spikenas.train.trainer import evaluate

    if len(ids) != len(cells):
        raise SpikeNASError(f"got {len(ids)} ids for {len(cells)} networks")
    full = load_dataset(dataset, data_dir=data_dir, split="train")
    if not 1 <= val_samples < len(full):
        raise SpikeNASError(f"val_samples must be in 1..{len(full) - 1}, got {val_samples}")
    order = np.random.default_rng(0).permutation(len(full))
    tr, va = np.sort(order[val_samples:]), np.sort(order[:val_samples])
    train_set = ImageDataset(f"{full.name}[train minus {val_samples} val]", full.images[tr], full.labels[tr],
                             full.num_classes)
    val_set = ImageDataset(f"{full.name}[{val_samples} val]", full.images[va], full.labels[va], full.num_classes)
    test_set = load_dataset(dataset, data_dir=data_dir, split="test")
    config = TrainConfig(**{**train, "seed": seed})
    network = MacroConfig(**macro)
    genotypes = [[Genotype.from_nb201(c) for c in cs] for cs in cells]
    dirs = [Path(checkpoint_root) / i for i in ids]
    resume = all((d / CHECKPOINT_NAME).exists() for d in dirs)
    results = train_stacked(genotypes, network, train_set, val_set, config=config, checkpoint_dirs=dirs,
                            resume=resume, progress=False, count_test_spikes=True)
    x_test, y_test = test_set.tensors(np.arange(len(test_set)), input_size=network.input_size)
    rows = []
    for name, g, result in zip(ids, genotypes, results, strict=True):
        accuracy, loss = evaluate(result.model, x_test, y_test, batch_size=config.eval_batch_size)
        neurons = deployment_report(g, network).memory.neurons
        spikes = 0.0 if result.spikes is None else result.spikes.total
        rows.append({
            "id": name, "cells": [x.to_nb201() for x in g], "history": result.history, "test_accuracy": accuracy,
            "test_loss": loss, "params": network_params(g, network), "neurons": neurons,
            "firing_rate": spikes / (neurons * network.timesteps), "train_seconds": result.train_seconds,
        })
    return {"records": rows}
