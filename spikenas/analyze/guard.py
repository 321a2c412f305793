"""The rerank guard, measured: is the multi-fidelity stage's pick ever worse than the training-free pick by more
than the seed noise?

``python -m spikenas.analyze guard --bench CSV --curves CURVES`` replays the stage
(:func:`spikenas.analyze.rerank.replay_choices`, the search's :func:`spikenas.nas.rerank.run_schedule`) at every
budget (the nine quantiles of ``params``) and every tie seed on the whole table, for each schedule and each guard
margin, and compares the test accuracy of the stage's pick with that of the training-free pick it started from.

The seed noise comes from networks trained twice:

* ``--noise-floor noise_floor.csv`` (a ground truth of :mod:`spikenas.analyze.ground_truth`): the same network
  with two seeds; its validation curves are read from ``noise_floor_curves.csv.gz`` beside it;
* otherwise, pairs of records that compute the same function up to their initialisation: their cells hold the
  same op on every live edge (an edge on no input-to-output path computes nothing). SpikeNAS-Bench trained
  each record once, so such records are the same network trained with two initialisations.

For each pair, |difference of test accuracy| and |difference of the validation accuracy after the schedule's last
epoch|, what the guard compares. The margins replayed: none (no guard), 0, the search's default ``auto``
(:func:`spikenas.nas.seed_noise.statistic_noise` with a window of 1, measured on SpikeNAS-Bench), and the median
and 90th percentile of that accuracy's noise measured here. The
guard holds when no pick, at any budget and tie seed, is worse than the training-free pick by more than the 90th
percentile of the test-accuracy noise. Writes ``guard.md``, ``guard.json`` and ``guard.png``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from spikenas import spikenas_bench
from spikenas.analyze.report import pyplot, save_with_side_legend
from spikenas.analyze.rerank import RANKINGS, Curves, load_curves, make_problem, replay_choices
from spikenas.argparsing import output_dir, positive_int, random_seed
from spikenas.errors import SpikeNASError
from spikenas.nas.rerank import (
    DEFAULT_EPOCHS,
    DEFAULT_ETA,
    DEFAULT_TOP,
    DEFAULT_WINDOW,
    RECOMMENDED,
    RerankSchedule,
    parse_epochs,
    window_epochs,
)
from spikenas.nas.seed_noise import statistic_noise
from spikenas.results import versions, write_json, write_text

HELP = "the rerank guard: the stage's pick against the training-free pick at every budget and tie seed"
DEFAULT_SCHEDULE = RerankSchedule(top=DEFAULT_TOP, epochs=DEFAULT_EPOCHS, eta=DEFAULT_ETA, window=DEFAULT_WINDOW)


@dataclass(frozen=True)
class SeedNoise:
    """Pairs of the same network trained twice: their test accuracies and validation curves."""

    source: str  # where the pairs come from
    test: np.ndarray  # float64 [P, 2]: test accuracy (%) of each run
    curves: np.ndarray  # float64 [P, 2, E]: validation accuracy (%) after each epoch; NaN past a run's last

    def test_noise(self) -> np.ndarray:
        """float64 ``[P]``: |difference of test accuracy| per pair."""
        return np.abs(self.test[:, 0] - self.test[:, 1])

    def statistic_noise(self, schedule: RerankSchedule) -> np.ndarray:
        """float64 ``[P]``: |difference of the schedule's last-rung statistic| per pair (NaN-free pairs only); with
        a window of 1, of the validation accuracy after the last epoch, what the guard compares."""
        span = window_epochs(schedule.last_epoch, schedule.window)
        stat = self.curves[:, :, span[0] - 1 : span[-1]].mean(axis=2)
        diff = np.abs(stat[:, 0] - stat[:, 1])
        return diff[np.isfinite(diff)]


def equivalent_pairs(records: spikenas_bench.BenchRecords) -> np.ndarray:
    """int64 ``[P, 2]`` row pairs of connected records whose cells hold the same op on every live edge."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for row, cells in enumerate(records.networks()):
        if all(g.is_connected() for g in cells):
            key = tuple(op if live else None for g in cells for op, live in zip(g.ops, g.live_edges(), strict=True))
            groups[key].append(row)
    pairs = [(a, b) for rows in groups.values() for i, a in enumerate(rows) for b in rows[i + 1 :]]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def noise_from_equivalents(records: spikenas_bench.BenchRecords, curves: Curves) -> SeedNoise:
    """Seed noise from :func:`equivalent_pairs` of ``records``.

    :raises SpikeNASError: when no two records compute the same function.
    """
    pairs = equivalent_pairs(records)
    if not len(pairs):
        raise SpikeNASError("no two records compute the same function; give the seed noise with --noise-floor")
    val = curves.val_acc[curves.rows(records.arch_id)]
    return SeedNoise(f"{len(pairs)} pairs of records with equal live ops", records.test_acc[pairs], val[pairs])


def noise_from_floor(path: str | Path) -> SeedNoise:
    """Seed noise from a ground truth's ``noise_floor.csv`` and the ``noise_floor_curves.csv.gz`` beside it.

    :raises SpikeNASError: a missing file or column, or a pair without both curves.
    """
    path = Path(path)
    curves_path = path.with_name("noise_floor_curves.csv.gz")
    for p in (path, curves_path):
        if not p.is_file():
            raise SpikeNASError(f"noise floor file {p} not found (python -m spikenas.analyze ground_truth writes it)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"set", "arch_id", "seed0_test_acc", "seed1_test_acc"}
    if not rows or not need <= set(rows[0]):
        raise SpikeNASError(f"{path}: needs columns {sorted(need)} and at least one row")
    runs: dict[tuple[str, int, int], dict[int, float]] = defaultdict(dict)
    with gzip.open(curves_path, "rt", newline="") as f:
        for r in csv.DictReader(f):
            runs[(r["set"], int(r["arch_id"]), int(r["seed"]))][int(r["epoch"])] = float(r["val_acc"])
    epochs = 1 + max((max(c) for c in runs.values()), default=0)
    test = np.array([(float(r["seed0_test_acc"]), float(r["seed1_test_acc"])) for r in rows], dtype=np.float64)
    val = np.full((len(rows), 2, epochs), np.nan)
    for i, r in enumerate(rows):
        for s in (0, 1):
            run = runs.get((r["set"], int(r["arch_id"]), s))
            if not run:
                raise SpikeNASError(f"{curves_path}: no curve of seed {s} for {r['set']} arch_id {r['arch_id']}")
            for e, v in run.items():
                val[i, s, e] = v
    return SeedNoise(f"{len(rows)} networks trained with two seeds ({path.name})", test, val)


def parse_schedule(text: str) -> RerankSchedule:
    """``TOP:E1,E2,...[:ETA[:WINDOW]]`` -> a schedule, e.g. ``4:1,3:2:2``.

    :raises SpikeNASError: a malformed text.
    """
    parts = text.split(":")
    if not 2 <= len(parts) <= 4:
        raise SpikeNASError(f"--schedule {text!r}: write TOP:E1,E2,...[:ETA[:WINDOW]], e.g. 4:1,3:2:2")
    try:
        top, eta, window = int(parts[0]), *(int(p) for p in (parts[2:] + [str(DEFAULT_ETA), str(DEFAULT_WINDOW)])[:2])
    except ValueError:
        raise SpikeNASError(f"--schedule {text!r}: TOP, ETA and WINDOW must be integers") from None
    return RerankSchedule(top=top, epochs=parse_epochs(parts[1]), eta=eta, window=window)


def guard_rows(
    records: spikenas_bench.BenchRecords, curves: Curves, noise: SeedNoise, schedules: list[RerankSchedule], *,
    seeds: list[int], ranking: str,
) -> list[dict]:
    """One row per schedule and margin: the stage's pick against the training-free pick over every budget and
    tie seed (differences of test accuracy, points)."""
    depth = max(s.top for s in schedules)
    problem = make_problem(records, curves, seeds=seeds, ranking=RANKINGS[ranking], depth=depth)
    test_p90 = float(np.percentile(noise.test_noise(), 90))
    rows = []
    for schedule in schedules:
        stat = noise.statistic_noise(replace(schedule, window=1))  # the guard compares the final accuracies
        margins = {"none": None, "0": 0.0, "auto": statistic_noise(schedule.last_epoch, 1),
                   "noise median": float(np.median(stat)), "noise p90": float(np.percentile(stat, 90))}
        for label, margin in margins.items():
            chosen = replay_choices(problem, replace(schedule, margin=margin))
            pick = np.take_along_axis(problem.test, chosen[..., None], axis=2)[..., 0]
            diff = pick - problem.test[:, :, 0]  # [NB, NS]
            rows.append({
                "schedule": str(schedule), "window": schedule.window, "margin_label": label, "margin": margin,
                "cases": int(diff.size), "changed": int((chosen != 0).sum()),
                "mean_diff": float(diff.mean()), "min_diff": float(diff.min()),
                "worse_than_noise": int((diff < -test_p90).sum()), "holds": bool(diff.min() >= -test_p90),
                "diff": diff.tolist(),
            })
    return rows


def plot_guard(rows: list[dict], test_p90: float, path: Path, *, title: str) -> None:
    """Mean and worst difference (pick minus training-free pick) against the margin, one colour per schedule."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 4.2), dpi=120)
    labels = list(dict.fromkeys(r["margin_label"] for r in rows))
    x = np.arange(len(labels))
    for i, name in enumerate(dict.fromkeys(r["schedule"] for r in rows)):
        mine = {r["margin_label"]: r for r in rows if r["schedule"] == name}
        ax.plot(x, [mine[m]["mean_diff"] for m in labels], marker="o", color=f"C{i}", label=f"{name}: mean")
        ax.plot(x, [mine[m]["min_diff"] for m in labels], marker="v", ls="--", color=f"C{i}", label=f"{name}: worst")
    ax.axhline(-test_p90, color="C3", ls=":", lw=1, label=f"- seed noise (p90 of |test diff|, {test_p90:.2f})")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels([f"margin\n{m}" for m in labels])
    ax.set_ylabel("test accuracy of the stage's pick minus\nthe training-free pick's (points)")
    ax.set_title(title, fontsize=10)
    save_with_side_legend(fig, ax, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench", required=True, help="records: a SpikeNAS-Bench CSV or a ground truth's table")
    parser.add_argument("--curves", required=True, help="their per-epoch curves CSV(.gz): arch_id, epoch, val_acc")
    parser.add_argument("--noise-floor", default=None,
                        help="a ground truth's noise_floor.csv (default: pairs of records with equal live ops)")
    parser.add_argument("--schedule", action="append", type=str, default=None, metavar="TOP:E1,E2[:ETA[:WINDOW]]",
                        help="a schedule to replay (repeatable; default: the search's default and recommended "
                        "schedules that fit the curves)")
    parser.add_argument("--tie-seeds", type=positive_int, default=5, help="tie orders replayed (default 5)")
    parser.add_argument("--seed", type=random_seed, default=0, help="first tie seed (default 0)")
    parser.add_argument("--ranking", choices=sorted(RANKINGS), default="search",
                        help="training-free ranking (default: the search's ordering)")
    parser.add_argument("--output-dir", type=output_dir, default="guard_out", help="where guard.md/.json/.png go")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    records = spikenas_bench.load_bench(args.bench)
    curves = load_curves(args.curves)
    noise = noise_from_floor(args.noise_floor) if args.noise_floor else noise_from_equivalents(records, curves)
    logged = int(np.isfinite(curves.val_acc[curves.rows(records.arch_id)]).all(axis=0).sum())
    if args.schedule:
        schedules = [parse_schedule(t) for t in args.schedule]
        late = [str(s) for s in schedules if s.last_epoch > logged]
        if late:
            raise SpikeNASError(f"schedules {late} train past epoch {logged}, the last every curve logs")
    else:
        schedules = [s for s in dict.fromkeys([DEFAULT_SCHEDULE, *RECOMMENDED.values()]) if s.last_epoch <= logged]
        if not schedules:
            raise SpikeNASError(f"no default schedule fits curves of {logged} epochs; give one with --schedule")
    seeds = [args.seed + i for i in range(args.tie_seeds)]
    rows = guard_rows(records, curves, noise, schedules, seeds=seeds, ranking=args.ranking)
    test_noise = noise.test_noise()
    test_p50, test_p90 = float(np.median(test_noise)), float(np.percentile(test_noise, 90))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# The rerank guard on {Path(args.bench).name}", "",
        f"{len(records)} records; ranking {args.ranking}; tie seeds {seeds}; nine budgets (the 10 %, ..., 90 % "
        f"quantiles of params): {9 * len(seeds)} cases per row.", "",
        f"Seed noise: {noise.source}. |test accuracy difference|: median {test_p50:.2f}, 90th percentile "
        f"{test_p90:.2f} points. The guard holds when no pick is worse than the training-free pick by more than "
        f"{test_p90:.2f}.", "",
        "| schedule | margin | margin (points) | picks changed | mean diff | worst diff | worse than noise | holds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        margin = "-" if r["margin"] is None else f"{r['margin']:.2f}"
        lines.append(f"| {r['schedule']} (window {r['window']}) | {r['margin_label']} | {margin} | "
                     f"{r['changed']}/{r['cases']} | {r['mean_diff']:+.2f} | {r['min_diff']:+.2f} | "
                     f"{r['worse_than_noise']} | {'yes' if r['holds'] else 'no'} |")
    lines += ["", "Diff: test accuracy of the stage's pick minus the training-free pick's, points; mean and worst "
              "over every budget and tie seed."]
    md = "\n".join(lines) + "\n"
    write_text(out / "guard.md", md)
    plot = None
    if not args.no_plot:
        plot = out / "guard.png"
        plot_guard(rows, test_p90, plot, title=f"Rerank guard on {Path(args.bench).name}\n(seed noise: {noise.source})")
    write_json(out / "guard.json", {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"},
        "seed": args.seed, "tie_seeds": seeds, "versions": versions(),
        "timings": {"total_s": time.perf_counter() - start},
        "noise": {"source": noise.source, "pairs": int(len(noise.test)), "test_median": test_p50,
                  "test_p90": test_p90},
        "rows": rows, "plot": None if plot is None else plot.name,
    })
    print(md)
    print(f"written: {out / 'guard.md'}, guard.json{'' if plot is None else ', ' + plot.name}")
    return 0
