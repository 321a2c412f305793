"""Operation impact (SpikeNAS section 3.1): drop each op of 5O (or ``--ops``) in turn, search, train briefly, compare.

For every op ``o`` of the 5O set a 4-op set ``5O-no-<o>`` is registered through the public
:func:`~spikenas.ops.register_op_set`; each set (and the full 5O) is searched with the same data,
proxy network and seed, and the network found is trained for a few epochs. The table holds the
score and accuracy of each, and their difference to the full set. Each op set is a sweep task
(``--executor local|ray``): one result file per op set under ``<output-dir>/runs``; ``--resume``
keeps the finished ones.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
from spikenas.nas import ALGORITHMS, run_search
from spikenas.ops import get_op, get_op_set, list_op_sets, register_op_set
from spikenas.results import save_figure
from spikenas.sweep import SweepTask

HELP = "op impact: remove each op of 5O in turn, search, train briefly, compare score and accuracy"
BASE_SET = "5O"
COLUMNS = (
    "op_set", "removed", "cell", "params", "score", "accuracy", "d_score", "d_accuracy", "search_s", "train_s",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_executor_arguments(parser)
    parser.add_argument("--cells", type=int, default=2, choices=(1, 2, 3), help="cells in the network (default 2)")
    parser.add_argument("--ops", default=BASE_SET,
                        help=f"the op set whose ops are removed in turn (default {BASE_SET}; e.g. speck)")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="random",
                        help="random (default: fast on 4^6-5^6 cells) or spikenas (Alg. 1)")
    parser.add_argument("--samples", type=positive_int, default=60,
                        help="random search: cells sampled per op set (default 60)")


def algorithm_fields(args: argparse.Namespace) -> dict:
    """The study's algorithm as flat search fields: ``--samples`` is random search's only."""
    return {"algorithm": args.algorithm, **({"samples": args.samples} if args.algorithm == "random" else {})}


def reduced_sets(base: str = BASE_SET) -> list[tuple[str, str | None]]:
    """``(op_set, removed_op)`` pairs: the full set, then one set per removed op (registered here)."""
    ops = get_op_set(base)
    out: list[tuple[str, str | None]] = [(base, None)]
    for op in ops:
        name = f"{base}-no-{get_op(op).name}"
        if name not in list_op_sets():
            register_op_set(name, tuple(o for o in ops if o != op))
        out.append((name, op))
    return out


def op_set_row(*, study: dict, op_set: str, removed: str | None) -> dict:
    """One row of the table: search ``op_set``, then train what was found briefly.

    A module-level sweep task (:mod:`spikenas.sweep`). The reduced sets are registered here too,
    because a Ray worker process has not run the driver's registration.
    :param study: the study's arguments (``vars(args)`` without output and executor options).
    """
    args = argparse.Namespace(**study)
    setup_threads(args)
    reduced_sets(args.ops)
    config = search_config(args, op_set=op_set, num_cells=args.cells, **algorithm_fields(args))
    result, payload = run_search(config, progress=False)
    best = result.best
    t1 = time.perf_counter()
    trained = train_cells(best.cells, payload["macro"], args)
    return {
        "op_set": op_set,
        "removed": removed or "(none)",
        "cell": best.cells[0].to_nb201(),
        "params": best.params,
        "score": best.score,
        "accuracy": trained.test_accuracy,
        "search_s": result.seconds,
        "train_s": time.perf_counter() - t1,
    }


def run(args: argparse.Namespace) -> int:
    setup_threads(args)
    if args.samples < 1:
        raise SpikeNASError(f"--samples must be >= 1, got {args.samples}")
    get_op_set(args.ops)  # an unknown op set: one line naming the registered ones
    out_dir = Path(args.output_dir)
    t0 = time.perf_counter()
    study = study_arguments(args)
    tasks = [SweepTask(op_set, op_set_row, {"study": study, "op_set": op_set, "removed": removed})
             for op_set, removed in reduced_sets(args.ops)]
    rows = sweep_rows(tasks, args)
    full = rows[0]
    for row in rows:
        row["d_score"] = row["score"] - full["score"]
        row["d_accuracy"] = row["accuracy"] - full["accuracy"]
    md, csv_path = write_tables(rows, COLUMNS, out_dir)
    search = search_config(args, num_cells=args.cells, **algorithm_fields(args))
    png = plot(rows, out_dir / "ops.png", score_name=search.score.name, base=args.ops)
    write_study_results(out_dir, "ops", args, rows, start=t0, config={
        "search": search.to_dict(),
        "train": train_config(args).to_dict(),
    })
    print(md.read_text(), end="")
    print(f"wrote {md}, {csv_path}, {png}, {out_dir / 'results.json'}")
    return 0


def plot(rows: list[dict], path: Path, *, score_name: str = "score", base: str = BASE_SET) -> Path:
    """Two dot plots, one row per op set (the full set on top): the best score the search found and the
    trained test accuracy (%), each dot labelled with its value and the full set's value drawn as a
    dashed line (dots, not bars, because the axes do not start at zero)."""
    plt = pyplot()
    labels = [f"{base} (all ops)" if r["removed"] == "(none)" else f"without {r['removed']}" for r in rows]
    y = list(range(len(rows)))[::-1]
    colours = ["tab:gray"] + ["tab:blue"] * (len(rows) - 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.6), sharey=True)
    panels = (
        (axes[0], [r["score"] for r in rows], f"best score ({score_name})", "{:.3g}"),
        (axes[1], [100 * r["accuracy"] for r in rows], "test accuracy (%)", "{:.2f}"),
    )
    for ax, values, xlabel, fmt in panels:
        ax.axvline(values[0], color="tab:gray", linestyle="--", linewidth=1)
        ax.scatter(values, y, c=colours, s=60, zorder=3)
        lo, hi = min(values), max(values)
        span = hi - lo if hi > lo else max(0.1 * abs(hi), 1.0)  # equal values: a readable window around them
        ax.set_xlim(lo - 0.15 * span, hi + 0.35 * span)
        for yi, v in zip(y, values, strict=True):
            ax.annotate(fmt.format(v), (v, yi), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_yticks(y, labels, fontsize=9)
    axes[0].set_ylim(-0.6, len(rows) - 0.4)
    fig.suptitle(f"Impact of removing one op from {base} (dashed: the full set)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
