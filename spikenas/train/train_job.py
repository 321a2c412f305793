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
