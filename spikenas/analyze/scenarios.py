"""The 12 scenarios of SpikeNAS Table 1: 1, 2, 3 cells x op sets 3O, 2O x without and with a memory budget.

Each scenario runs Alg. 1 (``algorithm="spikenas"``) on the same data and proxy network and trains
the network found for a few epochs. Scenarios are sweep tasks (``--executor local|ray``): one result
file per scenario under ``<output-dir>/runs``; ``--resume`` keeps the finished ones. The budget of a
budgeted scenario is a parameter count: the ``--budget-quantile`` quantile (default the median) of
the parameter counts of every network of that scenario's space with the same cell in all positions,
so it is meaningful at any proxy width; the table states it. Memory is reported as bytes at 32 and
at 8 bits per parameter (Eq. 8).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from spikenas.analyze.report import (
    add_common_arguments,
    datasets,
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
from spikenas.errors import SpikeNASError
from spikenas.executor import add_executor_arguments
from spikenas.memory import enumerate_params, params_to_bytes
from spikenas.search import SearchConfig, run_search
from spikenas.search import macro_for as search_macro
from spikenas.space import connected_mask
from spikenas.sweep import SweepTask

HELP = "Table 1: 1/2/3 cells x 3O/2O x with and without a budget; params, bytes, score, time, accuracy"
COLUMNS = (
    "scenario", "cells", "op_set", "budget", "params", "bytes_32", "bytes_8", "meets_budget", "score",
    "search_s", "accuracy", "train_s", "network",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_executor_arguments(parser)
    parser.add_argument("--cells-list", type=int, nargs="+", default=[1, 2, 3], help="cell counts (default 1 2 3)")
    parser.add_argument("--op-sets", nargs="+", default=["3O", "2O"], help="op sets (default 3O 2O)")
    parser.add_argument("--budget-quantile", type=float, default=0.5,
                        help="budget = this quantile of the space's parameter counts (default 0.5, the median)")


def scenario_budget(config: SearchConfig, quantile: float) -> int:
    """The ``quantile`` of the parameter counts of the connected same-cell networks of ``config``'s space."""
    train_set, _ = datasets(config.dataset, config.data_dir)
    macro = search_macro(
        config, in_channels=train_set.in_channels, num_classes=train_set.num_classes, native_size=train_set.size
    )
    counts = enumerate_params(config.op_set, macro)[connected_mask(config.op_set)]
    return int(np.quantile(counts, quantile, method="lower"))


def scenario_row(*, study: dict, cells: int, op_set: str, budgeted: bool) -> dict:
    """One row of the table: Alg. 1 on the scenario's space, then brief training of what it found.

    A module-level sweep task (:mod:`spikenas.sweep`), so a row runs on any worker, local or Ray.
    :param study: the study's arguments (``vars(args)`` without output and executor options).
    """
    args = argparse.Namespace(**study)
    setup_threads(args)
    config = search_config(args, op_set=op_set, num_cells=cells, algorithm="spikenas")
    budget = scenario_budget(config, args.budget_quantile) if budgeted else None
    config = config.replace(budget=budget)
    result, payload = run_search(config, progress=False)
    best = result.best
    t1 = time.perf_counter()
    trained = train_cells(best.cells, payload["macro"], args)
    return {
        "scenario": f"{cells} cell{'s' if cells > 1 else ''}, {op_set}, " + ("budget" if budgeted else "no budget"),
        "cells": cells,
        "op_set": op_set,
        "budget": budget,
        "params": best.params,
        "bytes_32": int(params_to_bytes(best.params, 32)),
        "bytes_8": int(params_to_bytes(best.params, 8)),
        "meets_budget": result.meets_budget,
        "score": best.score,
        "search_s": result.seconds,
        "accuracy": trained.test_accuracy,
        "train_s": time.perf_counter() - t1,
        "network": " ; ".join(g.to_nb201() for g in best.cells),
    }


def run(args: argparse.Namespace) -> int:
    setup_threads(args)
    if not 0 < args.budget_quantile <= 1:
        raise SpikeNASError(f"--budget-quantile must be in (0, 1], got {args.budget_quantile}")
    bad = [c for c in args.cells_list if c not in (1, 2, 3)]
    if bad:
        raise SpikeNASError(f"--cells-list takes 1, 2 or 3, got {bad}")
    out_dir = Path(args.output_dir)
    t0 = time.perf_counter()
    study = study_arguments(args)
    tasks = [
        SweepTask(f"{c}cells-{o}-{'budget' if b else 'free'}", scenario_row,
                  {"study": study, "cells": c, "op_set": o, "budgeted": b})
        for c in args.cells_list for o in args.op_sets for b in (False, True)
    ]
    rows = sweep_rows(tasks, args)
    md, csv_path = write_tables(rows, COLUMNS, out_dir)
    pngs = plot(rows, out_dir)
    write_study_results(out_dir, "scenarios", args, rows, start=t0, config={
        "search": search_config(args, algorithm="spikenas").to_dict(),
        "train": train_config(args).to_dict(),
        "budget_rule": f"quantile {args.budget_quantile} of the connected same-cell parameter counts",
    })
    print(md.read_text(), end="")
    print(f"wrote {md}, {csv_path}, {', '.join(map(str, pngs))}, {out_dir / 'results.json'}")
    return 0


def plot(rows: list[dict], out_dir: Path) -> list[Path]:
    """accuracy_vs_memory.png (accuracy against bytes at 8 bits) and search_time.png (per scenario)."""
    plt = pyplot()
    markers = {1: "o", 2: "s", 3: "^"}
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for row in rows:
        colour = "tab:blue" if row["op_set"] == "3O" else "tab:orange"
        face = colour if row["budget"] is not None else "none"
        ax.scatter(row["bytes_8"], 100 * row["accuracy"], marker=markers.get(row["cells"], "o"),
                   edgecolors=colour, facecolors=face, s=60)
        ax.annotate(f"{row['cells']}c {row['op_set']}{' B' if row['budget'] is not None else ''}",
                    (row["bytes_8"], 100 * row["accuracy"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("memory at 8 bits per parameter (bytes)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against memory (filled: with budget; o/s/^ = 1/2/3 cells)")
    fig.tight_layout()
    first = out_dir / "accuracy_vs_memory.png"
    fig.savefig(first, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [r["scenario"] for r in rows]
    ax.bar(range(len(rows)), [r["search_s"] for r in rows],
           color=["tab:blue" if r["op_set"] == "3O" else "tab:orange" for r in rows])
    ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("search time (s)")
    ax.set_title("Search time per scenario (Alg. 1)")
    fig.tight_layout()
    second = out_dir / "search_time.png"
    fig.savefig(second, dpi=100)
    plt.close(fig)
    return [first, second]
