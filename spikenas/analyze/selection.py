"""Selection protocol on SpikeNAS-Bench: how well the search's complete ordering chooses, measured on folds
that no rule was chosen on.

``python -m spikenas.analyze selection --bench spikenas_bench_cifar10_dev.csv`` splits the records into ``k``
seeded folds (``--folds``, default 5; 0: the CSV as a whole only) and, on every fold and on the whole CSV,
evaluates each candidate ordering rule (the search's score, then a tuple of tie-break scores, then the final
rule of :mod:`spikenas.nas.ordering`) exactly as a search orders candidates (:class:`Leaders` and
:func:`resolve_ties` over the records within a budget, enumerated by ``arch_id``). Per rule and pool it reports:

* the accuracy percentile within budget of the pick at nine budgets (the 10 %, ..., 90 % quantiles of the
  pool's ``params`` column), with the expected percentile if the ties left after the tie-breaks were broken
  at random, and if every tie at the top score were (no tie-break at all);
* Kendall tau-b of the complete ordering (:func:`spikenas.nas.ordering.ordering_rank`) with test accuracy,
  over all records and over connected ones;
* each tie-break's within-tie Kendall tau: its correlation with accuracy over the candidates it was applied
  to, pooled over the distinct budgets.

A rule is then chosen for each fold on the other folds (:func:`choose_rule`: every tie-break positive within
ties on every one of them, best mean pick percentile) and measured on the held-out one. ``--scores`` adds,
for each named score, the overall tau beside the within-group tau (groups of equal ``conv_depth``, and the
tied top set at each budget); scores that run the proxy network are computed on a seeded ``--sample`` of
records for each weight seed of ``--seeds`` through the probe cache of :mod:`spikenas.analyze.fidelity`, and
their spread between seeds is reported. Writes ``selection.md``, ``selection.json`` and
``selection_pick_percentile.png`` to ``--output-dir``.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from spikenas import scoring, spikenas_bench
from spikenas.analyze.fidelity import FidelitySetting, benchmark_percentile, collect, evaluate_scores, resolve_scores
from spikenas.analyze.report import pyplot
from spikenas.argparsing import Parser, kernel_batch, non_negative_int, positive_int, random_seed
from spikenas.data import load_dataset
from spikenas.errors import SpikeNASError
from spikenas.nas.ordering import FINAL_RULE_DOC, Leaders, ordering_rank, resolve_ties
from spikenas.network import build_network
from spikenas.results import save_figure, versions, write_json, write_text
from spikenas.scoring import ScoreConfig
from spikenas.stats import kendall_tau

HELP = "the search's complete ordering and its picks at nine budgets, on seeded folds of a SpikeNAS-Bench CSV"
QUANTILES = tuple(round(0.1 * i, 1) for i in range(1, 10))  # budgets: these quantiles of the params column
OLD_DEFAULT = ("depth_skip", "hamming")  # reference rule: live skips, then NASWOT's kernel on the proxy network
#: Tie-break tuples studied by default: structural ones only (free), each after the search's score.
STRUCTURAL_RULES: tuple[tuple[str, ...], ...] = (
    (),
    ("live_skips",),
    ("live_convs",),
    ("params",),
    ("threshold_rise",),
    ("threshold_rise", "live_skips"),
    ("live_skips", "threshold_rise"),
    ("threshold_rise", "live_convs"),
)
#: Rules whose tie-breaks run the proxy network (with --spike-rules), evaluated for every weight seed.
SPIKE_RULES: tuple[tuple[str, ...], ...] = (OLD_DEFAULT, ("threshold_rise", "hamming"))
TARGETS = {"mean_pick": 88.0, "min_pick": 80.0, "tau_conn": 0.60}  # what a default must reach on every held-out fold


def rule_label(rule: Sequence[str]) -> str:
    """``a,b`` for tie-breaks a then b; ``none`` for no tie-break."""
    return ",".join(rule) or "none"


def parse_rules(text: str) -> list[tuple[str, ...]]:
    """Rules from ``"a,b;c;none"``: semicolon-separated tie-break tuples, each comma-separated."""
    rules = []
    for item in (t.strip() for t in text.split(";")):
        if not item:
            continue
        rule = () if item == "none" else tuple(n.strip() for n in item.split(",") if n.strip())
        for name in rule:
            scoring.get_score(name)
        rules.append(rule)
    if not rules:
        raise SpikeNASError(f"--rules names no rule: {text!r}")
    return rules


def kfold(n: int, k: int, seed: int) -> list[np.ndarray]:
    """A seeded k-fold split of ``n`` records: ``k`` disjoint sorted int64 arrays of row indices covering
    ``0..n-1``, sizes differing by at most one.

    :raises SpikeNASError: unless ``2 <= k <= n``.
    """
    if not 2 <= k <= n:
        raise SpikeNASError(f"folds must be in 2..{n} (the number of records), got {k}")
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(perm[i::k]).astype(np.int64) for i in range(k)]


# ---------------------------------------------------------------------------------------------------- scores


class ScoreTable:
    """Registered scores of benchmark records. Structural scores are computed for every record at first use
    (cells only, the width-128 benchmark macro, so ``params`` is the CSV's column); scores that run the proxy
    network are computed for the records asked for, once per weight seed, through the probe cache of
    :mod:`spikenas.analyze.fidelity`.

    :param settings: the proxy setting of each weight seed (:class:`FidelitySetting`, ``seed`` differing).
    """

    def __init__(
        self, bench: spikenas_bench.BenchRecords, *, settings: Sequence[FidelitySetting], data_dir: Path,
        cache_dir: Path,
    ) -> None:
        self.bench = bench
        self.settings = {s.seed: s for s in settings}
        self.data_dir, self.cache_dir = data_dir, cache_dir
        self._cells = bench.networks()
        self._structural: dict[str, np.ndarray] = {}
        self._run: dict[tuple[str, int], dict[int, float]] = {}
        self.preloaded: set[str] = set()  # scores read from a values file (load_values), never computed here
        self.run_seconds = 0.0  # time spent running proxy networks

    def load_values(self, path: str | Path) -> set[str]:
        """Read precomputed values of network-running scores from a long CSV with columns ``arch_id, seed, score,
        value`` (e.g. bench/score_families.py's); rows of records not in the bench are skipped. Scores read this
        way need not be registered and are never computed here.

        :returns: the score names read.
        :raises SpikeNASError: a missing file or column, or a malformed number.
        """
        path = Path(path)
        if not path.is_file():
            raise SpikeNASError(f"values file {path} not found (a CSV with columns arch_id,seed,score,value)")
        row_of = {int(a): i for i, a in enumerate(self.bench.arch_id)}
        names: set[str] = set()
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("arch_id", "seed", "score", "value") if c not in (reader.fieldnames or [])]
            if missing:
                raise SpikeNASError(f"{path}: missing columns {missing}; found {reader.fieldnames}")
            try:
                for r in reader:
                    row = row_of.get(int(r["arch_id"]))
                    if row is not None:
                        self._run.setdefault((r["score"], int(r["seed"])), {})[row] = float(r["value"])
                        names.add(r["score"])
            except ValueError as err:
                raise SpikeNASError(f"{path}: malformed number: {err}") from err
        self.preloaded |= names
        return names

    def known_rows(self, name: str, seeds: Sequence[int]) -> np.ndarray:
        """int64 rows that have a value of ``name`` for every seed of ``seeds`` (preloaded or computed)."""
        sets = [set(self._run.get((name, s), {})) for s in seeds]
        return np.array(sorted(set.intersection(*sets)) if sets else [], dtype=np.int64)

    def cells(self, row: int) -> tuple:
        """The cells of record ``row``'s network (SpikeNAS-Bench's: its cell in both positions)."""
        return self._cells[int(row)]

    def runs(self, name: str) -> bool:
        """Whether score ``name`` runs the proxy network (and so depends on the weight seed)."""
        return name in self.preloaded or scoring.needs_network(name)

    def structural(self, name: str) -> np.ndarray:
        """float64 ``[R]`` values of structural score ``name`` for every record."""
        if self.runs(name):
            raise SpikeNASError(f"score {name!r} runs the network: ask ScoreTable.value with a seed")
        if name not in self._structural:
            fn, macro = scoring.get_score(name).fn, self.bench.macro()
            self._structural[name] = np.array(
                [fn(scoring.Candidate(cells, macro)) for cells in self._cells], dtype=np.float64
            )
        return self._structural[name]

    def ensure(self, name: str | Sequence[str], rows: Sequence[int], seed: int) -> None:
        """Compute the scores ``name`` (one name or several, each running the network) for the ``rows`` lacking
        them, with weight seed ``seed``; scores read from spike probes share one pass over the probe cache."""
        if seed not in self.settings:
            raise SpikeNASError(f"seed {seed} has no proxy setting; seeds: {sorted(self.settings)}")
        names = [n for n in ([name] if isinstance(name, str) else list(name)) if n not in self.preloaded]
        if names and self.bench.op_set != spikenas_bench.OP_SET:
            raise SpikeNASError(f"scores {names} run the proxy network on CIFAR-10 images, which exists for "
                                f"SpikeNAS-Bench records only; give the values of records of op set "
                                f"{self.bench.op_set!r} with --values (bench/ground_truth_scores.py writes them)")
        setting = self.settings[seed]
        start = time.perf_counter()
        cached, direct = {}, {}
        for n in names:
            todo = sorted({int(r) for r in rows} - set(self._run.setdefault((n, seed), {})))
            if todo:
                (cached if set(scoring.get_score(n).needs) <= {"spikes", "gradients"} else direct)[n] = todo
        if cached:
            todo = sorted(set().union(*cached.values()))
            records = self.bench.subset(np.array(todo, dtype=np.int64))
            needs = set().union(*(scoring.get_score(n).needs for n in cached))
            probes, grads, build_s = collect(records, setting, needs=needs, data_dir=self.data_dir,
                                             cache_dir=self.cache_dir)
            values, _ = evaluate_scores(list(cached), records, setting, probes, grads, build_s)
            for n in cached:
                self._run[(n, seed)].update(zip(todo, values[n].tolist(), strict=True))
        for n, todo in direct.items():  # scores recording more than spikes: built and scored as a search does
            records = self.bench.subset(np.array(todo, dtype=np.int64))
            self._run[(n, seed)].update(zip(todo, self._score_directly(n, records, setting), strict=True))
        if cached or direct:
            self.run_seconds += time.perf_counter() - start

    def _score_directly(
        self, name: str, records: spikenas_bench.BenchRecords, setting: FidelitySetting
    ) -> list[float]:
        dataset = load_dataset("cifar10-sample", data_dir=self.data_dir)
        batches = dataset.batches(setting.batch_size, setting.num_batches, seed=setting.seed)
        macro = spikenas_bench.bench_macro(width=setting.width, timesteps=setting.timesteps)
        config = ScoreConfig(name=name, tie_break=(), bn_mode=setting.bn_mode)
        out = []
        for arch_id in records.arch_id:
            g = spikenas_bench.genotype(int(arch_id))
            network = build_network([g, g], macro, seed=setting.seed)
            out.append(scoring.score_candidate((g, g), network, batches, config=config, macro=macro,
                                               seed=setting.seed).score)
        return out

    def value(self, name: str, row: int, seed: int = 0) -> float:
        """Score ``name`` of record ``row`` (weight seed ``seed`` for scores that run the network)."""
        if not self.runs(name):
            return float(self.structural(name)[row])
        self.ensure(name, [row], seed)
        return self._run[(name, seed)][int(row)]

    def column(self, name: str, rows: np.ndarray, seed: int = 0) -> np.ndarray:
        """float64 values of score ``name`` for ``rows``."""
        if not self.runs(name):
            return self.structural(name)[rows]
        self.ensure(name, rows, seed)
        known = self._run[(name, seed)]
        return np.array([known[int(r)] for r in rows], dtype=np.float64)


# ------------------------------------------------------------------------------------------------ statistics


def _tied_pairs(values: np.ndarray) -> int:
    """Number of pairs of equal entries of a 1-D array."""
    counts = np.unique(values, return_counts=True)[1]
    return int((counts * (counts - 1) // 2).sum())


def grouped_kendall_tau(x: np.ndarray, y: np.ndarray, groups: Sequence[np.ndarray]) -> float:
    """Kendall tau-b over the pairs within each group only (pairs of different groups are left out): the
    concordant minus discordant pairs summed over the groups, over the root of the product of the pairs untied in
    x and of those untied in y, each summed over the groups. A group's concordant minus discordant count is its
    tau-b (``scipy.stats.kendalltau``) times the root of that group's product, an integer.

    :param x: float ``[n]``; :param y: float ``[n]``; :param groups: int index arrays into them.
    :returns: the pooled tau-b; NaN when no group has a pair untied in both x and y.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    s = px = py = 0.0
    for g in groups:
        if len(g) < 2:
            continue
        pairs = len(g) * (len(g) - 1) // 2
        untied_x, untied_y = pairs - _tied_pairs(x[g]), pairs - _tied_pairs(y[g])
        if untied_x and untied_y:  # otherwise every pair is tied in x or y: neither concordant nor discordant
            tau = float(stats.kendalltau(x[g], y[g], variant="b").statistic)
            s += round(tau * math.sqrt(untied_x) * math.sqrt(untied_y))
        px, py = px + untied_x, py + untied_y
    return float("nan") if px == 0 or py == 0 else float(s / np.sqrt(px * py))


def _tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-b, NaN for fewer than two pairs or a non-finite value."""
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    return kendall_tau(x, y)


# -------------------------------------------------------------------------------------------------- picking


@dataclass(eq=False)
class _Candidate:
    """One benchmark record as the ordering sees it (identity equality, as distinct networks)."""

    score: float
    params: int
    cells: tuple  # (genotype, genotype): the benchmark's cell in both positions
    row: int


@dataclass
class BudgetPick:
    """The pick of one rule at one budget of one pool."""

    quantile: float  # budget = this quantile of the pool's params column
    budget: float  # parameters
    in_budget: int  # records of the pool within the budget
    tied_at_top: int  # records tied at the top score
    tied_after_tie_breaks: int  # records the final rule chose among
    decided_by: str  # what reduced the tie to one: score, a tie-break, the final rule, or first_seen
    arch_id: int
    test_acc: float
    percentile: float  # test-accuracy percentile of the pick among the records within budget
    random_remaining: float  # expected percentile if the ties left after the tie-breaks were broken at random
    random_smallest: float  # expected percentile of the final rule: a uniform draw among those with fewest params
    first_seen: float  # percentile of the first seen of those with fewest params (enumeration order instead of a draw)
    random_top: float  # expected percentile of a random choice among the records tied at the top score


@dataclass
class RuleResult:
    """One rule on one pool (and one weight seed, for rules that run the network)."""

    rule: tuple[str, ...]
    seed: int | None  # weight seed of the rule's run-scores; None for structural rules
    picks: list[BudgetPick]
    tau_all: float  # Kendall tau-b of the complete ordering, all records (NaN if a tie-break runs the network)
    tau_conn: float  # the same over connected records
    tau_conn_final: float  # tau_conn with the final rule (fewest parameters) ranking the ties the ordering leaves
    within_tie: dict[str, float]  # per tie-break: Kendall tau within the ties it was applied to

    @property
    def mean_pick(self) -> float:
        return float(np.mean([p.percentile for p in self.picks]))

    @property
    def min_pick(self) -> float:
        return float(np.min([p.percentile for p in self.picks]))

    @property
    def mean_random_remaining(self) -> float:
        return float(np.mean([p.random_remaining for p in self.picks]))

    @property
    def mean_random_smallest(self) -> float:
        return float(np.mean([p.random_smallest for p in self.picks]))

    @property
    def mean_first_seen(self) -> float:
        return float(np.mean([p.first_seen for p in self.picks]))

    @property
    def mean_random_top(self) -> float:
        return float(np.mean([p.random_top for p in self.picks]))

    def to_json(self) -> dict:
        return {
            "rule": list(self.rule), "seed": self.seed, "mean_pick": self.mean_pick, "min_pick": self.min_pick,
            "mean_random_remaining": self.mean_random_remaining, "mean_random_top": self.mean_random_top,
            "mean_random_smallest": self.mean_random_smallest, "mean_first_seen": self.mean_first_seen,
            "tau_all": self.tau_all, "tau_conn": self.tau_conn,
            "tau_conn_with_final_rule": self.tau_conn_final, "within_tie": self.within_tie,
            "picks": [asdict(p) for p in self.picks],
        }


def evaluate_rule(
    bench: spikenas_bench.BenchRecords,
    rows: np.ndarray,
    rule: Sequence[str],
    table: ScoreTable,
    *,
    score: str,
    seed: int = 0,
    search_seed: int = 0,
    connected: np.ndarray | None = None,
    with_tau: bool = True,
) -> RuleResult:
    """Evaluate ordering rule ``(score, *rule, final rule)`` on the pool ``rows`` of ``bench``, as a search:
    at each budget the records within it are offered to :class:`Leaders` in ``arch_id`` order and
    :func:`resolve_ties` chooses among the leaders.

    :param rows: int row indices of the pool.
    :param seed: weight seed of tie-break scores that run the network.
    :param search_seed: the seed of the search's final-rule draw (a search's ``--seed``).
    :param connected: bool ``[R]`` of the whole bench (computed when None).
    :param with_tau: compute the complete ordering's tau-b (skipped, NaN, when a tie-break runs the network).
    """
    rule = tuple(rule)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) < 2:
        raise SpikeNASError(f"a pool needs at least 2 records, got {len(rows)}")
    primary = table.structural(score)
    acc, params = bench.test_acc, bench.params
    budgets = np.quantile(params[rows], QUANTILES)
    picks: list[BudgetPick] = []
    stage_sets: dict[str, dict[float, list[int]]] = {name: {} for name in rule}

    def value(candidate: _Candidate, name: str) -> float:
        return table.value(name, candidate.row, seed)

    for quantile, budget in zip(QUANTILES, budgets, strict=True):
        fits = rows[params[rows] <= budget]
        fits = fits[np.argsort(bench.arch_id[fits], kind="stable")]  # a search enumerates by index
        leaders: Leaders[_Candidate] = Leaders()
        for r in fits:
            leaders.offer(_Candidate(float(primary[r]), int(params[r]), table.cells(r), int(r)))
        resolution = resolve_ties(leaders.tied, rule, value, seed=search_seed)
        for (name, _), entering in zip(resolution.stages, resolution.entering, strict=True):
            stage_sets[name].setdefault(float(budget), [c.row for c in entering])
        population = acc[fits]
        pct, small, top = (benchmark_percentile(acc[[c.row for c in group]], population)
                           for group in (resolution.remaining, resolution.smallest, resolution.tied))
        pick = resolution.pick.row
        picks.append(BudgetPick(
            quantile=quantile, budget=float(budget), in_budget=len(fits), tied_at_top=len(resolution.tied),
            tied_after_tie_breaks=len(resolution.remaining), decided_by=resolution.decided_by,
            arch_id=int(bench.arch_id[pick]), test_acc=float(acc[pick]),
            percentile=benchmark_percentile(acc[pick], population),
            random_remaining=float(np.mean(pct)), random_smallest=float(np.mean(small)), first_seen=float(small[0]),
            random_top=float(np.mean(top)),
        ))
    within = {}
    for name, sets in stage_sets.items():
        groups = [np.array(s, dtype=np.int64) for s in sets.values()]
        if not groups:
            within[name] = float("nan")
            continue
        union = np.unique(np.concatenate(groups))
        index = {int(r): i for i, r in enumerate(union)}
        values = np.array([table.value(name, int(r), seed) for r in union])
        values = np.where(np.isfinite(values), values, -np.inf)
        within[name] = grouped_kendall_tau(
            np.nan_to_num(values, neginf=-1e300), acc[union], [np.array([index[int(r)] for r in g]) for g in groups]
        )
    tau_all = tau_conn = tau_final = float("nan")
    if with_tau and not any(table.runs(n) for n in rule):
        columns = [table.structural(n)[rows] for n in rule]
        conn = (bench.connected() if connected is None else connected)[rows]
        rank = ordering_rank(primary[rows], columns).astype(float)
        tau_all, tau_conn = _tau(rank, acc[rows]), _tau(rank[conn], acc[rows][conn])
        final = ordering_rank(primary[rows], columns, params[rows]).astype(float)
        tau_final = _tau(final[conn], acc[rows][conn])
    run_seed = seed if any(table.runs(n) for n in rule) else None
    return RuleResult(rule, run_seed, picks, tau_all, tau_conn, tau_final, within)


def choose_rule(per_fold: dict[str, list[list[RuleResult]]], folds: Sequence[int]) -> str | None:
    """The rule to use, chosen on ``folds`` only: among rules whose every tie-break has a positive within-tie
    tau on each of those folds (for every weight seed), the best mean over them of the expected pick percentile
    (the final rule's draw taken at random, so that no rule is chosen for a lucky draw), then of the lowest
    budget's expected percentile, then of the tau-b over connected records.

    :param per_fold: per rule label and fold, the rule's results on that fold (one per weight seed for rules
        whose tie-breaks run the network, else one).
    :param folds: the indices of the folds to choose on.
    :returns: the label of the chosen rule, None if no rule qualifies.
    """
    best, best_key = None, None
    for label, by_fold in per_fold.items():
        chosen = [r for i in folds for r in by_fold[i]]
        if not chosen or not all(v > 0 for r in chosen for v in r.within_tie.values()):
            continue
        key = (
            float(np.mean([r.mean_random_smallest for r in chosen])),
            float(np.mean([min(p.random_smallest for p in r.picks) for r in chosen])),
            float(np.nan_to_num(np.mean([r.tau_conn for r in chosen]), nan=-1.0)),
        )
        if best_key is None or key > best_key:
            best, best_key = label, key
    return best


def within_group_figures(
    values: np.ndarray, acc: np.ndarray, depth: np.ndarray, connected: np.ndarray, params: np.ndarray,
    primary: np.ndarray,
) -> dict[str, float]:
    """Overall and within-group Kendall tau of one score over one pool of records.

    :param values: float ``[n]`` score values; :param acc: test accuracies; :param depth: conv_depth values;
        :param connected: bool ``[n]``; :param params: parameter counts; :param primary: the search score,
        whose top ties at each budget form the tie groups.
    :returns: tau_all, tau_conn, tau_within_depth (connected records, groups of equal conv_depth) and
        tau_within_top (the records tied at the top of ``primary`` at each distinct budget of the nine).
    """
    v = np.where(np.isfinite(values), values, np.nanmin(np.where(np.isfinite(values), values, np.nan)) - 1.0)
    conn = np.flatnonzero(connected)
    by_depth = [conn[depth[conn] == d] for d in np.unique(depth[conn])]
    top_groups = []
    for budget in np.unique(np.quantile(params, QUANTILES)):
        fits = np.flatnonzero(params <= budget)
        if len(fits):
            top_groups.append(fits[primary[fits] == primary[fits].max()])
    return {
        "tau_all": _tau(v, acc),
        "tau_conn": _tau(v[conn], acc[conn]),
        "tau_within_depth": grouped_kendall_tau(v, acc, by_depth),
        "tau_within_top": grouped_kendall_tau(v, acc, top_groups),
    }


# ---------------------------------------------------------------------------------------------------- report


def _fmt(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def _meets(result: RuleResult) -> bool:
    return (result.mean_pick >= TARGETS["mean_pick"] and result.min_pick >= TARGETS["min_pick"]
            and not np.isnan(result.tau_conn) and result.tau_conn >= TARGETS["tau_conn"])


def plot_picks(
    curves: dict[str, list[float]], path: Path, *, title: str, default: str | None = None,
    band: tuple[list[float], list[float]] | None = None, reference: list[float] | None = None,
) -> Path:
    """Pick percentile against budget, one line per rule (rules with identical curves share a line and a
    label); the default rule is drawn thick and black over the others, with ``band`` (its lowest and highest
    fold) shaded; ``reference`` (a random choice among the ties at the top score) is dashed. The legend sits
    below the axes so that no label covers a line.

    :param curves: per rule label, nine pick percentiles (one per budget quantile).
    """
    plt = pyplot()
    merged: dict[tuple[float, ...], list[str]] = {}
    for label, ys in curves.items():
        merged.setdefault(tuple(round(y, 6) for y in ys), []).append(label)
    fig, ax = plt.subplots(figsize=(8.0, 5.6), dpi=110)
    x = [100 * q for q in QUANTILES]
    markers = "osD^v<>pXh*"
    lows = [min(ys) for ys in merged] + ([min(reference)] if reference else []) + ([min(band[0])] if band else [])
    for i, (ys, labels) in enumerate(merged.items()):
        is_default = default in labels
        text = " = ".join(f"{lb} (default)" if lb == default else lb for lb in labels)
        ax.plot(x, ys, marker=markers[i % len(markers)], markersize=5 if is_default else 4,
                linewidth=2.8 if is_default else 1.3, color="black" if is_default else None,
                zorder=5 if is_default else 3, label=text)
    if band is not None:
        ax.fill_between(x, band[0], band[1], color="0.6", alpha=0.25, zorder=1, label="default: lowest to highest fold")
    if reference is not None:
        ax.plot(x, reference, linestyle="--", color="0.35", linewidth=1.2, zorder=2,
                label="random choice among the ties at the top score (expected)")
    ax.axhline(TARGETS["min_pick"], color="0.5", linestyle=":", linewidth=0.8, zorder=0)
    ax.set_xticks(x)
    ax.set_xlabel("memory budget: quantile of the pool's parameter counts (%)")
    ax.set_ylabel("pick's test-accuracy percentile within budget (%)")
    ax.set_ylim(max(0.0, 5 * np.floor(min(lows) / 5) - 5), 101)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------------- cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench", required=True, help="SpikeNAS-Bench CSV (e.g. spikenas_bench_cifar10_dev.csv)")
    parser.add_argument("--folds", type=non_negative_int, default=5,
                        help="k of the seeded k-fold split (default 5); 0: evaluate the CSV as a whole only")
    parser.add_argument("--split-seed", type=random_seed, default=0, help="seed of the fold split (default 0)")
    parser.add_argument("--search-seed", type=random_seed, default=0,
                        help="seed of the search the study replays (its final rule's draw; default 0, a search's)")
    parser.add_argument("--score", default=None, help="the search's score (default: ScoreConfig's, conv_depth)")
    parser.add_argument("--rules", default=None,
                        help="candidate tie-break rules, e.g. 'threshold_rise,live_skips;live_skips;none' "
                        "(default: the structural rules of spikenas.analyze.selection plus the default)")
    parser.add_argument("--spike-rules", action="store_true",
                        help="also evaluate rules whose tie-breaks run the proxy network (the old default "
                        "depth_skip,hamming), once per weight seed")
    parser.add_argument("--scores", default="",
                        help="comma-separated scores whose overall and within-group tau to report; those that "
                        "run the network are computed on --sample records for each seed of --seeds")
    parser.add_argument("--sample", type=positive_int, default=200, help="records scored with network-running scores")
    parser.add_argument("--values", default=None,
                        help="precomputed values of network-running scores (CSV arch_id,seed,score,value, e.g. "
                        "bench/score_families.py's); their records replace the --sample draw for those scores")
    parser.add_argument("--sample-seed", type=random_seed, default=0, help="seed of the --sample draw")
    parser.add_argument("--seeds", default="0,1,2", help="weight seeds of network-running scores (default 0,1,2)")
    parser.add_argument("--width", type=positive_int, default=16, help="proxy network width (default 16)")
    parser.add_argument("--batch-size", type=kernel_batch, default=64, help="images per scoring batch (default 64)")
    parser.add_argument("--num-batches", type=positive_int, default=1, help="scoring batches per architecture")
    parser.add_argument("--timesteps", type=positive_int, default=5, help="T of the proxy network")
    parser.add_argument("--bn-mode", choices=("train", "eval"), default="train", help="BatchNorm statistics")
    parser.add_argument("--data-dir", default=None, help="folder of cifar10_sample.npz (default: the CSV's folder)")
    parser.add_argument("--cache-dir", default=None, help="probe cache (default OUTPUT_DIR/cache)")
    parser.add_argument("--output-dir", default="selection_out", help="where tables, JSON and the plot go")
    parser.add_argument("--no-plots", action="store_true", help="skip the plot")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")


def _seeds(text: str) -> list[int]:
    try:
        seeds = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError as err:
        raise SpikeNASError(f"--seeds must be comma-separated integers, got {text!r}") from err
    if not seeds:
        raise SpikeNASError(f"--seeds names no seed: {text!r}")
    return seeds


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    start = time.perf_counter()
    for flag in ("width", "batch_size", "num_batches", "timesteps"):
        if getattr(args, flag) < 1:
            raise SpikeNASError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.folds < 0 or args.folds == 1:
        raise SpikeNASError(f"--folds must be 0 (the CSV as a whole) or >= 2, got {args.folds}")
    bench = spikenas_bench.load_bench(args.bench)
    default = ScoreConfig()
    score = args.score or default.name
    if scoring.needs_network(score):
        raise SpikeNASError(f"--score {score!r} runs the network; the study ranks every record of the CSV, so the "
                            "search's score must be structural (network-running scores go in --scores or tie-breaks)")
    seeds = _seeds(args.seeds)
    rules = parse_rules(args.rules) if args.rules else list(STRUCTURAL_RULES)
    if default.tie_break not in rules:
        rules.append(default.tie_break)
    if args.spike_rules:
        rules += [r for r in SPIKE_RULES if r not in rules]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = [FidelitySetting(args.width, args.timesteps, args.batch_size, args.num_batches, args.bn_mode, s)
                for s in seeds]
    table = ScoreTable(bench, settings=settings,
                       data_dir=Path(args.data_dir) if args.data_dir else Path(args.bench).resolve().parent,
                       cache_dir=Path(args.cache_dir) if args.cache_dir else out / "cache")
    if args.values:
        table.load_values(args.values)
    connected = bench.connected()
    folds = kfold(len(bench), args.folds, args.split_seed) if args.folds else []
    pools = {f"fold {i + 1}": rows for i, rows in enumerate(folds)}
    pools["all"] = np.arange(len(bench), dtype=np.int64)

    # Every rule on every pool (rules with network-running tie-breaks: once per seed).
    t0 = time.perf_counter()
    results: dict[str, dict[str, list[RuleResult]]] = {}  # rule label -> pool -> results (one per seed)
    for rule in rules:
        label = rule_label(rule)
        rule_seeds = seeds if any(table.runs(n) for n in rule) else [0]
        results[label] = {
            pool: [evaluate_rule(bench, rows, rule, table, score=score, seed=s, search_seed=args.search_seed,
                                 connected=connected)
                   for s in rule_seeds]
            for pool, rows in pools.items()
        }
    t_rules = time.perf_counter() - t0

    # Cross-fold choice: for each fold, the rule chosen on the others, measured on it.
    choices = []
    fold_names = [f"fold {i + 1}" for i in range(len(folds))]
    per_fold = {label: [by_pool[f] for f in fold_names] for label, by_pool in results.items()}
    for held, name in enumerate(fold_names):
        train = [i for i in range(len(folds)) if i != held]
        chosen = choose_rule(per_fold, train)
        measured = results[chosen][name] if chosen else []
        choices.append({
            "held_out": name, "chosen_on": [fold_names[i] for i in train], "rule": chosen,
            "mean_pick": float(np.mean([r.mean_pick for r in measured])) if measured else None,
            "min_pick": float(np.min([r.min_pick for r in measured])) if measured else None,
            "expected_mean_pick": float(np.mean([r.mean_random_smallest for r in measured])) if measured else None,
            "expected_min_pick": (float(min(p.random_smallest for r in measured for p in r.picks))
                                  if measured else None),
            "tau_conn": float(np.mean([r.tau_conn for r in measured])) if measured else None,
            "meets_targets": bool(measured) and all(_meets(r) for r in measured),
        })
    on_all = choose_rule(per_fold, range(len(folds))) if folds else None  # the default the folds support
    primary = table.structural(score)
    score_tau = {pool: _tau(primary[rows][connected[rows]], bench.test_acc[rows][connected[rows]])
                 for pool, rows in pools.items()}

    # Scores: overall and within-group tau per pool.
    score_rows = _score_figures(args, bench, table, pools, score, seeds, connected)

    default_label = rule_label(default.tie_break)
    md = _markdown(args, bench, score, default_label, pools, results, choices, score_rows, connected, score_tau)
    if folds:
        md += (f"\nRule chosen on all {len(folds)} folds together (the default the folds support): "
               f"{on_all or 'none qualifies'}; the search's default: {default_label}.\n")
    plots = []
    if not args.no_plots:
        plotted = fold_names or ["all"]

        def per_budget(by_pool: dict[str, list[RuleResult]], attr: str = "percentile") -> np.ndarray:
            """float ``[pools x seeds, 9]``: one row of nine budget figures per plotted pool and seed."""
            return np.array([[getattr(p, attr) for p in r.picks] for pool in plotted for r in by_pool[pool]])

        curves = {label: per_budget(by_pool).mean(axis=0).tolist() for label, by_pool in results.items()}
        curves = dict(sorted(curves.items(), key=lambda kv: -float(np.mean(kv[1]))))
        default_rows = per_budget(results[default_label])
        band = (default_rows.min(axis=0).tolist(), default_rows.max(axis=0).tolist()) if len(plotted) > 1 else None
        reference = per_budget(results[default_label], "random_top").mean(axis=0).tolist()
        where = f"mean over the {len(plotted)} folds" if folds else "the whole CSV"
        plots.append(plot_picks(curves, out / "selection_pick_percentile.png", default=default_label, band=band,
                                reference=reference,
                                title=f"{Path(args.bench).name}: pick percentile per tie-break rule after score "
                                f"{score} ({where})").name)
    write_text(out / "selection.md", md)
    write_json(out / "selection.json", {
        "config": {**vars(args), "score": score, "rules": [list(r) for r in rules], "seeds": seeds,
                   "quantiles": list(QUANTILES), "final_rule": FINAL_RULE_DOC,
                   "settings": [asdict(s) for s in settings]},
        "seed": args.split_seed,
        "versions": versions(),
        "score_tau_conn": score_tau,
        "timings": {"rules_s": t_rules, "network_scores_s": table.run_seconds,
                    "total_s": time.perf_counter() - start},
        "num_records": len(bench),
        "num_connected": int(connected.sum()),
        "default_rule": default_label,
        "pools": {pool: {"records": int(len(rows)),
                         "rules": {label: [r.to_json() for r in by_pool[pool]] for label, by_pool in results.items()}}
                  for pool, rows in pools.items()},
        "cross_fold": choices,
        "chosen_on_all_folds": on_all,
        "scores": score_rows,
        "plots": plots,
    })
    print(md)
    print(f"written: {out / 'selection.md'}, selection.json, {len(plots)} plot(s)")
    return 0


def _score_figures(
    args: argparse.Namespace, bench: spikenas_bench.BenchRecords, table: ScoreTable, pools: dict[str, np.ndarray],
    score: str, seeds: list[int], connected: np.ndarray,
) -> list[dict]:
    """Per score in ``--scores`` and pool: overall and within-group tau (per seed, with the spread between seeds,
    for scores that run the network, on the pool's records in the ``--sample`` draw)."""
    names = [n.strip() for n in args.scores.split(",") if n.strip()]
    if not names:
        return []
    given = [n for n in names if n in table.preloaded]
    rest = [n for n in names if n not in table.preloaded]
    names = [*(resolve_scores(",".join(rest)) if rest else []), *given]
    depth = table.structural("conv_depth")
    primary = table.structural(score)
    sample = None
    if any(table.runs(n) and n not in table.preloaded for n in names):
        if not 2 <= args.sample <= len(bench):
            raise SpikeNASError(f"--sample must be in 2..{len(bench)}, got {args.sample}")
        sample = np.sort(np.random.default_rng(args.sample_seed).permutation(len(bench))[: args.sample])
        for s in seeds:
            table.ensure([n for n in names if table.runs(n)], sample, s)
    rows_out = []
    for name in names:
        runs = table.runs(name)
        for pool, rows in pools.items():
            rows_here = rows if not runs else np.intersect1d(
                rows, table.known_rows(name, seeds) if name in table.preloaded else sample)
            if len(rows_here) < 2:
                continue
            per_seed = []
            for s in seeds if runs else [0]:
                values = table.column(name, rows_here, s)
                per_seed.append(within_group_figures(values, bench.test_acc[rows_here], depth[rows_here],
                                                     connected[rows_here], bench.params[rows_here],
                                                     primary[rows_here]))
            row = {"score": name, "pool": pool, "records": int(len(rows_here)), "seeds": seeds if runs else None}
            for key in per_seed[0]:
                vals = np.array([d[key] for d in per_seed], dtype=np.float64)
                row[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
                row[key + "_spread"] = float(np.nanmax(vals) - np.nanmin(vals)) if np.isfinite(vals).any() else 0.0
                row[key + "_per_seed"] = vals.tolist()
            rows_out.append(row)
    return rows_out


def _markdown(
    args: argparse.Namespace, bench: spikenas_bench.BenchRecords, score: str, default_label: str,
    pools: dict[str, np.ndarray], results: dict[str, dict[str, list[RuleResult]]], choices: list[dict],
    score_rows: list[dict], connected: np.ndarray, score_tau: dict[str, float],
) -> str:
    names = list(pools)
    lines = [
        f"# Selection on {Path(args.bench).name}",
        "",
        f"{len(bench)} records ({int(connected.sum())} connected); score {score}; "
        + (f"{len(names) - 1} folds (split seed {args.split_seed}) and the whole CSV" if len(names) > 1
           else "the whole CSV") + "; budgets: the 10 %, ..., 90 % quantiles of each pool's params column; "
        f"final rule: {FINAL_RULE_DOC}.",
        "",
        "## Rules on every pool",
        "",
        "Each cell: mean pick percentile over the nine budgets / lowest budget's / Kendall tau-b of the complete "
        "ordering over connected records (n/a when a tie-break runs the network). Rules that run the network: "
        "mean over seeds, the spread between seeds in brackets.",
        "",
        "| rule | " + " | ".join(names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for label, by_pool in results.items():
        cells = []
        for pool in names:
            rs = by_pool[pool]
            means = [r.mean_pick for r in rs]
            mins = [r.min_pick for r in rs]
            spread = f" [{max(means) - min(means):.1f}]" if len(rs) > 1 else ""
            cells.append(f"{np.mean(means):.1f}{spread} / {np.mean(mins):.1f} / {_fmt(rs[0].tau_conn, 3)}")
        name = f"**{label}** (default)" if label == default_label else label
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    any_rule = next(iter(results.values()))
    lines.append("| random among the ties at the top score | " + " | ".join(
        f"{any_rule[pool][0].mean_random_top:.1f} / {min(p.random_top for p in any_rule[pool][0].picks):.1f} / "
        f"{_fmt(score_tau[pool], 3)}" for pool in names) + " |")
    lines += ["", "## The final rule against a random choice among the ties the tie-breaks leave", "",
              "Each cell: mean over the nine budgets of the pick's percentile (the final rule's seeded draw) / the "
              "expected percentile of the final rule (a uniform draw among the tied with the fewest parameters) / "
              "of a uniform draw among all the tied / the first seen among the tied with the fewest parameters.",
              "", "| rule | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for label, by_pool in results.items():
        cells = [f"{np.mean([r.mean_pick for r in by_pool[p]]):.1f} / "
                 f"{np.mean([r.mean_random_smallest for r in by_pool[p]]):.1f} / "
                 f"{np.mean([r.mean_random_remaining for r in by_pool[p]]):.1f} / "
                 f"{np.mean([r.mean_first_seen for r in by_pool[p]]):.1f}" for p in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Within-tie Kendall tau of each tie-break (pooled over the distinct budgets)", "",
              "| rule | tie-break | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 2)]
    for label, by_pool in results.items():
        for name in next(iter(by_pool.values()))[0].within_tie:
            cells = []
            for pool in names:
                vals = [r.within_tie[name] for r in by_pool[pool]]
                cells.append(_fmt(float(np.mean(vals)), 3) + (f" [{np.ptp(vals):.3f}]" if len(vals) > 1 else ""))
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    if choices:
        lines += ["", "## Chosen on the other folds, measured on the held-out one", "",
                  f"Targets per held-out fold: mean pick >= {TARGETS['mean_pick']:.0f}, every budget >= "
                  f"{TARGETS['min_pick']:.0f}, tau-b over connected records >= {TARGETS['tau_conn']:.2f}.", "",
                  "Pick: the search's own choice (seed 0); expected: the final rule's draw taken at random.", "",
                  "| held-out fold | rule chosen on the other folds | mean pick | lowest budget | expected mean | "
                  "expected lowest | tau-b conn | targets met |", "|---|---|---|---|---|---|---|---|"]
        for c in choices:
            met = "yes" if c["meets_targets"] else "no"
            lines.append(f"| {c['held_out']} | {c['rule'] or 'none qualifies'} | {_fmt(c['mean_pick'])} | "
                         f"{_fmt(c['min_pick'])} | {_fmt(c['expected_mean_pick'])} | {_fmt(c['expected_min_pick'])} | "
                         f"{_fmt(c['tau_conn'], 3)} | {met} |")
    lines += ["", f"## Picks of the default rule ({default_label})", "",
              "| pool | budget quantile | budget (params) | in budget | tied at top | tied after tie-breaks | "
              "decided by | arch_id | test acc (%) | percentile |", "|" + "---|" * 10]
    for pool in names:
        for p in results[default_label][pool][0].picks:
            lines.append(f"| {pool} | {p.quantile:.1f} | {p.budget:,.0f} | {p.in_budget} | {p.tied_at_top} | "
                         f"{p.tied_after_tie_breaks} | {p.decided_by} | {p.arch_id} | {p.test_acc:.2f} | "
                         f"{p.percentile:.1f} |")
    if score_rows:
        lines += ["", "## Scores: overall and within-group Kendall tau", "",
                  "Within depth: pairs of connected records of equal conv_depth; within top: pairs of records tied at "
                  "the top score at a budget (distinct budgets pooled). Scores that run the network: on the "
                  f"{args.sample}-record sample (seed {args.sample_seed}), or on the records of --values, mean over "
                  "seeds [spread].", "",
                  "| score | pool | records | tau all | tau conn | tau within depth | tau within top |",
                  "|---|---|---|---|---|---|---|"]
        for row in score_rows:
            def cell(key: str, row: dict = row) -> str:
                spread = f" [{row[key + '_spread']:.3f}]" if row["seeds"] else ""
                return _fmt(row[key], 3) + spread

            lines.append(f"| {row['score']} | {row['pool']} | {row['records']} | {cell('tau_all')} | "
                         f"{cell('tau_conn')} | {cell('tau_within_depth')} | {cell('tau_within_top')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (the study is normally run through ``python -m spikenas.analyze``)."""
    from spikenas.argparsing import main_guard

    parser = Parser(prog="selection", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return main_guard(lambda: run(args))

