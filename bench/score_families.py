"""Score families of the selection study on a seeded sample of SpikeNAS-Bench records, over several weight seeds.

For each sampled record and weight seed the benchmark's cell is built in the benchmark's macro at a proxy
width, one forward pass on a fixed CIFAR-10-sample batch records spikes, membrane potentials and cell
nodes (SWAP counts, MeCo, NASWOT on nodes come from it), and ZiCo and the Jacobian covariance take their
own backward passes; the short-training proxy trains a width-4 copy on the labelled CIFAR-10 sample. Rows
``arch_id,seed,score,value`` are appended to a long CSV (several processes may share it: appends are
locked); a rerun skips every (arch_id, seed, score) already there. ``--summary`` prints, per score,
Kendall tau-b against test accuracy (all and connected records; per seed and for the seed-averaged value),
the mean tau within groups of equal conv_depth, and the rank agreement between seeds.

    python bench/score_families.py --records 200 --output docs/selection_score_values.csv
    python bench/score_families.py --families short_training --records 60 --output docs/selection_score_values.csv
    python bench/score_families.py --summary --output docs/selection_score_values.csv
"""

from __future__ import annotations

import csv
import fcntl
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spikenas import spikenas_bench
from spikenas.analyze.fidelity import finite_for_ranking
from spikenas.argparsing import Parser, main_guard
from spikenas.data import load_dataset
from spikenas.errors import SpikeNASError
from spikenas.network import build_network
from spikenas.scoring.analog_kernel import recording_naswot
from spikenas.scoring.jacobian import input_jacobians, jacobian_score
from spikenas.scoring.pattern_count import recording_pattern_count
from spikenas.scoring.potential import recording_meco
from spikenas.scoring.recorder import record_values
from spikenas.scoring.short_training import ShortTraining, short_training
from spikenas.scoring.structural import conv_depth, live_parametric_edges
from spikenas.scoring.zico import zico
from spikenas.stats import kendall_tau

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("arch_id", "seed", "score", "value")
#: family -> the score names (CSV ``score`` column) it writes
FAMILIES = {
    "swap": ("swap_call", "swap_time", "swap_node"),
    "meco_potential": ("meco_potential",),
    "naswot_nodes": ("naswot_nodes",),
    "zico": ("zico",),
    "jacob_cov": ("jacob_cov",),
    "short_training": ("short_training", "short_training_heldout_acc", "short_training_heldout_nll"),
}
RECORDED = ("swap", "meco_potential", "naswot_nodes")  # families read from the one recorded forward pass


def build_parser() -> Parser:
    p = Parser(prog="python bench/score_families.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", default=str(REPO.parent / "shared/data/spikenas_bench_cifar10_dev.csv"))
    p.add_argument("--data-dir", default=None, help="folder of cifar10_sample.npz (default: the CSV's folder)")
    p.add_argument("--output", default=str(REPO / "docs/selection_score_values.csv"))
    p.add_argument("--records", type=int, default=200, help="first records of the seeded permutation")
    p.add_argument("--sample-seed", type=int, default=0, help="permutation seed (0: the prefix of analyze fidelity's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="weight seeds")
    p.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated subset of {list(FAMILIES)}")
    p.add_argument("--width", type=int, default=16, help="proxy width of the first cell")
    p.add_argument("--timesteps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32, help="scoring batch (one batch, data seed 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--summary", action="store_true", help="print the figures of the CSV and exit")
    return p


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, rows: list[tuple]) -> None:
    """Append ``rows`` under an exclusive lock (the header first when the file is new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            writer = csv.writer(f)
            if f.tell() == 0:
                writer.writerow(FIELDS)
            writer.writerows(rows)
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def score_record(arch_id: int, seed: int, families: list[str], args, batch: torch.Tensor, labelled: tuple,
                 seconds: dict[str, float]) -> list[tuple]:
    """Every score of ``families`` for one record and weight seed, as CSV rows."""
    g = spikenas_bench.genotype(arch_id)
    macro = spikenas_bench.bench_macro(width=args.width, timesteps=args.timesteps)
    values: dict[str, float] = {}
    net = build_network(g, macro, seed=seed) if set(families) - {"short_training"} else None
    if set(families) & set(RECORDED):
        start = time.perf_counter()
        rec = record_values(net, batch, spikes="swap" in families, potentials="meco_potential" in families,
                            nodes="naswot_nodes" in families)
        seconds["record"] = seconds.get("record", 0.0) + time.perf_counter() - start
    for family in families:
        start = time.perf_counter()
        if family == "swap":
            for name, grouping in zip(FAMILIES["swap"], ("call", "time", "node"), strict=True):
                values[name] = recording_pattern_count(rec, grouping)
        elif family == "meco_potential":
            values[family] = recording_meco(rec)
        elif family == "naswot_nodes":
            values[family] = recording_naswot(rec)
        elif family == "zico":
            values[family] = zico(net, batch)
        elif family == "jacob_cov":
            values[family] = jacobian_score(input_jacobians(net, batch))
        elif family == "short_training":
            result = short_training((g, g), macro, *labelled, seed=seed, config=ShortTraining())
            values["short_training"] = -result.train_loss
            values["short_training_heldout_acc"] = result.accuracy
            values["short_training_heldout_nll"] = -result.loss
        seconds[family] = seconds.get(family, 0.0) + time.perf_counter() - start
    return [(arch_id, seed, name, repr(float(v))) for name, v in values.items()]


def _tau(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return kendall_tau(x, y)


def within_group_tau(
    values: np.ndarray, acc: np.ndarray, groups: np.ndarray, min_size: int = 5, *, weighted: bool = False
) -> float:
    """Mean over groups of equal ``groups`` (with >= ``min_size`` records) of Kendall tau-b, NaN groups skipped;
    ``weighted``: each group weighs its number of pairs n (n - 1) / 2 (small groups then count less)."""
    taus, weights = [], []
    for k in np.unique(groups):
        member = groups == k
        n = int(member.sum())
        tau = _tau(values[member], acc[member]) if n >= min_size else float("nan")
        if not math.isnan(tau):
            taus.append(tau)
            weights.append(n * (n - 1) / 2 if weighted else 1.0)
    return float(np.average(taus, weights=weights)) if taus else float("nan")


def summary(path: Path, bench_path: str) -> None:
    """Print, per score, tau-b vs test accuracy and the within-conv_depth-group tau (see the module doc)."""
    rows = read_rows(path)
    if not rows:
        raise SpikeNASError(f"{path} holds no rows")
    bench = spikenas_bench.load_bench(bench_path)
    acc_of = dict(zip(bench.arch_id.tolist(), bench.test_acc.tolist(), strict=True))
    table: dict[str, dict[int, dict[int, float]]] = {}
    for r in rows:
        table.setdefault(r["score"], {}).setdefault(int(r["seed"]), {})[int(r["arch_id"])] = float(r["value"])
    print("score | seeds | records | tau all (seed-mean value) | tau conn: per seed | tau conn (seed-mean value) | "
          "within conv_depth, mean over groups (seed-mean value) | the same per seed | pair-weighted (seed-mean value) "
          "| the same per seed | seed-to-seed tau")
    for score, by_seed in table.items():
        seeds = sorted(by_seed)
        archs = sorted(set.intersection(*(set(by_seed[s]) for s in seeds)))
        genos = [spikenas_bench.genotype(a) for a in archs]
        conn = np.array([g.is_connected() for g in genos])
        depth = np.array([conv_depth(g) for g in genos])
        acc = np.array([acc_of[a] for a in archs])
        per_seed = np.stack([finite_for_ranking(np.array([by_seed[s][a] for a in archs])) for s in seeds])
        mean_value = per_seed.mean(axis=0)
        tau_conn = [_tau(v[conn], acc[conn]) for v in per_seed]
        within = [within_group_tau(v[conn], acc[conn], depth[conn]) for v in per_seed]
        weighted = [within_group_tau(v[conn], acc[conn], depth[conn], weighted=True) for v in per_seed]
        within_weighted = within_group_tau(mean_value[conn], acc[conn], depth[conn], weighted=True)
        agree = [_tau(per_seed[i], per_seed[j]) for i in range(len(seeds)) for j in range(i + 1, len(seeds))]
        within_mean = within_group_tau(mean_value[conn], acc[conn], depth[conn])
        print(f"{score} | {len(seeds)} | {len(archs)} ({conn.sum()} conn) | {_tau(mean_value, acc):.3f} | "
              + " ".join(f"{t:.3f}" for t in tau_conn)
              + f" | {_tau(mean_value[conn], acc[conn]):.3f} | {within_mean:.3f}"
              + " | " + " ".join(f"{t:.3f}" for t in within)
              + f" | {within_weighted:.3f} | " + " ".join(f"{t:.3f}" for t in weighted)
              + " | " + (" ".join(f"{t:.3f}" for t in agree) or "-"))
    archs = sorted(max((set.intersection(*(set(v) for v in by_seed.values())) for by_seed in table.values()), key=len))
    genos = [spikenas_bench.genotype(a) for a in archs]
    conn = np.array([g.is_connected() for g in genos])
    depth = np.array([conv_depth(g) for g in genos], dtype=np.float64)
    acc = np.array([acc_of[a] for a in archs])
    params = dict(zip(bench.arch_id.tolist(), bench.params.tolist(), strict=True))
    references = {
        "conv_depth": depth,
        "live_convs": np.array([live_parametric_edges(g) for g in genos], dtype=np.float64),
        "params": np.array([params[a] for a in archs], dtype=np.float64),
    }
    print("within groups of equal (conv_depth, live_convs), connected, pair-weighted, seed-mean value:")
    for score, by_seed in table.items():
        ids = sorted(set.intersection(*(set(v) for v in by_seed.values())))
        gs = [spikenas_bench.genotype(a) for a in ids]
        keep = np.array([g.is_connected() for g in gs])
        key = np.array([conv_depth(g) * 10 + live_parametric_edges(g) for g in gs])[keep]
        value = np.mean([finite_for_ranking(np.array([by_seed[s][a] for a in ids])) for s in by_seed], axis=0)[keep]
        y = np.array([acc_of[a] for a in ids])[keep]
        print(f"  {score}: {within_group_tau(value, y, key, weighted=True):.3f}")
    sizes = {int(k): int((depth[conn] == k).sum()) for k in np.unique(depth[conn])}
    print(f"connected records per conv_depth group: {sizes}")
    for name, v in references.items():
        within = within_group_tau(v[conn], acc[conn], depth[conn])
        weighted = within_group_tau(v[conn], acc[conn], depth[conn], weighted=True)
        print(f"{name} (reference, {len(archs)} records) | tau all {_tau(v, acc):.3f} | tau conn "
              f"{_tau(v[conn], acc[conn]):.3f} | within conv_depth {within:.3f} | pair-weighted {weighted:.3f}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = Path(args.output)
    if args.summary:
        summary(output, args.bench)
        return 0
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise SpikeNASError(f"--families: unknown {unknown}; choose from {list(FAMILIES)}")
    torch.set_num_threads(args.threads)
    bench = spikenas_bench.load_bench(args.bench)
    if not 1 <= args.records <= len(bench):
        raise SpikeNASError(f"--records must be in 1..{len(bench)}, got {args.records}")
    rows = np.random.default_rng(args.sample_seed).permutation(len(bench))[: args.records]
    data_dir = args.data_dir or str(Path(args.bench).parent)
    dataset = load_dataset("cifar10-sample", data_dir=data_dir)
    batch = dataset.batches(args.batch_size, 1, seed=0)[0]
    labelled = dataset.tensors()
    done = {(int(r["arch_id"]), int(r["seed"]), r["score"]) for r in read_rows(output)}
    seconds: dict[str, float] = {}
    start, scored = time.perf_counter(), 0
    for i, arch_id in enumerate(bench.arch_id[rows].tolist()):
        for seed in args.seeds:
            todo = [f for f in families if any((arch_id, seed, n) not in done for n in FAMILIES[f])]
            if not todo:
                continue
            append_rows(output, score_record(arch_id, seed, todo, args, batch, labelled, seconds))
            scored += 1
        print(f"{i + 1}/{len(rows)} records, {scored} scored in {time.perf_counter() - start:.0f} s", file=sys.stderr,
              flush=True)
    per = {k: round(v / max(scored, 1), 3) for k, v in seconds.items()}
    print(f"scored {scored} (record, seed) pairs in {time.perf_counter() - start:.0f} s; seconds per pair: {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
