"""Sweeps: many independent runs (training, scoring) on an executor, one result file per run, resumable.

A :class:`SweepTask` has a stable id and a module-level function called with keyword arguments.
:func:`run_sweep` skips every task whose result file ``<output_dir>/<id>.json`` already exists (and
was written for the same arguments), runs the others on a :mod:`spikenas.executor` executor, and
writes each result atomically the moment it arrives, so a killed driver loses only runs in flight
and a rerun recomputes nothing finished. On Ray a run whose worker process or node dies is retried
(``max_retries``); a run whose function raises is reported as failed and left without a result
file, so the next rerun tries it again. Result files are keyed by id: a retried run can never appear
twice.

Built-in task functions: :func:`train_task` (train a network, e.g. a row of the scenario table or a
fidelity-study network) and :func:`score_task` (score a network under a search configuration).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikenas.errors import SpikeNASError
from spikenas.executor import Executor, LocalExecutor
from spikenas.progress import Progress
from spikenas.results import versions, write_json

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]*")


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep."""

    id: str  # stable and unique in the sweep; names the result file <id>.json
    fn: Callable[..., dict]  # module-level (importable by workers) function returning a JSON-ready dict
    kwargs: dict = field(default_factory=dict)  # keyword arguments of fn, recorded as the run's config

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise SpikeNASError(f"sweep task id {self.id!r} must match {_ID.pattern} (it names a file)")

    @property
    def function_name(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"


@dataclass
class SweepResult:
    """What a sweep call did."""

    payloads: dict[str, dict]  # task id -> its result file's content, in task order
    ran: list[str]  # ids computed in this call, in completion order
    skipped: list[str]  # ids whose result file already existed
    failed: dict[str, str]  # id -> error of runs whose function raised (no result file written)
    seconds: float  # wall time of this call


def _run_one(shared: Any, task: SweepTask) -> dict:
    """Worker side: run the task and time it; exceptions become a failure report."""
    start = time.perf_counter()
    try:
        result = task.fn(**task.kwargs) if shared is None else task.fn(shared=shared, **task.kwargs)
        error = None
    except Exception as err:  # reported per run by run_sweep; never swallowed
        result, error = None, f"{type(err).__name__}: {err}"
    return {
        "result": result,
        "error": error,
        "run_s": time.perf_counter() - start,
        "worker": {"host": socket.gethostname(), "pid": os.getpid()},
    }


def result_path(output_dir: str | Path, task_id: str) -> Path:
    return Path(output_dir) / f"{task_id}.json"


def _finished(path: Path, task: SweepTask) -> dict | None:
    """The result file of ``task`` if it exists; a file for other arguments is an error."""
    if not path.exists():
        return None
    payload = json.loads(path.read_text())
    if payload.get("config") != json.loads(json.dumps(task.kwargs)) or payload.get("task") != task.function_name:
        raise SpikeNASError(
            f"{path} holds a run of {payload.get('task')} with other arguments than sweep task {task.id!r}; "
            "delete it or use another output directory"
        )
    return payload


def run_sweep(
    tasks: Sequence[SweepTask],
    *,
    output_dir: str | Path,
    executor: Executor | None = None,
    shared: Any = None,
    progress: bool = True,
) -> SweepResult:
    """Run every task not finished in ``output_dir``; write one result file per run.

    :param shared: passed as ``shared=`` to every task function when not None (put in Ray's object
        store once, not sent per task).
    :raises SpikeNASError: duplicate ids, a result file from other arguments, or, after every other
        run has finished and been written, any run whose function raised (listed by id).
    """
    start = time.perf_counter()
    executor = executor or LocalExecutor()
    ids = [t.id for t in tasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SpikeNASError(f"sweep task ids must be unique; repeated: {', '.join(dupes)}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    payloads: dict[str, dict] = {}
    todo = []
    for task in tasks:
        done = _finished(result_path(output_dir, task.id), task)
        if done is None:
            todo.append(task)
        else:
            payloads[task.id] = done
    skipped = list(payloads)
    ran: list[str] = []
    failed: dict[str, str] = {}
    with Progress(len(todo), f"sweep on {executor.name}", enabled=progress) as bar:
        for index, out in executor.imap_unordered(_run_one, todo, shared=shared):
            task = todo[index]
            bar.update(1)
            if out["error"] is not None:
                failed[task.id] = out["error"]
                continue
            payload = {
                "id": task.id,
                "task": task.function_name,
                "config": task.kwargs,
                "seed": task.kwargs.get("seed"),
                "versions": versions(),
                "executor": executor.describe(),
                "worker": out["worker"],
                "timings": {"run_s": out["run_s"]},
                "result": out["result"],
            }
            write_json(result_path(output_dir, task.id), payload)
            payloads[task.id] = json.loads(result_path(output_dir, task.id).read_text())
            ran.append(task.id)
    result = SweepResult(
        payloads={i: payloads[i] for i in ids if i in payloads},
        ran=ran,
        skipped=skipped,
        failed=failed,
        seconds=time.perf_counter() - start,
    )
    if failed:
        lines = "; ".join(f"{k}: {v}" for k, v in failed.items())
        raise SpikeNASError(f"{len(failed)} sweep run(s) failed (rerun to retry them): {lines}")
    return result


# ---- built-in task functions ------------------------------------------------------------------------


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
    from spikenas.data import load_dataset
    from spikenas.network import MacroConfig
    from spikenas.space import Genotype
    from spikenas.train.trainer import CHECKPOINT_NAME, TrainConfig
    from spikenas.train.trainer import train as train_network

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


def score_task(*, cells: list[str], search: dict, seed: int = 0) -> dict:
    """Score one network under a search configuration (``spikenas.search.evaluate_architecture``).

    :param search: :class:`~spikenas.search.SearchConfig` fields except ``score`` and ``seed``, plus
        an optional ``score`` dict of :class:`~spikenas.scoring.ScoreConfig` fields.
    """
    from spikenas.scoring import ScoreConfig
    from spikenas.search import SearchConfig, evaluate_architecture
    from spikenas.space import Genotype

    fields = dict(search)
    score = ScoreConfig(**fields.pop("score", {}))
    config = SearchConfig(**fields, score=score, seed=seed)
    record, payload = evaluate_architecture(config, [Genotype.from_nb201(c) for c in cells])
    return {"score": record.score, "status": record.status, "params": record.params, "message": record.message}


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
    search's ``--fitness autosnn`` (:func:`spikenas.search.evolution.run_evolution`).

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
    import numpy as np
    import torch

    from spikenas.autosnn.network import AutoSNNConfig
    from spikenas.autosnn.supernet import (
        SupernetConfig,
        SuperNetwork,
        evaluate_path,
        sample_path,
        split_indices,
        train_supernet,
    )
    from spikenas.data import load_dataset
    from spikenas.search.evolution import CALIBRATION_IMAGES

    data = load_dataset(dataset, data_dir=data_dir, split="train")
    size = network.get("input_size") or (16 if dataset == "digits" else data.size)
    config = AutoSNNConfig.from_dict(
        {**network, "in_channels": data.in_channels, "num_classes": data.num_classes, "input_size": size}
    )
    train_cfg = SupernetConfig(**{**train, "seed": seed})
    n = len(data) if train_images is None else min(train_images, len(data))
    chosen = np.sort(np.random.default_rng([seed, 7]).permutation(len(data))[:n])
    images, labels = data.tensors(chosen, input_size=size)
    tr, va = split_indices(n, val_fraction=train_cfg.val_fraction, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        supernet = SuperNetwork(config)
    checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir) / SUPERNET_CHECKPOINT
    log = train_supernet(supernet, images[tr], labels[tr], config=train_cfg, checkpoint=checkpoint,
                         resume=checkpoint is not None, progress=False)
    if isinstance(paths, int):
        rng = np.random.default_rng([seed, 11])
        arches = [sample_path(rng) for _ in range(paths)]
    else:
        arches = [tuple(p) for p in paths]
    calibration = images[tr[:CALIBRATION_IMAGES]]
    measured = []
    for arch in arches:
        ev = evaluate_path(supernet, arch, images[va], labels[va], calibration=calibration)
        measured.append({"arch": list(arch), "accuracy": ev.accuracy, "spikes": ev.spikes})
    return {
        "network": config.to_dict(), "train": train_cfg.to_dict(), "log": log.to_dict(),
        "train_images": len(tr), "val_images": len(va), "paths": measured,
    }
