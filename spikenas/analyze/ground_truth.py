"""A trained ground truth in the op sets users search (2O, 3O), on Fashion-MNIST, with its seed noise.

``python -m spikenas.analyze ground_truth --output-dir gt`` trains, with the Fashion-MNIST recipe shortened
(:data:`DEFAULTS`), every network of each record set (:data:`SETS`):

* ``2O-1cell``: every cell of op set 2O in a 1-cell network (64);
* ``3O-1cell``: every cell of 3O in a 1-cell network (729);
* ``3O-2cell``: a seeded sample of two-cell 3O networks, the two cells drawn independently (``--sample``);

and a seeded draw of ``--noise-records`` of those records a second time with seed 1 (the noise floor). Records
train ``--stack`` at a time in one process (:func:`spikenas.train.stacked_training.train_stacked`); a group of
them is one sweep task (:mod:`spikenas.sweep`): each finished group writes its result file at once, each
candidate checkpoints every epoch, and rerunning the command continues where it stopped (on Ray too:
``--executor ray``). Validation curves are measured every epoch on a seeded held-out part of the training
split; the test accuracy is measured once, after the last epoch, on the whole test split.

Afterwards (and after every partial run) the result files are gathered into one CSV per record set in the
SpikeNAS-Bench layout (``<set>.csv`` and ``<set>_curves.csv.gz``, see :func:`write_tables`), and the noise floor
(Kendall tau-b between the two seeds' test accuracies) into ``noise_floor.json``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from spikenas.argparsing import non_negative_int, positive_int, random_seed
from spikenas.errors import SpikeNASError
from spikenas.executor import add_executor_arguments, executor_from_args
from spikenas.network import MacroConfig
from spikenas.ops import get_op_set
from spikenas.results import atomic_path, versions, write_json
from spikenas.space import EDGES, Genotype
from spikenas.sweep import SweepTask, result_path, run_sweep
from spikenas.train.recipes import get_recipe
from spikenas.train.train_job import train_group_task

HELP = "trained ground truth on Fashion-MNIST in op sets 2O and 3O (1 and 2 cells), with its seed noise floor"

#: record set -> (op set, cells, sample size; None: every cell)
SETS: dict[str, tuple[str, int, int | None]] = {
    "2O-1cell": ("2O", 1, None),
    "3O-1cell": ("3O", 1, None),
    "3O-2cell": ("3O", 2, 300),
}
#: The shortened Fashion-MNIST recipe: its network and optimisation, fewer images and epochs.
DEFAULTS = {"epochs": 3, "max_train_samples": 2_000, "val_samples": 1_000}
NOISE_SEED = 1  # the second seed of the noise-floor records
OP_COLUMNS = tuple(f"op{s}{d}" for s, d in EDGES)


@dataclass(frozen=True)
class Record:
    """One network of the ground truth: its record set, its cells (indices in the op set) and its seed."""

    set: str
    cells: tuple[int, ...]
    seed: int

    @property
    def op_set(self) -> str:
        return SETS[self.set][0]

    @property
    def arch_id(self) -> int:
        """``sum_c index_c * k**(6 c)``: cell 1's index in the low digits (SpikeNAS-Bench's id for one cell)."""
        k = len(get_op_set(self.op_set))
        return sum(index * k ** (len(EDGES) * c) for c, index in enumerate(self.cells))

    @property
    def id(self) -> str:
        return f"{self.set}_{self.arch_id}_s{self.seed}"

    def nb201(self) -> list[str]:
        return [Genotype.from_index(i, self.op_set).to_nb201() for i in self.cells]


def records(sets: list[str], *, sample: int, sample_seed: int, noise_records: int) -> list[Record]:
    """Every record of ``sets`` with seed 0, then ``noise_records`` of them (a seeded draw) with seed 1."""
    out: list[Record] = []
    rng = np.random.default_rng(sample_seed)
    for name in sets:
        op_set, cells, size = SETS[name]
        count = len(get_op_set(op_set)) ** len(EDGES)
        if size is None:
            out += [Record(name, (i,), 0) for i in range(count)]
        else:
            draws = rng.integers(0, count, size=(sample, cells))
            out += [Record(name, tuple(int(i) for i in row), 0) for row in draws]
    noise = rng.permutation(len(out))[: min(noise_records, len(out))]
    return out + [Record(out[i].set, out[i].cells, NOISE_SEED) for i in sorted(noise)]


def groups(recs: list[Record], stack: int) -> list[list[Record]]:
    """Records of the same set and seed, ``stack`` at a time: the noise-floor pairs (both seeds) first, then the
    rest in order, so that an interrupted sweep already knows its noise floor."""
    paired = {(r.set, r.cells) for r in recs if r.seed == NOISE_SEED}
    first = [r for r in recs if (r.set, r.cells) in paired]
    rest = [r for r in recs if (r.set, r.cells) not in paired]
    out: list[list[Record]] = []
    for part in (first, rest):
        for key in dict.fromkeys((r.set, r.seed) for r in part):
            members = [r for r in part if (r.set, r.seed) == key]
            out += [members[i : i + stack] for i in range(0, len(members), stack)]
    return out


def network_fields(num_cells: int) -> dict:
    """The network every record trains, as the sweep tasks record it: the Fashion-MNIST recipe's fields with
    ``num_cells`` cells (the other MacroConfig fields keep their defaults)."""
    return {"num_cells": num_cells, "in_channels": 1, "num_classes": 10, **get_recipe("fashion-mnist").macro_fields()}


def network_macro(num_cells: int) -> MacroConfig:
    """:func:`network_fields` as a MacroConfig."""
    return MacroConfig(**network_fields(num_cells))


def sweep_tasks(args: argparse.Namespace) -> tuple[list[SweepTask], list[Record]]:
    """One sweep task per group of records; the recipe is the Fashion-MNIST one with the command's changes."""
    recipe = get_recipe("fashion-mnist")
    train = recipe.train.replace(epochs=args.epochs, max_train_samples=args.max_train_samples).to_dict()
    recs = records(args.sets, sample=args.sample, sample_seed=args.sample_seed, noise_records=args.noise_records)
    tasks = []
    for index, group in enumerate(groups(recs, args.stack)):
        macro = network_fields(SETS[group[0].set][1])
        tasks.append(SweepTask(f"group{index:04d}_{group[0].set}_s{group[0].seed}", train_group_task, {
            "ids": [r.id for r in group], "cells": [r.nb201() for r in group], "macro": macro, "train": train,
            "dataset": "fashion-mnist", "data_dir": args.data_dir, "val_samples": args.val_samples,
            "seed": group[0].seed,
        }, scratch={"checkpoint_root": str(Path(args.output_dir).resolve() / "checkpoints")}))
    return tasks, recs


def write_tables(out_dir: Path, recs: list[Record], payloads: dict[str, dict]) -> dict[str, int]:
    """Gather finished records into ``<set>.csv`` and ``<set>_curves.csv.gz`` per record set (seed 0 only; the
    seed-1 records go to ``noise_floor.csv``, test accuracies of both seeds, and ``noise_floor_curves.csv.gz``,
    validation curves of both seeds); returns records written per file.

    Columns follow SpikeNAS-Bench (``arch_id, op01..op23, params, n_epochs_logged, test_acc, final_val_acc,
    best_val_acc, val_acc_ep100, fr_all``; accuracies in %). ``val_acc_ep100`` holds the last epoch's validation
    accuracy (there is no epoch 100). Two-cell records add ``op01_c2..op23_c2`` (cell 2's op codes), and
    ``arch_id`` is :attr:`Record.arch_id`; every file adds ``op_set``.
    """
    rows: dict[str, dict] = {}
    for payload in payloads.values():
        for row in payload["result"]["records"]:
            rows[row["id"]] = row
    written: dict[str, int] = {}
    for name in dict.fromkeys(r.set for r in recs):
        chosen = [r for r in recs if r.set == name and r.seed == 0 and r.id in rows]
        written[f"{name}.csv"] = _write_set(out_dir, name, chosen, rows)
    noisy = [r for r in recs if r.seed == NOISE_SEED and r.id in rows]
    with atomic_path(out_dir / "noise_floor.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["set", "arch_id", "seed0_test_acc", "seed1_test_acc"])
        for r in noisy:
            twin = Record(r.set, r.cells, 0).id
            if twin in rows:
                w.writerow([r.set, r.arch_id, _pct(rows[twin]["test_accuracy"]), _pct(rows[r.id]["test_accuracy"])])
    written["noise_floor.csv"] = len(noisy)
    with atomic_path(out_dir / "noise_floor_curves.csv.gz") as tmp, gzip.open(tmp, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["set", "arch_id", "seed", "epoch", "val_acc"])
        for r in noisy:
            twin = Record(r.set, r.cells, 0).id
            for seed, rid in ((0, twin), (NOISE_SEED, r.id)):
                for e, h in enumerate(rows.get(rid, {}).get("history", [])):
                    w.writerow([r.set, r.arch_id, seed, e, _pct(h["test_accuracy"])])
    return written


def _pct(x: float) -> str:
    return f"{100 * x:.3f}"


def _write_set(out_dir: Path, name: str, chosen: list[Record], rows: dict[str, dict]) -> int:
    cells = SETS[name][1]
    extra = [f"{c}_c{p}" for p in range(2, cells + 1) for c in OP_COLUMNS]
    header = ["arch_id", *OP_COLUMNS, *extra, "params", "n_epochs_logged", "test_acc", "final_val_acc",
              "best_val_acc", "val_acc_ep100", "fr_all", "op_set"]
    with atomic_path(out_dir / f"{name}.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in chosen:
            row = rows[r.id]
            codes = [d for i in r.cells for d in _digits(i, len(get_op_set(r.op_set)))]
            val = [h["test_accuracy"] for h in row["history"]]
            w.writerow([r.arch_id, *codes, row["params"], len(val), _pct(row["test_accuracy"]), _pct(val[-1]),
                        _pct(max(val)), _pct(val[-1]), f"{row['firing_rate']:.4f}", r.op_set])
    with atomic_path(out_dir / f"{name}_curves.csv.gz") as tmp, gzip.open(tmp, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_id", "epoch", "train_acc", "train_loss", "val_acc", "val_loss"])
        for r in chosen:
            for e, h in enumerate(rows[r.id]["history"]):
                w.writerow([r.arch_id, e, _pct(h["train_accuracy"]), f"{h['train_loss']:.4f}",
                            _pct(h["test_accuracy"]), f"{h['test_loss']:.4f}"])
    return len(chosen)


def _digits(index: int, k: int) -> list[int]:
    return [(index // k**e) % k for e in range(len(EDGES))]


def noise_floor(recs: list[Record], payloads: dict[str, dict]) -> dict:
    """Kendall tau-b (and the mean absolute difference) between the two seeds' test accuracies, per record set
    and over all noise records, for the pairs finished so far."""
    acc = {row["id"]: row["test_accuracy"] for p in payloads.values() for row in p["result"]["records"]}
    pairs: dict[str, list[tuple[float, float]]] = {}
    for r in recs:
        twin = Record(r.set, r.cells, 0).id
        if r.seed == NOISE_SEED and r.id in acc and twin in acc:
            pairs.setdefault(r.set, []).append((acc[twin], acc[r.id]))
    pairs["all"] = [p for name in list(pairs) for p in pairs[name]]
    out = {}
    for name, values in pairs.items():
        a, b = (np.array(v) for v in zip(*values, strict=True)) if values else (np.array([]), np.array([]))
        tau = float(stats.kendalltau(a, b, variant="b").statistic) if len(a) >= 2 else math.nan
        out[name] = {"pairs": len(a), "kendall_tau_b": tau,
                     "mean_abs_diff_pct": float(100 * np.abs(a - b).mean()) if len(a) else math.nan}
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="ground_truth", help="result files, checkpoints and tables")
    parser.add_argument("--sets", default=",".join(SETS),
                        help=f"comma-separated record sets among {', '.join(SETS)} (default: all)")
    parser.add_argument("--sample", type=positive_int, default=300, help="networks of each sampled set (default 300)")
    parser.add_argument("--sample-seed", type=random_seed, default=0, help="seed of the samples (default 0)")
    parser.add_argument("--noise-records", type=int, default=100,
                        help="records trained a second time with seed 1 (default 100)")
    parser.add_argument("--stack", type=positive_int, default=8, help="networks trained at once (default 8)")
    parser.add_argument("--epochs", type=positive_int, default=DEFAULTS["epochs"],
                        help=f"epochs per network (default {DEFAULTS['epochs']})")
    parser.add_argument("--max-train-samples", type=positive_int, default=DEFAULTS["max_train_samples"],
                        help=f"seeded training subset (default {DEFAULTS['max_train_samples']})")
    parser.add_argument("--val-samples", type=positive_int, default=DEFAULTS["val_samples"],
                        help=f"held-out training images for the validation curves (default {DEFAULTS['val_samples']})")
    parser.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files (default: Debian's)")
    parser.add_argument("--limit", type=non_negative_int, default=None,
                        help="run at most this many groups now (the rest on a later run; 0: only gather the tables "
                        "and the noise floor of the groups finished)")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    sets = [s.strip() for s in str(args.sets).split(",") if s.strip()]
    unknown = [s for s in sets if s not in SETS]
    if unknown or not sets:
        raise SpikeNASError(f"--sets {args.sets!r}: choose among {', '.join(SETS)}")
    if args.noise_records < 0:
        raise SpikeNASError(f"--noise-records must be >= 0, got {args.noise_records}")
    args.sets = sets
    out_dir = Path(args.output_dir)
    tasks, recs = sweep_tasks(args)
    todo = tasks if args.limit is None else tasks[: args.limit]
    result = run_sweep(todo, output_dir=out_dir / "runs", executor=executor_from_args(args))
    done = {t.id: json.loads(path.read_text()) for t in tasks if (path := result_path(out_dir / "runs", t.id)).exists()}
    written = write_tables(out_dir, recs, done)
    floor = noise_floor(recs, done)
    write_json(out_dir / "noise_floor.json", {
        "config": {k: v for k, v in vars(args).items() if k != "func"}, "seed": args.sample_seed,
        "versions": versions(), "timings": {"command_s": time.perf_counter() - start, "sweep_s": result.seconds},
        "records": len(recs), "groups": len(tasks), "groups_finished": len(done), "noise_floor": floor,
    })
    print(f"{len(done)} of {len(tasks)} groups finished ({len(result.ran)} now); " +
          ", ".join(f"{name}: {n}" for name, n in written.items()))
    for name, f in floor.items():
        print(f"noise floor {name}: {f['pairs']} pairs, tau-b {f['kendall_tau_b']:.3f}, "
              f"mean |diff| {f['mean_abs_diff_pct']:.2f} points")
    return 0
