"""Replay of the multi-fidelity stage on SpikeNAS-Bench: logged validation curves stand in for short training.

``python -m spikenas.analyze rerank --bench CSV --curves CURVES`` ranks the records of the CSV
without training (conv_depth, descending, ties in a seeded random order, or any other ranking
function), then runs a successive-halving schedule (:func:`spikenas.nas.rerank.run_schedule`)
whose ``evaluate(record, epochs)`` reads the logged validation accuracy after ``epochs`` epochs. The
pick's test accuracy percentile among the records within budget is measured at nine budgets (the
10 %, ..., 90 % quantiles of the params column).

With ``--folds K`` (default 5) the records are split into K seeded folds. For each fold, every
schedule of a grid (top, rung epochs, eta) that spends at most ``--max-epochs`` epochs is replayed on
the other folds, the one with the best lowest training-fold mean is chosen, and it is measured on
this fold. The same is done for a ladder of smaller epoch caps (percentile against epochs spent).
The fixed schedule (``--top/--epochs/--eta``, default the search's default) is also measured on the
whole CSV, with each budget's pick.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikenas import scoring, spikenas_bench
from spikenas.analyze.fidelity import benchmark_percentile
from spikenas.analyze.report import pyplot, save_with_side_legend
from spikenas.analyze.selection import kfold
from spikenas.argparsing import (
    SIZE_LIMIT,
    Parser,
    integer,
    main_guard,
    non_negative_int,
    output_dir,
    positive_int,
    random_seed,
)
from spikenas.errors import SpikeNASError
from spikenas.nas.ordering import draw_key, ordering_rank
from spikenas.nas.rerank import (
    DEFAULT_EPOCHS,
    DEFAULT_ETA,
    DEFAULT_TOP,
    DEFAULT_WINDOW,
    RerankSchedule,
    parse_epochs,
    run_schedule,
    window_epochs,
)
from spikenas.results import versions, write_json, write_text
from spikenas.scoring import ScoreConfig
from spikenas.scoring.structural import conv_depth

HELP = "replay the multi-fidelity stage on SpikeNAS-Bench's logged validation curves"
QUANTILES = tuple(round(0.1 * i, 1) for i in range(1, 10))
CURVE_COLUMNS = ("arch_id", "epoch", "val_acc")
GRID_TOPS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
GRID_ETAS = (2, 3, 4, 6, 8)
GRID_EPOCHS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100)
GRID_MAX_RUNGS = 3
GRID_WINDOWS = (1, 2, 3, 5)
CAPS = (8, 16, 32, 64, 128)

Ranking = Callable[[spikenas_bench.BenchRecords, int], np.ndarray]


@dataclass(frozen=True)
class Curves:
    """Logged validation accuracy per record and epoch."""

    arch_id: np.ndarray  # int64 [A]
    val_acc: np.ndarray  # float64 [A, E]: accuracy (%) after epoch e + 1; NaN past a record's last logged epoch

    def rows(self, arch_ids: np.ndarray) -> np.ndarray:
        """Row of each arch id in ``val_acc``, int64 ``[n]``.

        :raises SpikeNASError: an arch id without a curve.
        """
        index = {int(a): i for i, a in enumerate(self.arch_id)}
        missing = [int(a) for a in arch_ids if int(a) not in index]
        if missing:
            raise SpikeNASError(f"no validation curve for arch_id {missing[0]} ({len(missing)} records lack one)")
        return np.array([index[int(a)] for a in arch_ids], dtype=np.int64)


def load_curves(path: str | Path) -> Curves:
    """Read a curves CSV (gzipped or not) with at least the columns arch_id, epoch (0-based), val_acc.

    :raises SpikeNASError: missing file or columns, malformed numbers, or a record whose epochs have gaps.
    """
    path = Path(path)
    if not path.is_file():
        raise SpikeNASError(f"curves file {path} not found (columns {', '.join(CURVE_COLUMNS)})")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        missing = [c for c in CURVE_COLUMNS if c not in header]
        if missing:
            raise SpikeNASError(f"{path}: missing columns {missing}; found {header}")
        ia, ie, iv = (header.index(c) for c in CURVE_COLUMNS)
        try:
            data = np.array([(float(r[ia]), float(r[ie]), float(r[iv])) for r in reader], dtype=np.float64)
        except (ValueError, IndexError) as err:
            raise SpikeNASError(f"{path}: malformed row: {err}") from err
    if data.size == 0:
        raise SpikeNASError(f"{path} holds no rows")
    bad = np.argwhere(~np.isfinite(data))
    if bad.size:
        row_number, column = bad[0]
        raise SpikeNASError(f"{path}, line {row_number + 2}: column {CURVE_COLUMNS[column]} holds "
                            f"{data[row_number, column]}; every value must be a finite number")
    arch = data[:, 0].astype(np.int64)
    epoch = data[:, 1].astype(np.int64)
    if epoch.min() < 0:
        raise SpikeNASError(f"{path}: epoch must be >= 0 (0-based), found {epoch.min()}")
    ids, row = np.unique(arch, return_inverse=True)
    val = np.full((len(ids), int(epoch.max()) + 1), np.nan)
    val[row, epoch] = data[:, 2]
    counts = np.bincount(row, minlength=len(ids))
    last = np.zeros(len(ids), dtype=np.int64)
    np.maximum.at(last, row, epoch)
    gaps = np.flatnonzero(counts != last + 1)
    if gaps.size:
        raise SpikeNASError(f"{path}: arch_id {ids[gaps[0]]} has {counts[gaps[0]]} rows for epochs 0..{last[gaps[0]]}")
    return Curves(ids, val)


def conv_depth_ranking(records: spikenas_bench.BenchRecords, seed: int) -> np.ndarray:
    """Training-free ranking: conv_depth descending, ties in a random order seeded by ``seed``.

    :returns: int64 ``[R]``: row indices of ``records``, best first.
    """
    depth = np.array([sum(conv_depth(g) for g in cells) for cells in records.networks()], dtype=np.int64)
    shuffle = np.random.default_rng([seed, 0xDE7]).permutation(len(records))
    return shuffle[np.argsort(-depth[shuffle], kind="stable")]


def search_ranking(
    records: spikenas_bench.BenchRecords, seed: int, *, score: str = "conv_depth", tie_break: Sequence[str] = ()
) -> np.ndarray:
    """Training-free ranking in the search's own order (:func:`spikenas.nas.ordering.ordering_rank`):
    ``score``, then each structural tie-break score, then the fewest parameters, then the search's draw seeded
    by ``seed`` (:func:`spikenas.nas.ordering.draw_key` of the cells, as a search with that seed orders them).

    :raises SpikeNASError: a score that runs the network (the replay has cells only).
    """
    macro = records.macro()
    cands = [scoring.Candidate(cells, macro) for cells in records.networks()]
    columns = []
    for name in (score, *tie_break):
        if scoring.needs_network(name):
            raise SpikeNASError(f"ranking score {name!r} runs the network; the replay takes structural scores only")
        fn = scoring.get_score(name).fn
        columns.append(np.array([fn(c) for c in cands], dtype=np.float64))
    rank = ordering_rank(columns[0], columns[1:], records.params)
    draw = np.array([draw_key(c.cells, seed) for c in cands], dtype=np.uint64)
    return np.lexsort((draw, -rank))


def structural_tie_break() -> tuple[str, ...]:
    """The search's default tie-break up to its first score that runs the network."""
    out = []
    for name in ScoreConfig().tie_break:
        if scoring.needs_network(name):
            break
        out.append(name)
    return tuple(out)


RANKINGS: dict[str, Ranking] = {
    "conv_depth": conv_depth_ranking,
    "search": lambda records, seed: search_ranking(records, seed, tie_break=structural_tie_break()),
}


def budgets(params: np.ndarray) -> np.ndarray:
    """The nine budgets: the 10 %, ..., 90 % quantiles of ``params`` (float64 ``[9]``)."""
    return np.quantile(np.asarray(params, dtype=np.float64), QUANTILES)


@dataclass
class Problem:
    """Replays on one set of records: every budget and tie-order seed, the ranked candidates within budget.

    ``cand[b, s]`` holds the curve rows of the first ``depth`` candidates within budget ``b`` in the
    ranking of seed ``s``; ``test`` their test accuracies; ``population[b]`` the test accuracies of
    every record within budget ``b``.
    """

    budgets: np.ndarray  # float64 [NB]
    curves: np.ndarray  # float64 [NB, NS, D, E]: validation curves of the ranked candidates
    test: np.ndarray  # float64 [NB, NS, D]: their test accuracies
    arch: np.ndarray  # int64 [NB, NS, D]: their arch ids
    available: np.ndarray  # int64 [NB]: records within each budget
    population: list[np.ndarray]  # per budget: float64 test accuracies of the records within it
    ceiling: np.ndarray  # float64 [NB]: percentile of the pick by validation accuracy at the last logged epoch

    def __post_init__(self) -> None:
        # cum[..., e]: sum of the accuracies after epochs 1..e (cum[..., 0] = 0), for window means
        self.cum = np.concatenate([np.zeros(self.curves.shape[:-1] + (1,)), np.cumsum(self.curves, axis=-1)], axis=-1)

    @property
    def depth(self) -> int:
        return self.curves.shape[2]

    def percentile(self, b: int, acc: np.ndarray) -> np.ndarray:
        """Percentile within budget ``b`` of each test accuracy in ``acc`` (float64, same shape)."""
        return benchmark_percentile(np.asarray(acc, dtype=np.float64), self.population[b])


def make_problem(
    records: spikenas_bench.BenchRecords,
    curves: Curves,
    *,
    seeds: Sequence[int],
    depth: int = max(GRID_TOPS),
    ranking: Ranking = conv_depth_ranking,
    budget_values: np.ndarray | None = None,
) -> Problem:
    """Precompute the ranked candidates of ``records`` at every budget for the tie-order ``seeds``.

    :param budget_values: budgets in parameters; None: the nine quantiles of ``records.params``.
    """
    bvals = budgets(records.params) if budget_values is None else np.asarray(budget_values, dtype=np.float64)
    rows = curves.rows(records.arch_id)
    val = curves.val_acc[rows]  # [R, E]
    available = np.array([int((records.params <= b).sum()) for b in bvals], dtype=np.int64)
    if available.min() < 1:
        raise SpikeNASError(f"a budget of {bvals[available.argmin()]:,.0f} parameters leaves no record")
    depth = int(min(depth, available.min()))
    nb, ns = len(bvals), len(seeds)
    out_curves = np.empty((nb, ns, depth, val.shape[1]))
    test = np.empty((nb, ns, depth))
    arch = np.empty((nb, ns, depth), dtype=np.int64)
    for s, seed in enumerate(seeds):
        order = ranking(records, seed)
        for b, budget in enumerate(bvals):
            ranked = order[records.params[order] <= budget][:depth]
            out_curves[b, s] = val[ranked]
            test[b, s] = records.test_acc[ranked]
            arch[b, s] = records.arch_id[ranked]
    population = [records.test_acc[records.params <= b] for b in bvals]
    final = np.array([val[i, np.flatnonzero(~np.isnan(val[i]))[-1]] if np.isfinite(val[i]).any() else -np.inf
                      for i in range(len(records))])
    ceiling = np.empty(nb)
    for b, budget in enumerate(bvals):
        fits = np.flatnonzero(records.params <= budget)
        best = fits[np.argmax(final[fits])]
        ceiling[b] = benchmark_percentile(records.test_acc[best], population[b])
    return Problem(bvals, out_curves, test, arch, available, population, ceiling)


def replay_fast(problem: Problem, schedule: RerankSchedule) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`run_schedule` over every budget and seed of ``problem`` (same choices, tested).

    :returns: (percentile float64 ``[NB, NS]``, epochs spent int64 ``[NB, NS]``).
    :raises SpikeNASError: a schedule deeper than the problem's candidates, or a rung past the logged epochs.
    """
    nb, ns = problem.curves.shape[:2]
    chosen = replay_choices(problem, schedule)
    test = np.take_along_axis(problem.test, chosen[..., None], axis=2)[..., 0]
    pct = np.stack([problem.percentile(b, test[b]) for b in range(nb)])
    return pct, np.full((nb, ns), schedule.epochs_needed(problem.depth), dtype=np.int64)


def replay_choices(problem: Problem, schedule: RerankSchedule) -> np.ndarray:
    """The candidate :func:`run_schedule` chooses at every budget and seed of ``problem``: int64 ``[NB, NS]``
    indices into the ranked candidates (0: the training-free pick).

    :raises SpikeNASError: a schedule deeper than the problem's candidates, or a rung past the logged epochs.
    """
    nb, ns, depth, n_epochs = problem.curves.shape
    sizes = schedule.rung_sizes(depth)
    if schedule.top > depth:
        raise SpikeNASError(f"schedule top {schedule.top} exceeds the {depth} candidates precomputed")
    if schedule.epochs[len(sizes) - 1] > n_epochs:
        raise SpikeNASError(f"schedule trains to epoch {schedule.epochs[len(sizes) - 1]}, curves end at {n_epochs}")
    cum = problem.cum.reshape(nb * ns, depth, n_epochs + 1)
    pool = np.broadcast_to(np.arange(sizes[0]), (nb * ns, sizes[0]))
    rows = np.arange(nb * ns)[:, None]
    guarded = schedule.margin is not None
    for n, epochs in zip(sizes, schedule.epochs, strict=False):
        pool = pool[:, :n].copy()
        if guarded:  # the training-free pick (candidate 0) takes the last place kept when the ranking cut it
            pool[~(pool == 0).any(axis=1), n - 1] = 0
        span = window_epochs(epochs, schedule.window)
        acc = (cum[rows, pool, span[-1]] - cum[rows, pool, span[0] - 1]) / len(span)
        if np.isnan(acc).any():
            raise SpikeNASError(f"a candidate has no logged validation accuracy after {epochs} epochs")
        order = np.argsort(-acc, axis=1, kind="stable")
        pool = np.take_along_axis(pool, order, axis=1)
        last = epochs
    chosen = pool[:, 0]
    if guarded:  # replaced only by a lead in final accuracy over the training-free pick above the margin
        final = problem.curves.reshape(nb * ns, depth, n_epochs)[rows, pool, last - 1]
        lead = final[:, 0] - final[pool == 0]
        chosen = np.where((chosen != 0) & (lead <= schedule.margin), 0, chosen)
    return chosen.reshape(nb, ns)


def replay(problem: Problem, schedule: RerankSchedule, *, seed_index: int = 0) -> list[dict]:
    """Per budget, the schedule run through :func:`run_schedule`: pick, percentile, epochs and rungs."""
    out = []
    for b in range(len(problem.budgets)):
        curves = problem.curves[b, seed_index]
        arch = problem.arch[b, seed_index]

        def evaluate(i: int, epochs: int, curves: np.ndarray = curves) -> float:
            value = curves[i, epochs - 1]
            if math.isnan(value):
                raise SpikeNASError(f"no logged validation accuracy after {epochs} epochs")
            return float(value)

        outcome = run_schedule(list(range(problem.depth)), schedule, evaluate)
        pick = outcome.chosen
        out.append({
            "quantile": QUANTILES[b] if len(problem.budgets) == len(QUANTILES) else None,
            "budget": float(problem.budgets[b]),
            "records_in_budget": int(problem.available[b]),
            "arch_id": int(arch[pick]),
            "test_acc": float(problem.test[b, seed_index, pick]),
            "percentile": float(problem.percentile(b, problem.test[b, seed_index, pick : pick + 1])[0]),
            "training_free_arch_id": int(arch[0]),
            "training_free_percentile": float(problem.percentile(b, problem.test[b, seed_index, :1])[0]),
            "ceiling_percentile": float(problem.ceiling[b]),
            "epochs_spent": outcome.epochs_spent,
            "rungs": [
                {"epochs": r["epochs"], "arch_ids": [int(arch[i]) for i in r["candidates"]],
                 "statistic": r["statistic"], "val_acc": r["accuracies"]}
                for r in outcome.rungs
            ],
        })
    return out


def schedule_grid(max_epochs: int, *, max_top: int = max(GRID_TOPS), max_epoch: int = 100) -> list[RerankSchedule]:
    """Every grid schedule (tops x rung epochs x eta x window, at most :data:`GRID_MAX_RUNGS` rungs) within
    ``max_epochs`` epochs in total.

    Schedules that differ only in an eta that changes no rung are listed once.
    """
    seen, out = set(), []
    epochs_values = [e for e in GRID_EPOCHS if e <= max_epoch]
    for top in (t for t in GRID_TOPS if t <= max_top):
        for rungs in range(1, GRID_MAX_RUNGS + 1):
            for epochs in itertools.combinations(epochs_values, rungs):
                for eta in GRID_ETAS if rungs > 1 else (DEFAULT_ETA,):
                    for window in GRID_WINDOWS:
                        s = RerankSchedule(top=top, epochs=epochs, eta=eta, window=window)
                        sizes = s.rung_sizes()
                        key = (top, epochs[: len(sizes)], tuple(sizes), window)
                        if len(sizes) < rungs or key in seen or s.epochs_needed() > max_epochs:
                            continue
                        seen.add(key)
                        out.append(s)
    return out


def _summary(pct: np.ndarray) -> dict:
    """Mean and lowest over budgets of ``pct`` float64 ``[NB, NS]``: seed 0, and mean / spread over seeds."""
    per_seed = pct.mean(axis=0)
    return {
        "mean": float(per_seed[0]),
        "lowest": float(pct[:, 0].min()),
        "per_budget": [float(v) for v in pct[:, 0]],
        "mean_over_seeds": float(per_seed.mean()),
        "seed_min": float(per_seed.min()),
        "seed_max": float(per_seed.max()),
    }


def _choose(table: np.ndarray, needed: np.ndarray, allowed: np.ndarray) -> int:
    """Index into ``allowed`` of the schedule with the best lowest-fold mean, then the best mean, then the
    fewest epochs; ``table`` is float64 ``[schedules, folds]`` of mean percentiles."""
    rows = table[allowed]
    return int(np.lexsort((needed[allowed], -rows.mean(axis=1), -rows.min(axis=1)))[0])


def cross_validate(
    problems: list[Problem], grid: list[RerankSchedule], caps: Sequence[int]
) -> tuple[list[dict], dict[int, RerankSchedule]]:
    """For each cap and held-out fold, choose a schedule on the other folds and measure it on this one.

    The choice maximises the lowest training-fold mean percentile (mean over budgets and tie seeds),
    then the mean over training folds, then spends fewer epochs.

    :returns: one row per cap and fold (schedule, training figures, held-out figures), and per cap the
        schedule the same rule chooses on every fold together (the one to ship).
    """
    k = len(problems)
    table = np.empty((len(grid), k))  # mean over budgets and seeds, per schedule and fold
    for j, schedule in enumerate(grid):
        for f, problem in enumerate(problems):
            table[j, f] = replay_fast(problem, schedule)[0].mean()
    needed = np.array([s.epochs_needed() for s in grid])
    rows, recommended = [], {}
    for cap in caps:
        allowed = np.flatnonzero(needed <= cap)
        if not len(allowed):  # every grid schedule spends more than this cap (folds too small for two candidates)
            continue
        recommended[cap] = grid[allowed[_choose(table, needed, allowed)]]
        for f in range(k):
            train = np.delete(table, f, axis=1)
            j = allowed[_choose(train, needed, allowed)]
            best = grid[j]
            pct, spent = replay_fast(problems[f], best)
            rows.append({
                "cap": cap, "fold": f, "schedule": best.describe(), "schedule_text": str(best),
                "train_lowest_fold_mean": float(train[j].min()), "train_mean": float(train[j].mean()),
                "epochs_spent": int(spent.max()), **_summary(pct),
            })
    return rows, recommended


def plot_percentile_vs_epochs(
    rows: list[dict], baseline: list[dict], ceiling: list[float], path: Path, *, ranking: str, title: str
) -> None:
    """Held-out pick percentile against epochs spent: one line per fold (its training-free pick at 0 epochs,
    then the schedule chosen on the other folds under each cap), the ceiling and the target marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 4.4), dpi=120)
    for f in sorted({r["fold"] for r in rows}):
        pts = sorted((r["epochs_spent"], r["mean"]) for r in rows if r["fold"] == f)
        ax.plot([0.5] + [p[0] for p in pts], [baseline[f]["mean"]] + [p[1] for p in pts], marker="o", ms=3, lw=1,
                label=f"held-out fold {f}")
    ax.axhline(float(np.mean(ceiling)), color="0.4", ls="--", lw=1, label="ceiling: pick by validation\naccuracy "
               "after full training")
    ax.axhline(95, color="C3", ls=":", lw=1, label="target: 95")
    ax.axvline(128, color="0.7", ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks([0.5, 2, 4, 8, 16, 32, 64, 128])
    ax.set_xticklabels(["0\n(training-free)", "2", "4", "8", "16", "32", "64", "128"])
    ax.set_xlabel("training epochs spent per search (total over candidates, log scale)")
    ax.set_ylabel("pick's test-accuracy percentile\nwithin budget (%, mean of 9 budgets)")
    ax.set_title(f"Successive halving replayed on the logged curves of {title} (ranking: {ranking})", fontsize=10)
    save_with_side_legend(fig, ax, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench", required=True, help="SpikeNAS-Bench CSV (dev layout)")
    parser.add_argument("--curves", required=True, help="per-epoch curves CSV(.gz): arch_id, epoch, val_acc, ...")
    parser.add_argument("--folds", type=non_negative_int, default=5,
                        help="k of the seeded k-fold split (default 5; 0: none)")
    parser.add_argument("--seed", type=random_seed, default=0, help="seed of the folds and of the first tie order (0)")
    parser.add_argument("--tie-seeds", type=positive_int, default=5,
                        help="tie orders of the ranking replayed (seeds seed..seed+n-1; default 5)")
    parser.add_argument("--max-epochs", type=positive_int, default=128,
                        help="most epochs a searched schedule spends (128)")
    parser.add_argument(
        "--ranking", choices=sorted(RANKINGS), default="search",
        help="training-free ranking: the search's ordering (default: conv_depth, its structural tie-breaks, "
        "fewest parameters, the draw seeded by each tie seed), or conv_depth with ties in a seeded random order",
    )
    parser.add_argument("--top", type=positive_int, default=DEFAULT_TOP,
                        help=f"whole-CSV schedule: top (default {DEFAULT_TOP})")
    parser.add_argument("--epochs", default=",".join(map(str, DEFAULT_EPOCHS)),
                        help=f"whole-CSV schedule: rung epochs (default {','.join(map(str, DEFAULT_EPOCHS))})")
    parser.add_argument("--eta", type=integer(2, SIZE_LIMIT), default=DEFAULT_ETA,
                        help=f"whole-CSV schedule: eta (default {DEFAULT_ETA})")
    parser.add_argument("--window", type=positive_int, default=DEFAULT_WINDOW,
                        help=f"whole-CSV schedule: epochs averaged per rung (default {DEFAULT_WINDOW})")
    parser.add_argument("--output-dir", type=output_dir, default="docs/results/multi_fidelity",
                        help="where rerank.md, rerank.json and the plot go (default docs/results/multi_fidelity)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.tie_seeds < 1:
        raise SpikeNASError(f"--tie-seeds must be >= 1, got {args.tie_seeds}")
    if args.max_epochs < 1:
        raise SpikeNASError(f"--max-epochs must be >= 1, got {args.max_epochs}")
    fixed = RerankSchedule(top=args.top, epochs=parse_epochs(args.epochs), eta=args.eta, window=args.window)
    bench = spikenas_bench.load_bench(args.bench)
    curves = load_curves(args.curves)
    t_load = time.perf_counter() - start
    ranking = RANKINGS[args.ranking]
    seeds = [args.seed + i for i in range(args.tie_seeds)]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    max_epoch = int(curves.val_acc.shape[1] - np.isnan(curves.val_acc).any(axis=0).sum())

    t0 = time.perf_counter()
    whole = make_problem(bench, curves, seeds=seeds, ranking=ranking, depth=max(fixed.top, max(GRID_TOPS)))
    whole_pct, whole_spent = replay_fast(whole, fixed)
    whole_rows = replay(whole, fixed)
    t_whole = time.perf_counter() - t0

    cv_rows, baseline, recommended, fold_ceiling = [], [], {}, []
    t0 = time.perf_counter()
    if args.folds:
        folds = kfold(len(bench), args.folds, args.seed)  # the selection study's folds
        problems = [make_problem(bench.subset(rows), curves, seeds=seeds, ranking=ranking) for rows in folds]
        depth = min(p.depth for p in problems)
        caps = sorted({c for c in CAPS if c < args.max_epochs} | {args.max_epochs})
        grid = schedule_grid(args.max_epochs, max_top=depth, max_epoch=max_epoch)
        cv_rows, recommended = cross_validate(problems, grid, caps)
        for f, p in enumerate(problems):
            baseline.append({"fold": f, **_summary(np.stack([p.percentile(b, p.test[b, :, 0])
                                                             for b in range(len(p.budgets))]))})
            fold_ceiling.append(float(p.ceiling.mean()))
    t_cv = time.perf_counter() - t0

    command = "python -m spikenas.analyze rerank " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("study", "no_plot")
    ) + (" --no-plot" if args.no_plot else "")
    lines = [f"# Multi-fidelity replay on {Path(args.bench).name}", "", f"Command: `{command}`", ""]
    if cv_rows:
        lines += [f"{args.folds}-fold split (seed {args.seed}); {len(grid)} grid schedules; ranking {args.ranking}; "
                  f"tie orders {seeds}.", "",
                  "| cap | fold | schedule (n@epoch) | eta | window | epochs spent | train lowest-fold mean | "
                  "held-out mean | held-out lowest | mean over tie seeds (min-max) |", "|" + "---|" * 10]
        for r in cv_rows:
            lines.append(
                f"| {r['cap']} | {r['fold']} | {r['schedule_text']} | {r['schedule']['eta']} | "
                f"{r['schedule']['window']} | {r['epochs_spent']} | "
                f"{r['train_lowest_fold_mean']:.1f} | {r['mean']:.1f} | {r['lowest']:.1f} | "
                f"{r['mean_over_seeds']:.1f} ({r['seed_min']:.1f}-{r['seed_max']:.1f}) |"
            )
        lines += ["", "Training-free pick (0 epochs) and ceiling (pick by validation accuracy after full training):",
                  "", "| fold | training-free mean | lowest | ceiling mean |", "|---|---|---|---|"]
        for b, c in zip(baseline, fold_ceiling, strict=True):
            lines.append(f"| {b['fold']} | {b['mean']:.1f} | {b['lowest']:.1f} | {c:.1f} |")
        lines += ["", "Schedule the same rule chooses on all folds together, per cap:", ""]
        lines += [f"- {cap} epochs: {s} (eta {s.eta}, window {s.window}, {s.epochs_needed()} epochs)"
                  for cap, s in recommended.items()]
    lines += ["", f"Whole CSV, schedule {fixed} (eta {fixed.eta}, window {fixed.window}, {int(whole_spent.max())} "
              f"epochs): mean "
              f"{whole_pct[:, 0].mean():.1f}, lowest {whole_pct[:, 0].min():.1f}; over tie seeds "
              f"{whole_pct.mean(axis=0).min():.1f}-{whole_pct.mean(axis=0).max():.1f}.", "",
              "| quantile | budget | in budget | pick arch | test acc | percentile | training-free pct | ceiling pct |",
              "|" + "---|" * 8]
    for r in whole_rows:
        lines.append(f"| {r['quantile']} | {r['budget']:,.0f} | {r['records_in_budget']} | {r['arch_id']} | "
                     f"{r['test_acc']:.2f} | {r['percentile']:.1f} | {r['training_free_percentile']:.1f} | "
                     f"{r['ceiling_percentile']:.1f} |")
    md = "\n".join(lines) + "\n"
    write_text(out / "rerank.md", md)
    plot = None
    if cv_rows and not args.no_plot:
        plot = out / "rerank_percentile_vs_epochs.png"
        plot_percentile_vs_epochs(cv_rows, baseline, fold_ceiling, plot, ranking=args.ranking,
                                  title=Path(args.bench).name)
    write_json(out / "rerank.json", {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "study"},
        "seed": args.seed,
        "tie_seeds": seeds,
        "versions": versions(),
        "timings": {"load_s": t_load, "whole_s": t_whole, "cross_validation_s": t_cv,
                    "total_s": time.perf_counter() - start},
        "grid_size": len(grid) if cv_rows else 0,
        "cross_validation": cv_rows,
        "training_free": baseline,
        "ceiling": fold_ceiling,
        "recommended": {str(cap): s.describe() for cap, s in recommended.items()},
        "whole": {"schedule": fixed.describe(), "mean": float(whole_pct[:, 0].mean()),
                  "lowest": float(whole_pct[:, 0].min()), "budgets": whole_rows},
        "plot": None if plot is None else plot.name,
    })
    print(md)
    print(f"written: {out / 'rerank.md'}, rerank.json{'' if plot is None else ', ' + plot.name}; "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (the study is normally run through ``python -m spikenas.analyze``)."""
    parser = Parser(prog="rerank", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))
