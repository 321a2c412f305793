"""Score fidelity on SpikeNAS-Bench: how well each registered score ranks trained architectures.

``python -m spikenas.analyze fidelity --bench spikenas_bench_cifar10_dev.csv --sample 300`` draws a
seeded sample of benchmark records, builds each cell in the benchmark's macro at a proxy width, runs one
forward pass per scoring batch of the CIFAR-10 sample, caches what the pass recorded (one .npz per
architecture and setting, so reruns and new scores cost no forward pass), and evaluates every score.
It reports per score: Kendall tau-b and Spearman rho against test accuracy over all sampled records
and over connected ones; the benchmark percentile (among all records of the CSV) of the top-1 and of
the best of the top-5; the same within a memory budget; seconds per candidate. Writes
``fidelity.md``, ``fidelity.csv``, ``fidelity.json`` and ``scatter_<score>.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from spikenas import scoring, spikenas_bench
from spikenas.analyze.report import pyplot
from spikenas.argparsing import Parser, kernel_batch, positive_int, random_seed
from spikenas.data import load_dataset
from spikenas.errors import SpikeNASError
from spikenas.executor import Executor, add_executor_arguments, executor_from_args
from spikenas.nas.engine import Evaluator, Leaders
from spikenas.network import build_network
from spikenas.progress import Progress
from spikenas.results import atomic_path, save_figure, versions, write_json, write_text
from spikenas.scoring import ScoreConfig
from spikenas.stats import kendall_tau, spearman_rho

HELP = "rank correlation of every training-free score with SpikeNAS-Bench test accuracy"
DEFAULT_SCORES = "spikes,structure"  # every spike-kernel and structural score; gradients on request


@dataclass(frozen=True)
class FidelitySetting:
    """The proxy network and data every architecture is scored with."""

    width: int = 16  # channels of the first cell of the proxy network (the benchmark trained 128)
    timesteps: int = 5  # T
    batch_size: int = 64  # images per scoring batch
    num_batches: int = 1  # batches per architecture; scores average over them
    bn_mode: str = "train"  # BatchNorm with batch (train) or running (eval) statistics
    seed: int = 0  # weight initialisation of every network and choice of the batches

    def key(self) -> str:
        """Cache folder name of this setting."""
        return f"w{self.width}_t{self.timesteps}_b{self.batch_size}x{self.num_batches}_{self.bn_mode}_s{self.seed}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench", required=True, help="SpikeNAS-Bench CSV (e.g. spikenas_bench_cifar10_dev.csv)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--sample", type=positive_int, default=300,
                      help="records drawn uniformly at random (default 300)")
    size.add_argument("--all", action="store_true", help="score every record of the CSV")
    parser.add_argument("--seed", type=random_seed, default=0, help="sample, batches and weight initialisation")
    parser.add_argument("--sample-seed", type=random_seed, default=None, help="sample seed, if not --seed")
    parser.add_argument("--width", type=positive_int, default=16, help="proxy network width (default 16)")
    parser.add_argument("--batch-size", type=kernel_batch, default=64, help="images per scoring batch")
    parser.add_argument("--num-batches", type=positive_int, default=1, help="scoring batches per architecture")
    parser.add_argument("--timesteps", type=positive_int, default=5, help="T of the proxy network")
    parser.add_argument("--bn-mode", choices=("train", "eval"), default="train", help="BatchNorm statistics")
    parser.add_argument("--budget-quantile", type=float, default=0.5,
                        help="memory budget: this quantile of the CSV's params column (default the median)")
    parser.add_argument("--scores", default=DEFAULT_SCORES,
                        help="comma-separated score names or groups (spikes, structure, gradients, all); "
                        f"default {DEFAULT_SCORES}")
    parser.add_argument("--data-dir", default=None, help="folder of cifar10_sample.npz (default: the CSV's folder)")
    parser.add_argument("--cache-dir", default=None, help="probe cache (default OUTPUT_DIR/cache)")
    parser.add_argument("--output-dir", default="fidelity_out", help="where tables and plots go")
    parser.add_argument("--no-plots", action="store_true", help="skip the scatter plots")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    add_executor_arguments(parser)
    parser.add_argument("--search-check", action="store_true",
                        help="also choose, as a search does with the default score and tie-breaks, among all CSV "
                        "records within the budget, and report the choice's percentile")


def resolve_scores(text: str) -> list[str]:
    """Score names from a comma-separated list of names and groups."""
    groups = {
        "spikes": [n for n in scoring.list_scores() if scoring.get_score(n).needs == {"spikes"}],
        "structure": [n for n in scoring.list_scores() if not scoring.get_score(n).needs],
        "gradients": [n for n in scoring.list_scores() if "gradients" in scoring.get_score(n).needs],
        "all": [n for n in scoring.list_scores() if scoring.get_score(n).needs <= {"spikes", "gradients"}],
    }
    names: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        for name in groups.get(item, [item]):
            if not scoring.get_score(name).needs <= {"spikes", "gradients"}:
                raise SpikeNASError(
                    f"score {name!r} records its network itself, which this study does not cache; compute its values "
                    "with bench/score_families.py and pass them to `analyze selection --values`"
                )
            if name not in names:
                names.append(name)
    if not names:
        raise SpikeNASError(f"--scores names no score: {text!r}")
    return names


def benchmark_percentile(value: float | np.ndarray, population: np.ndarray) -> float | np.ndarray:
    """Mid-rank percentile of ``value`` in ``population``: percent of it strictly below plus half of it equal.

    :param value: a finite accuracy, or a float array of them (each taken on its own).
    :param population: finite float ``[N]`` accuracies, N >= 1.
    :returns: a float for a scalar ``value``, else float64 of ``value``'s shape.
    """
    pop = np.sort(np.asarray(population, dtype=np.float64))
    value = np.asarray(value, dtype=np.float64)
    below = np.searchsorted(pop, value, side="left")
    equal = np.searchsorted(pop, value, side="right") - below
    pct = 100.0 * (below + 0.5 * equal) / len(pop)
    return float(pct) if pct.ndim == 0 else pct


def finite_for_ranking(values: np.ndarray) -> np.ndarray:
    """Non-finite scores (singular kernels, no live LIF) replaced by one value below every finite one."""
    values = np.asarray(values, dtype=np.float64).copy()
    bad = ~np.isfinite(values)
    if bad.all():
        return np.zeros_like(values)
    low = values[~bad].min()
    values[bad] = low - 1.0 - abs(low)
    return values


def _correlations(score: np.ndarray, acc: np.ndarray) -> tuple[float, float]:
    if len(score) < 2:
        return float("nan"), float("nan")
    return kendall_tau(score, acc), spearman_rho(score, acc)


def selection_percentiles(score: np.ndarray, acc: np.ndarray, population: np.ndarray) -> tuple[float, float, int]:
    """Benchmark percentiles of the top-1 (the first in sample order among ties) and of the best of the top-5.

    :returns: (top-1 percentile, best-of-top-5 percentile, number of records tied at the top score).
    """
    order = np.argsort(-score, kind="stable")
    top1 = benchmark_percentile(acc[order[0]], population)
    top5 = benchmark_percentile(acc[order[:5]].max(), population)
    return top1, top5, int((score == score[order[0]]).sum())


def metrics(
    values: np.ndarray, acc: np.ndarray, connected: np.ndarray, params: np.ndarray,
    *, population: np.ndarray, population_params: np.ndarray, budget: float,
) -> dict:
    """Every figure of one score over the sampled records."""
    v = finite_for_ranking(values)
    out = {}
    out["tau_all"], out["rho_all"] = _correlations(v, acc)
    out["tau_conn"], out["rho_conn"] = _correlations(v[connected], acc[connected])
    out["top1_pct"], out["top5_pct"], out["top1_ties"] = selection_percentiles(v, acc, population)
    fits = params <= budget
    pop_fits = population[population_params <= budget]
    out["tau_budget_conn"], _ = _correlations(v[fits & connected], acc[fits & connected])
    out["budget_top1_pct"], out["budget_top5_pct"], out["budget_top1_ties"] = selection_percentiles(
        v[fits], acc[fits], pop_fits
    )
    return out


def _probe_paths(cache: Path, arch_id: int, num_batches: int) -> list[Path]:
    return [cache / f"{arch_id}_b{i}.npz" for i in range(num_batches)]


def _missing(cache: Path, arch_id: int, setting: FidelitySetting, needs: set[str]) -> tuple[bool, bool, bool]:
    """(probe missing, gradient stats missing, anything to compute) for one architecture's cache files."""
    need_probe = "spikes" in needs and not all(p.exists() for p in _probe_paths(cache, arch_id, setting.num_batches))
    need_grad = "gradients" in needs and not (cache / f"{arch_id}_grad.json").exists()
    need_meta = bool(needs) and not (cache / f"{arch_id}_meta.json").exists()
    return need_probe, need_grad, need_probe or need_grad or need_meta


def _fill_cache(
    arch_id: int, setting: FidelitySetting, needs: set[str], cache: Path, batches: list, macro
) -> None:
    """Build ``arch_id`` once and write the cache files it lacks (probes, gradient stats, build seconds)."""
    need_probe, need_grad, any_missing = _missing(cache, arch_id, setting, needs)
    if not any_missing:
        return
    start = time.perf_counter()
    network = build_network(spikenas_bench.genotype(arch_id), macro, seed=setting.seed)
    write_text(cache / f"{arch_id}_meta.json", json.dumps({"build_s": time.perf_counter() - start}))
    if need_probe:
        for path, batch in zip(_probe_paths(cache, arch_id, setting.num_batches), batches, strict=True):
            scoring.save_probe(path, scoring.record_probe(network, batch, bn_mode=setting.bn_mode))
    if need_grad:
        stats = [scoring.gradient.gradient_stats(network, b) for b in batches]
        write_text(cache / f"{arch_id}_grad.json", json.dumps(stats))


def _scoring_inputs(setting: FidelitySetting, data_dir: Path) -> tuple[list, object]:
    dataset = load_dataset("cifar10-sample", data_dir=data_dir)
    batches = dataset.batches(setting.batch_size, setting.num_batches, seed=setting.seed)
    return batches, spikenas_bench.bench_macro(width=setting.width, timesteps=setting.timesteps)


def collect_shard(shared: tuple, arch_ids: list[int]) -> int:
    """Executor task: write the missing cache files of ``arch_ids``; the cache folder is the result store.

    :param shared: ``(setting, needs, data_dir, cache)`` as in :func:`collect`.
    :returns: the number of architectures of the shard.
    """
    setting, needs, data_dir, cache = shared
    batches, macro = _scoring_inputs(setting, data_dir)
    for arch_id in arch_ids:
        _fill_cache(arch_id, setting, needs, cache, batches, macro)
    return len(arch_ids)


def collect(
    records: spikenas_bench.BenchRecords,
    setting: FidelitySetting,
    *,
    needs: set[str],
    data_dir: Path,
    cache_dir: Path,
    executor: Executor | None = None,
    shards_per_worker: int = 4,
) -> tuple[list[list[scoring.Probe]], list[list[dict]], np.ndarray]:
    """Probes (and gradient statistics) of every record, from the cache or from one forward pass each.

    With a :class:`~spikenas.executor.RayExecutor` the records whose cache files are missing are cut
    into contiguous shards (``shards_per_worker`` per worker) and each shard fills the cache as a task
    (on a cluster ``cache_dir`` and ``data_dir`` must be storage every node sees); everything is then
    loaded from the cache as in a local run, so the figures do not depend on the executor.

    :returns: (probes per record, gradient stats per record, float64 ``[R]`` build seconds per record).
    """
    cache = cache_dir / setting.key()
    cache.mkdir(parents=True, exist_ok=True)
    if executor is not None and executor.name != "local" and needs:
        todo = [int(a) for a in records.arch_id if _missing(cache, int(a), setting, needs)[2]]
        todo = list(dict.fromkeys(todo))
        if todo:
            size = max(1, math.ceil(len(todo) / (shards_per_worker * executor.workers)))
            shards = [todo[i : i + size] for i in range(0, len(todo), size)]
            with Progress(len(todo), f"fidelity: scoring on {executor.name} ({executor.workers} workers)") as bar:
                for _, done in executor.imap_unordered(collect_shard, shards, shared=(setting, needs, data_dir, cache)):
                    bar.update(done)
    batches, macro = _scoring_inputs(setting, data_dir)
    probes, grads, build_s = [], [], np.zeros(len(records))
    with Progress(len(records), "fidelity: scoring") as bar:
        for i, arch_id in enumerate(records.arch_id):
            arch_id = int(arch_id)
            _fill_cache(arch_id, setting, needs, cache, batches, macro)
            build_s[i] = json.loads((cache / f"{arch_id}_meta.json").read_text())["build_s"] if needs else 0.0
            probes.append([scoring.load_probe(p) for p in _probe_paths(cache, arch_id, setting.num_batches)]
                          if "spikes" in needs else [])
            grads.append(json.loads((cache / f"{arch_id}_grad.json").read_text()) if "gradients" in needs else [])
            bar.update(1)
    return probes, grads, build_s


def budget_search_pick(
    bench: spikenas_bench.BenchRecords,
    budget: float,
    setting: FidelitySetting,
    *,
    data_dir: Path,
    config: ScoreConfig,
) -> dict:
    """Choose among the records within ``budget`` exactly as a search does (the search engine's
    Evaluator, its running top ties and :mod:`spikenas.nas.ordering` through ``resolve_ties``), with the
    score configuration ``config``.

    :returns: the chosen record, its percentile by test accuracy among the records within budget, how many
        tied at the top score and after each tie-break, what decided, and the tie-break scores of the pick.
    """
    fits = np.flatnonzero(bench.params <= budget)
    if len(fits) == 0:
        raise SpikeNASError(f"no benchmark record has at most {budget:,.0f} parameters")
    dataset = load_dataset("cifar10-sample", data_dir=data_dir)
    batches = dataset.batches(setting.batch_size, setting.num_batches, seed=setting.seed)
    macro = spikenas_bench.bench_macro(width=setting.width, timesteps=setting.timesteps)
    runs = scoring.needs_network(config.name) or any(scoring.needs_network(n) for n in config.tie_break)
    score_config = replace(config, bn_mode=setting.bn_mode) if runs else config
    evaluator = Evaluator(macro, batches, score_config, seed=setting.seed)
    leaders = Leaders()
    row_of = {}
    for row in fits[np.argsort(bench.arch_id[fits], kind="stable")]:  # a search enumerates by index
        cell = spikenas_bench.genotype(int(bench.arch_id[row]))
        record = evaluator.evaluate((cell, cell), params=int(bench.params[row]))
        row_of[record.cells] = row
        leaders.offer(record)
    resolution = evaluator.resolve_ties(leaders.tied)  # spikenas.nas.ordering, as in every search
    pick = resolution.pick
    row = row_of[pick.cells]
    return {
        "score": config.name,
        "tie_break": list(config.tie_break),
        "arch_id": int(bench.arch_id[row]),
        "cell": pick.cells[0].to_nb201(),
        "test_acc": float(bench.test_acc[row]),
        "percentile_in_budget": benchmark_percentile(bench.test_acc[row], bench.test_acc[fits]),
        "records_in_budget": int(len(fits)),
        **resolution.summary(),
        "tie_scores": pick.tie_scores,
    }


def evaluate_scores(
    names: list[str],
    records: spikenas_bench.BenchRecords,
    setting: FidelitySetting,
    probes: list[list[scoring.Probe]],
    grads: list[list[dict]],
    build_s: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every score of every record, and each score's mean seconds per candidate (build + record + compute)."""
    macro = spikenas_bench.bench_macro(width=setting.width, timesteps=setting.timesteps)
    values = {n: np.zeros(len(records)) for n in names}
    seconds = {n: 0.0 for n in names}
    for i, arch_id in enumerate(records.arch_id):
        g = spikenas_bench.genotype(int(arch_id))
        candidate = scoring.Candidate((g, g), macro, probes[i], [{k: float(v) for k, v in d.items()} for d in grads[i]])
        probe_s = sum(p.seconds for p in probes[i])
        grad_s = sum(d.get("seconds", 0.0) for d in candidate.gradients)
        for name in names:
            spec = scoring.get_score(name)
            start = time.perf_counter()
            values[name][i] = spec.fn(candidate)
            cost = time.perf_counter() - start
            if spec.needs:
                cost += build_s[i]
            cost += probe_s if "spikes" in spec.needs else 0.0
            cost += grad_s if "gradients" in spec.needs else 0.0
            seconds[name] += cost
    return values, {n: s / len(records) for n, s in seconds.items()}


def _fmt(x: float, digits: int = 3) -> str:
    return "nan" if isinstance(x, float) and math.isnan(x) else f"{x:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    head = ("score", "tau all", "tau conn", "rho all", "rho conn", "top-1 pct", "best top-5 pct",
            "tau budget conn", "budget top-1 pct", "budget best top-5 pct", "s/candidate")
    keys = ("tau_all", "tau_conn", "rho_all", "rho_conn", "top1_pct", "top5_pct",
            "tau_budget_conn", "budget_top1_pct", "budget_top5_pct", "seconds")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["score"]]
        for k in keys:
            cells.append(_fmt(row[k], 1 if k.endswith("pct") else 3))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scatter_plots(values: dict[str, np.ndarray], acc: np.ndarray, connected: np.ndarray, out: Path) -> list[str]:
    """One PNG per score: score against test accuracy, disconnected records in grey."""
    plt = pyplot()
    files = []
    for name, v in values.items():
        v = finite_for_ranking(v)
        fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=100)
        ax.scatter(v[~connected], acc[~connected], s=6, c="0.6", label="disconnected")
        ax.scatter(v[connected], acc[connected], s=6, c="C0", label="connected")
        ax.set_xlabel(name)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{name}: tau {kendall_tau(v[connected], acc[connected]):.3f} (connected)")
        ax.legend(loc="lower right", fontsize=7)
        fig.tight_layout()
        path = out / f"scatter_{name}.png"
        save_figure(fig, path)
        plt.close(fig)
        files.append(path.name)
    return files


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    start = time.perf_counter()
    names = resolve_scores(args.scores)
    for flag in ("width", "batch_size", "num_batches", "timesteps"):
        if getattr(args, flag) < 1:
            raise SpikeNASError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if not 0.0 < args.budget_quantile <= 1.0:
        raise SpikeNASError(f"--budget-quantile must be in (0, 1], got {args.budget_quantile}")
    bench = spikenas_bench.load_bench(args.bench)
    sample_seed = args.seed if args.sample_seed is None else args.sample_seed
    if args.all:
        rows = np.arange(len(bench))
    else:
        if not 2 <= args.sample <= len(bench):
            raise SpikeNASError(f"--sample must be in 2..{len(bench)} (records in {args.bench}), got {args.sample}")
        rows = np.random.default_rng(sample_seed).permutation(len(bench))[: args.sample]
    records = bench.subset(rows)
    setting = FidelitySetting(args.width, args.timesteps, args.batch_size, args.num_batches, args.bn_mode, args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out / "cache"
    data_dir = Path(args.data_dir) if args.data_dir else Path(args.bench).resolve().parent
    needs = set().union(*(scoring.get_score(n).needs for n in names))

    t0 = time.perf_counter()
    with executor_from_args(args) as executor:
        probes, grads, build_s = collect(
            records, setting, needs=needs, data_dir=data_dir, cache_dir=cache_dir, executor=executor
        )
    t_collect = time.perf_counter() - t0
    t0 = time.perf_counter()
    values, seconds = evaluate_scores(names, records, setting, probes, grads, build_s)
    t_scores = time.perf_counter() - t0

    budget = float(np.quantile(bench.params, args.budget_quantile))
    connected = records.connected()
    table = []
    for name in names:
        row = {"score": name, **metrics(values[name], records.test_acc, connected, records.params,
                                        population=bench.test_acc, population_params=bench.params, budget=budget)}
        row["seconds"] = seconds[name]
        table.append(row)

    with atomic_path(out / "fidelity.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    with atomic_path(out / "values.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch_id", "test_acc", "params", "connected", *names])
        for i in range(len(records)):
            writer.writerow([int(records.arch_id[i]), records.test_acc[i], int(records.params[i]),
                             int(connected[i]), *(values[n][i] for n in names)])
    plots = [] if args.no_plots else scatter_plots(values, records.test_acc, connected, out)
    md = markdown_table(table)
    check = None
    if args.search_check:
        check = budget_search_pick(bench, budget, setting, data_dir=data_dir, config=ScoreConfig())
        md += (
            f"\n\nSearch check (default score {check['score']}, ties broken by {', '.join(check['tie_break'])}): "
            f"among {check['records_in_budget']} records within budget, {check['tied_at_top']} tie at the top and "
            f"{check['tied_after_tie_breaks']} after the tie-breaks (decided by {check['decided_by']}); the "
            f"choice is arch {check['arch_id']} ({check['cell']}), test accuracy {check['test_acc']:.2f} %, "
            f"percentile {check['percentile_in_budget']:.1f} within budget.\n"
        )
    command = "python -m spikenas.analyze fidelity " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if k not in ("study", "all", "no_plots", "search_check") and v is not None
    ) + (" --all" if args.all else "") + (" --search-check" if args.search_check else "")
    write_text(
        out / "fidelity.md",
        f"# Score fidelity on {Path(args.bench).name}\n\n"
        f"{len(records)} records ({int(connected.sum())} connected), setting {setting.key()}, "
        f"budget {budget:,.0f} parameters (quantile {args.budget_quantile} of the CSV).\n\n"
        f"Command: `{command}`\n\n{md}\n"
    )
    write_json(out / "fidelity.json", {
        "config": {**vars(args), "setting": asdict(setting), "scores": names, "budget": budget},
        "seed": args.seed,
        "sample_seed": sample_seed,
        "versions": versions(),
        "timings": {"collect_s": t_collect, "scores_s": t_scores, "total_s": time.perf_counter() - start},
        "num_records": len(records),
        "num_connected": int(connected.sum()),
        "table": table,
        "search_check": check,
        "plots": plots,
    })
    print(md)
    print(f"written: {out / 'fidelity.md'}, fidelity.csv, fidelity.json, values.csv, {len(plots)} plots")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (the study is normally run through ``python -m spikenas.analyze``)."""
    from spikenas.argparsing import main_guard

    parser = Parser(prog="fidelity", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))
