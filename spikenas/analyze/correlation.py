"""Score against accuracy: sample K connected cells, score each untrained, train each briefly, rank-correlate.

The K cells are drawn without replacement, seeded, from the connected cells of ``--ops`` (the same
cell in every position). Scores use the search's scorer on the search's fixed batches (the fast
preset's proxy network); training uses :mod:`spikenas.training`. Kendall's tau-b and Spearman's
rho (:mod:`spikenas.stats`) are computed over the cells with a finite score.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from spikenas.analyze.report import (
    RowJournal,
    add_common_arguments,
    pyplot,
    search_config,
    setup_threads,
    study_fingerprint,
    train_cells,
    train_config,
    write_tables,
)
from spikenas.errors import SpikeNASError
from spikenas.progress import Progress
from spikenas.results import versions, write_json
from spikenas.search import Evaluator
from spikenas.search import prepare as prepare_search
from spikenas.space import Genotype, connected_mask
from spikenas.stats import kendall_tau, spearman_rho

HELP = "score vs accuracy: K random cells scored and trained briefly; Kendall tau and Spearman rho"
COLUMNS = ("index", "cell", "params", "score", "status", "accuracy", "score_s", "train_s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--k", type=int, default=12, help="cells sampled (default 12)")
    parser.add_argument("--ops", default="3O", help="op set sampled from (default 3O)")
    parser.add_argument("--cells", type=int, default=2, choices=(1, 2, 3), help="cells in the network (default 2)")


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


def run(args: argparse.Namespace) -> int:
    setup_threads(args)
    out_dir = Path(args.output_dir)
    t0 = time.perf_counter()
    config = search_config(args, op_set=args.ops, num_cells=args.cells)
    indices = sample_indices(args.ops, args.k, seed=args.seed)
    macro, batches = prepare_search(config)
    evaluator = Evaluator(macro, batches, config.score, seed=config.seed)
    journal = RowJournal(out_dir / "rows.jsonl", study_fingerprint(args), resume=args.resume)
    rows: list[dict] = []
    with Progress(len(indices), "cells", enabled=not args.quiet, every=1.0) as bar:
        for index in indices:
            done = journal.get(str(index))
            if done is not None:
                rows.append(done)
                bar.update(1, acc="resumed")
                continue
            genotype = Genotype.from_index(index, args.ops)
            record = evaluator.evaluate((genotype,) * args.cells)
            t1 = time.perf_counter()
            trained = train_cells(record.cells, macro, args)
            rows.append(
                {
                    "index": index,
                    "cell": genotype.to_nb201(),
                    "params": record.params,
                    "score": record.score,
                    "status": record.status,
                    "accuracy": trained.test_accuracy,
                    "score_s": record.seconds,
                    "train_s": time.perf_counter() - t1,
                }
            )
            journal.add(str(index), rows[-1])
            bar.update(1, acc=f"{trained.test_accuracy:.3f}")
    summary = correlations([float(r["score"]) for r in rows], [r["accuracy"] for r in rows])
    md, csv_path = write_tables(rows, COLUMNS, out_dir)
    with open(md, "a") as f:
        f.write(
            f"\nKendall tau-b = {summary['kendall_tau']:.4f}, Spearman rho = {summary['spearman_rho']:.4f} "
            f"over {summary['n']} cells with a finite score ({args.ops}, {args.cells} cells, {args.dataset}, "
            f"{args.epochs} epochs on {args.max_train_samples} images).\n"
        )
    png = plot(rows, summary, out_dir / "score_vs_accuracy.png")
    write_json(
        out_dir / "results.json",
        {
            "study": "correlation",
            "config": {
                **vars(args), "search": config.to_dict(), "train": train_config(args).to_dict(),
                "macro": macro.to_dict(), "indices": indices,
            },
            "seed": args.seed,
            "versions": versions(),
            "summary": summary,
            "rows": rows,
            "timings": {"total_s": time.perf_counter() - t0},
        },
    )
    print(md.read_text(), end="")
    print(f"wrote {md}, {csv_path}, {png}, {out_dir / 'results.json'}")
    return 0


def plot(rows: list[dict], summary: dict, path: Path) -> Path:
    """Scatter of trained accuracy against score (cells with a finite score)."""
    plt = pyplot()
    finite = [r for r in rows if math.isfinite(float(r["score"]))]
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter([float(r["score"]) for r in finite], [100 * r["accuracy"] for r in finite], s=30)
    ax.set_xlabel("score (log|det K|, untrained)")
    ax.set_ylabel("test accuracy after brief training (%)")
    ax.set_title(f"Kendall tau {summary['kendall_tau']:.3f}, Spearman rho {summary['spearman_rho']:.3f} "
                 f"(n={summary['n']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
