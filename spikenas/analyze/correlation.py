"""Score against accuracy: sample K connected cells, score each untrained, train each briefly, rank-correlate.

The K cells are drawn without replacement, seeded, from the connected cells of ``--ops`` (the same
cell in every position). Each cell is scored untrained by every score of ``--scores`` (registered
in :mod:`spikenas.scoring`; default the search's default score and SNASNet's ``sahd``) with the
search's evaluator on the search's fixed batches (the fast preset's proxy network), trained once with
:mod:`spikenas.train.trainer`, and Kendall's tau-b and Spearman's rho (:mod:`spikenas.stats`) of each
score against accuracy are computed over the cells with a finite score. Each cell is a sweep task
(``--executor local|ray``): one result file per cell under ``<output-dir>/runs``; ``--resume`` keeps
the finished ones.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from spikenas.analyze.report import (
    add_common_arguments,
    pyplot,
    search_config,
    setup_threads,
    study_arguments,
    sweep_rows,
    train_cells,
    train_config,
    write_study_results,
    write_tables,
)
from spikenas.argparsing import positive_int
from spikenas.errors import SpikeNASError
from spikenas.executor import add_executor_arguments
from spikenas.memory import network_params
from spikenas.nas import prepare as prepare_search
from spikenas.results import save_figure
from spikenas.scoring import get_score
from spikenas.space import Genotype, connected_mask
from spikenas.stats import kendall_tau, spearman_rho
from spikenas.sweep import SweepTask

HELP = "score vs accuracy: K random cells scored and trained briefly; Kendall tau and Spearman rho"
BASE_COLUMNS = ("index", "cell", "params", "accuracy", "train_s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_executor_arguments(parser)
    parser.add_argument("--k", type=positive_int, default=12, help="cells sampled (default 12)")
    parser.add_argument("--ops", default="3O", help="op set sampled from (default 3O)")
    parser.add_argument("--cells", type=int, default=2, choices=(1, 2, 3), help="cells in the network (default 2)")
    parser.add_argument("--scores", nargs="+",
                        help="registered scores to correlate (default: the search's default score and sahd)")


def sample_indices(op_set: str, k: int, *, seed: int) -> list[int]:
    """``k`` distinct indices of connected cells of ``op_set``, drawn with ``seed``."""
    connected = np.flatnonzero(connected_mask(op_set))
    if not 2 <= k <= len(connected):
        raise SpikeNASError(f"--k must be in 2..{len(connected)} (connected cells of {op_set}), got {k}")
    return [int(i) for i in np.random.default_rng(seed).choice(connected, size=k, replace=False)]


def correlations(scores: list[float], accuracies: list[float]) -> dict:
    """Kendall tau-b and Spearman rho over the pairs with a finite score."""
    pairs = [(s, a) for s, a in zip(scores, accuracies, strict=True) if math.isfinite(s)]
    if len(pairs) < 2:
        return {"n": len(pairs), "kendall_tau": float("nan"), "spearman_rho": float("nan")}
    s, a = zip(*pairs, strict=True)
    return {"n": len(pairs), "kendall_tau": kendall_tau(s, a), "spearman_rho": spearman_rho(s, a)}


@functools.lru_cache(maxsize=2)
def _evaluators(study_json: str, names: tuple[str, ...]) -> tuple:
    """(macro, {score: evaluator}) of a study, made once per process (the driver's or a worker's)."""
    args = argparse.Namespace(**json.loads(study_json))
    config = search_config(args, op_set=args.ops, num_cells=args.cells)
    macro, batches = prepare_search(config.macro, config.data, seed=config.seed)
    evaluators = {
        name: config.mode.make_evaluator(macro, batches, replace(config.score, name=name), seed=config.seed)
        for name in names
    }
    return macro, evaluators


def cell_row(*, study: dict, index: int, names: list[str]) -> dict:
    """One row: cell ``index`` of ``--ops`` in every position, scored untrained by each of ``names``, then trained.

    A module-level sweep task (:mod:`spikenas.sweep`).
    :param study: the study's arguments (``vars(args)`` without output and executor options).
    """
    args = argparse.Namespace(**study)
    setup_threads(args)
    macro, evaluators = _evaluators(json.dumps(study, sort_keys=True), tuple(names))
    genotype = Genotype.from_index(index, args.ops)
    cells = (genotype,) * args.cells
    row: dict = {"index": index, "cell": genotype.to_nb201(), "params": network_params(cells, macro)}
    for name, evaluator in evaluators.items():
        record = evaluator.evaluate(cells)
        row[f"score_{name}"] = record.score if record.status == "ok" else float("-inf")
    t1 = time.perf_counter()
    row["accuracy"] = train_cells(cells, macro, args).test_accuracy
    row["train_s"] = time.perf_counter() - t1
    return row


def run(args: argparse.Namespace) -> int:
    setup_threads(args)
    out_dir = Path(args.output_dir)
    t0 = time.perf_counter()
    config = search_config(args, op_set=args.ops, num_cells=args.cells)
    names = list(dict.fromkeys(args.scores or [config.score.name, "sahd"]))
    for name in names:
        get_score(name)
    indices = sample_indices(args.ops, args.k, seed=args.seed)
    macro, _ = prepare_search(config.macro, config.data, seed=config.seed)
    study = study_arguments(args)
    tasks = [SweepTask(f"cell-{index}", cell_row, {"study": study, "index": index, "names": names})
             for index in indices]
    rows = sweep_rows(tasks, args)
    summary = {n: correlations([float(r[f"score_{n}"]) for r in rows], [r["accuracy"] for r in rows]) for n in names}
    score_columns = tuple(f"score_{n}" for n in names)
    md, csv_path = write_tables(rows, (*BASE_COLUMNS[:3], *score_columns, *BASE_COLUMNS[3:]), out_dir)
    with open(md, "a") as f:
        f.write(f"\n{args.ops}, {args.cells} cells, {args.dataset}, {args.epochs} epochs on {args.max_train_samples} "
                "training images per cell.\n\n| score | n | Kendall tau-b | Spearman rho |\n|---|---|---|---|\n")
        for n, c in summary.items():
            f.write(f"| {n} | {c['n']} | {c['kendall_tau']:.4f} | {c['spearman_rho']:.4f} |\n")
    png = plot(rows, summary, out_dir / "score_vs_accuracy.png")
    write_study_results(out_dir, "correlation", args, rows, start=t0, summary=summary, config={
        "search": config.to_dict(), "train": train_config(args).to_dict(), "macro": macro.to_dict(), "indices": indices,
    })
    print(md.read_text(), end="")
    print(f"wrote {md}, {csv_path}, {png}, {out_dir / 'results.json'}")
    return 0


def plot(rows: list[dict], summary: dict, path: Path) -> Path:
    """One scatter per score: trained accuracy against the untrained score (cells with a finite score)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(summary), figsize=(5 * len(summary), 4.2), squeeze=False)
    for ax, (name, c) in zip(axes[0], summary.items(), strict=True):
        finite = [r for r in rows if math.isfinite(float(r[f"score_{name}"]))]
        ax.scatter([float(r[f"score_{name}"]) for r in finite], [100 * r["accuracy"] for r in finite], s=30)
        ax.set_xlabel(f"score {name} (untrained)")
        ax.set_ylabel("test accuracy after brief training (%)")
        ax.set_title(f"{name}: tau {c['kendall_tau']:.3f}, rho {c['spearman_rho']:.3f} (n={c['n']})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
