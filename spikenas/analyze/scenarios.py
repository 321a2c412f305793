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
from spikenas.nas import SearchRequest, run_search
from spikenas.nas import macro_for as search_macro
from spikenas.results import save_figure
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


def scenario_budget(config: SearchRequest, quantile: float) -> int:
    """The ``quantile`` of the parameter counts of the connected same-cell networks of ``config``'s space."""
    train_set, _ = datasets(config.data.dataset, config.data.data_dir)
    macro = search_macro(config.macro, config.data.dataset, in_channels=train_set.in_channels,
                         num_classes=train_set.num_classes, native_size=train_set.size)
    counts = enumerate_params(config.macro.op_set, macro)[connected_mask(config.macro.op_set)]
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
    config = config.with_fields(budget=budget)
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
    """accuracy_vs_memory.png and search_time.png.

    accuracy_vs_memory: one panel per cell count; test accuracy (%) against the found network's memory
    at 8 bits per parameter (kB, Eq. 8), a marker per op set and budget, and each budget drawn as a
    vertical dashed line in its op set's colour. One legend below the panels names the markers and
    lines, so no label sits on the data. search_time: horizontal bars, one per scenario, in seconds.
    """
    plt = pyplot()
    colours = {"3O": "tab:blue", "2O": "tab:orange"}
    cells = sorted({r["cells"] for r in rows})
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 4.6), sharey=True, squeeze=False)
    handles: dict[str, object] = {}
    lo = min(100 * r["accuracy"] for r in rows)
    hi = max(100 * r["accuracy"] for r in rows)
    pad = max(0.5, 0.15 * (hi - lo))
    for ax, n in zip(axes[0], cells, strict=True):
        for row in (r for r in rows if r["cells"] == n):
            colour = colours.get(row["op_set"], "tab:gray")
            budgeted = row["budget"] is not None
            # open circles (no budget) drawn larger and on top, so one that sits on a square stays visible
            point = ax.scatter(row["bytes_8"] / 1e3, 100 * row["accuracy"], s=60 if budgeted else 130,
                               zorder=3 if budgeted else 4, marker="s" if budgeted else "o", edgecolors=colour,
                               facecolors=colour if budgeted else "none", linewidths=1.5)
            handles.setdefault(f"{row['op_set']}, {'with budget' if budgeted else 'no budget'}", point)
            if budgeted:
                line = ax.axvline(row["budget"] / 1e3, color=colour, linestyle="--", linewidth=1.2)
                handles.setdefault(f"{row['op_set']} budget (bytes at 8 bits)", line)
        ax.set_title(f"{n} cell{'s' if n > 1 else ''}")
        ax.set_xlabel("memory at 8 bits per parameter (kB)")
        ax.grid(alpha=0.3)
        ax.set_ylim(lo - pad, hi + pad)
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.suptitle("Accuracy against memory of the network each scenario finds")
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    first = out_dir / "accuracy_vs_memory.png"
    save_figure(fig, first, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, [r["search_s"] for r in rows], color=[colours.get(r["op_set"], "tab:gray") for r in rows])
    ax.set_yticks(y, [r["scenario"] for r in rows], fontsize=8)
    ax.set_xlabel("search time (s)")
    ax.set_title("Search time per scenario (Alg. 1)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    second = out_dir / "search_time.png"
    save_figure(fig, second, dpi=110)
    plt.close(fig)
    return [first, second]
