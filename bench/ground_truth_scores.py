"""Training-free scores of the trained ground truth's records (``python -m spikenas.analyze ground_truth``), over
several weight seeds, computed exactly as a Fashion-MNIST search computes them.

Each record of a ground-truth table (``2O-1cell.csv``, ``3O-1cell.csv``, ``3O-2cell.csv``: cells decoded from
``arch_id`` and ``op_set``, one cell per ``op..`` column group) is scored as a candidate of
``python -m spikenas search --dataset fashion-mnist --fast --ops <op_set> --cells <cells> --score <name>``: the
``--fast`` proxy network (:data:`spikenas.nas.PRESETS`) on the search's scoring batch (Fashion-MNIST training
images drawn with seed 0), through the evaluator such a search builds (:meth:`ModeOptions.make_evaluator`), with
its weights seeded by each weight seed of ``--seeds`` (weight seed 0 is the search's own value). Disconnected
records get the search's ``-inf``; every value is written as the score returns it (``nan``, ``-inf`` included;
a reader ranks them with :func:`spikenas.analyze.fidelity.finite_for_ranking`).

Rows ``arch_id,seed,score,value`` are appended, one record and seed at a time, to one long CSV per table (the
format of ``ScoreTable.load_values``; default ``<table>_scores.csv`` beside the table); a rerun skips every
(arch_id, seed, score) already written, so it picks up records a growing table gained since. The run's
configuration, versions and seconds per record per score go to ``<output>.json``. ``--summary`` prints, per
score, Kendall tau-b against the table's test accuracy.

    python bench/ground_truth_scores.py --tables /work/gt/fm/3O-1cell.csv --output /work/gt/fm/3O-1cell_scores.csv
    python bench/ground_truth_scores.py --tables gt/2O-1cell.csv gt/3O-1cell.csv --scores sahd,zico --seeds 0,1
    python bench/ground_truth_scores.py --tables gt/3O-1cell.csv --summary
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from score_families import FIELDS, append_rows, read_rows

from spikenas import scoring
from spikenas.analyze.fidelity import finite_for_ranking
from spikenas.argparsing import Parser, check_output_path, main_guard, positive_int, random_seed
from spikenas.errors import SpikeNASError
from spikenas.nas import PRESETS, prepare
from spikenas.nas.engine import Evaluator
from spikenas.nas.request import SearchRequest
from spikenas.results import versions, write_json
from spikenas.scoring import ScoreConfig
from spikenas.space import Genotype
from spikenas.spikenas_bench import load_bench
from spikenas.stats import kendall_tau

DATASET = "fashion-mnist"
EXCLUDED = {"short_training": "it trains the network (not training-free)"}


def network_scores() -> list[str]:
    """Registered scores that run the network, but those of :data:`EXCLUDED`, in registry order."""
    return [n for n in scoring.list_scores() if scoring.needs_network(n) and n not in EXCLUDED]


@dataclass(frozen=True)
class Table:
    """The records of one ground-truth CSV: their op set, cells per network and ids (distinct, in file order)."""

    path: Path
    op_set: str
    num_cells: int
    arch_ids: tuple[int, ...]
    cells: dict[int, tuple[Genotype, ...]]  # arch_id -> one genotype per cell position
    test_acc: dict[int, float]  # arch_id -> test accuracy (%)


def read_table(path: str | Path) -> Table:
    """The records of ground-truth table ``path`` (read and checked by :func:`spikenas.spikenas_bench.load_bench`).

    :raises SpikeNASError: a missing file or column, several op sets, a malformed number, or an ``arch_id`` that
        disagrees with its op columns.
    """
    bench = load_bench(path)
    ids = tuple(int(a) for a in bench.arch_id)
    return Table(Path(path), bench.op_set, bench.cell_columns, tuple(dict.fromkeys(ids)),
                 dict(zip(ids, bench.networks(), strict=True)),
                 dict(zip(ids, bench.test_acc.tolist(), strict=True)))


def search_request(op_set: str, num_cells: int, data_dir: str | None = None) -> SearchRequest:
    """The request of ``python -m spikenas search --dataset fashion-mnist --fast --ops op_set --cells num_cells``."""
    fields = {**PRESETS["fast"], "dataset": DATASET, "op_set": op_set, "num_cells": num_cells}
    if data_dir is not None:
        fields["data_dir"] = data_dir
    return SearchRequest.from_fields(**fields)


class TableScorer:
    """The search's evaluators of one table's networks, one per (score, weight seed), on the search's batch."""

    def __init__(self, table: Table, scores: list[str], seeds: list[int], data_dir: str | None = None) -> None:
        self.request = search_request(table.op_set, table.num_cells, data_dir)
        self.macro, self.batches = prepare(self.request.macro, self.request.data, seed=self.request.seed)
        self.evaluators: dict[tuple[str, int], Evaluator] = {
            (name, seed): self.request.mode.make_evaluator(
                self.macro, self.batches, ScoreConfig(name=name, tie_break=()), seed=seed
            )
            for name in scores
            for seed in seeds
        }

    def score(self, cells: tuple[Genotype, ...], name: str, seed: int) -> tuple[float, str]:
        """The search's score ``name`` of the network with ``cells`` and weight seed ``seed``, and its status."""
        record = self.evaluators[(name, seed)].evaluate(cells)
        return float(record.score), record.status


def build_parser() -> Parser:
    p = Parser(prog="python bench/ground_truth_scores.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", nargs="+", required=True, help="ground-truth CSVs (one arch_id space each)")
    p.add_argument("--output", nargs="+", default=None, dest="outputs",
                   help="one values CSV per table (default: <table>_scores.csv beside each table)")
    p.add_argument("--scores", default=None,
                   help="comma-separated scores (default: every registered score that runs the network "
                   "but short_training)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated weight seeds (default 0,1,2)")
    p.add_argument("--limit", type=positive_int, default=None, help="score only the first N records of each table")
    p.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files (default: Debian's)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--summary", action="store_true", help="print Kendall tau-b of each score vs test accuracy")
    return p


def parse_scores(text: str | None) -> list[str]:
    """The scores ``--scores`` names (default :func:`network_scores`), each checked to run the network."""
    if text is None:
        return network_scores()
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise SpikeNASError(f"--scores names no score: {text!r}")
    for name in names:
        scoring.get_score(name)  # an unknown name: one line listing the registered scores
        if name in EXCLUDED:
            raise SpikeNASError(f"--scores: {name} is left out: {EXCLUDED[name]}")
        if not scoring.needs_network(name):
            raise SpikeNASError(f"--scores: {name} reads the cells only (no network, no weight seed); "
                                f"choose among {network_scores()}")
    return names


def parse_seeds(text: str) -> list[int]:
    """The weight seeds of ``--seeds`` (comma-separated, distinct, each a valid seed)."""
    try:
        seeds = [random_seed(s.strip()) for s in text.split(",") if s.strip()]
    except Exception as err:  # argparse's type errors: ArgumentTypeError or ValueError
        raise SpikeNASError(f"--seeds {text!r}: {err}") from None
    if not seeds:
        raise SpikeNASError(f"--seeds names no seed: {text!r}")
    return list(dict.fromkeys(seeds))


def output_paths(tables: list[str], outputs: list[str] | None) -> list[Path]:
    """One values CSV per table: ``outputs`` in order, or ``<table stem>_scores.csv`` beside each table."""
    if outputs is None:
        return [check_output_path(Path(t).with_name(Path(t).stem + "_scores.csv")) for t in tables]
    if len(outputs) != len(tables):
        raise SpikeNASError(f"--output gives {len(outputs)} file(s) for {len(tables)} table(s): give one per table")
    paths = [check_output_path(o) for o in outputs]
    clash = sorted({str(o) for o in paths if o.resolve() in {Path(t).resolve() for t in tables}})
    if clash or len({o.resolve() for o in paths}) != len(paths):
        raise SpikeNASError(f"--output must name distinct files other than the tables, got {outputs}")
    return paths


def score_table(table: Table, output: Path, scores: list[str], seeds: list[int], *, limit: int | None,
                data_dir: str | None) -> dict:
    """Append the rows of ``table``'s records missing from ``output``; returns what was done and its seconds."""
    arch_ids = table.arch_ids[:limit]
    done = {(int(r["arch_id"]), int(r["seed"]), r["score"]) for r in read_rows(output)}
    todo = {a: [(s, n) for s in seeds for n in scores if (a, s, n) not in done] for a in arch_ids}
    todo = {a: pairs for a, pairs in todo.items() if pairs}
    report = {"table": str(table.path), "output": str(output), "op_set": table.op_set, "num_cells": table.num_cells,
              "records": len(arch_ids), "records_scored": len(todo), "rows_written": 0, "statuses": {},
              "seconds": {}}
    if not todo:
        return report
    start = time.perf_counter()
    scorer = TableScorer(table, scores, seeds, data_dir)
    report["macro"] = scorer.macro.to_dict()
    report["request"] = scorer.request.to_dict()
    report["prepare_s"] = time.perf_counter() - start
    seconds: dict[str, float] = {}
    statuses: dict[str, int] = {}
    for i, arch_id in enumerate(todo, start=1):
        for seed in seeds:
            rows = []
            for name in (n for s, n in todo[arch_id] if s == seed):
                t0 = time.perf_counter()
                value, status = scorer.score(table.cells[arch_id], name, seed)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
                statuses[status] = statuses.get(status, 0) + 1
                rows.append((arch_id, seed, name, repr(value)))
            if rows:
                append_rows(output, rows)
                report["rows_written"] += len(rows)
        print(f"{table.path.name}: {i}/{len(todo)} records scored in {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)
    pairs = {n: sum(1 for pairs in todo.values() for _, m in pairs if m == n) for n in scores}
    report["seconds"] = {n: {"total": s, "per_record_seed": s / pairs[n]} for n, s in seconds.items()}
    report["statuses"] = statuses
    report["score_s"] = time.perf_counter() - start
    return report


def summary(table: Table, output: Path) -> None:
    """Print, per score of ``output``, Kendall tau-b vs the table's test accuracy: over all records and over
    connected ones, of the seed-mean value (non-finite values below every finite one, per seed) and per seed."""
    rows = read_rows(output)
    if not rows:
        raise SpikeNASError(f"{output} holds no rows")
    values: dict[str, dict[int, dict[int, float]]] = {}
    for r in rows:
        values.setdefault(r["score"], {}).setdefault(int(r["seed"]), {})[int(r["arch_id"])] = float(r["value"])
    print(f"{table.path.name}: score | seeds | records (connected) | tau all (seed-mean) | tau connected (seed-mean) "
          "| tau connected per seed")
    for name, by_seed in values.items():
        seeds = sorted(by_seed)
        archs = sorted(set.intersection(*(set(v) for v in by_seed.values())) & set(table.test_acc))
        if len(archs) < 2:
            continue
        acc = np.array([table.test_acc[a] for a in archs])
        conn = np.array([all(g.is_connected() for g in table.cells[a]) for a in archs])
        per_seed = np.stack([finite_for_ranking(np.array([by_seed[s][a] for a in archs])) for s in seeds])
        mean = per_seed.mean(axis=0)
        print(f"{name} | {len(seeds)} | {len(archs)} ({conn.sum()}) | {_tau(mean, acc):.3f} | "
              f"{_tau(mean[conn], acc[conn]):.3f} | " + " ".join(f"{_tau(v[conn], acc[conn]):.3f}" for v in per_seed))


def _tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-b; NaN for fewer than two records or a constant side."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return kendall_tau(x, y)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scores, seeds = parse_scores(args.scores), parse_seeds(args.seeds)
    tables = [read_table(t) for t in args.tables]
    outputs = output_paths(args.tables, args.outputs)
    if args.summary:
        for table, output in zip(tables, outputs, strict=True):
            summary(table, output)
        return 0
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        score_tables(args, tables, outputs, scores, seeds)
    finally:
        torch.set_num_threads(threads)
    return 0


def score_tables(
    args: argparse.Namespace, tables: list[Table], outputs: list[Path], scores: list[str], seeds: list[int]
) -> None:
    """:func:`score_table` for each table, with a line of figures and ``<output>.json`` for each."""
    for table, output in zip(tables, outputs, strict=True):
        start = time.perf_counter()
        report = score_table(table, output, scores, seeds, limit=args.limit, data_dir=args.data_dir)
        per = {n: round(s["per_record_seed"], 4) for n, s in report["seconds"].items()}
        print(f"{table.path.name}: {report['records_scored']} of {report['records']} records scored, "
              f"{report['rows_written']} rows appended to {output} in {time.perf_counter() - start:.1f} s; "
              f"statuses {report['statuses']}; seconds per record and seed: {per}")
        if report["rows_written"]:
            write_json(output.with_suffix(".json"), {
                "config": {"table": str(table.path), "output": str(output), "scores": scores, "seeds": seeds,
                           "limit": args.limit, "data_dir": args.data_dir, "threads": args.threads,
                           "dataset": DATASET, "data_seed": report["request"]["seed"], "columns": list(FIELDS)},
                "seed": seeds, "versions": versions(), "timings": {"command_s": time.perf_counter() - start},
                "run": report,
            })


if __name__ == "__main__":
    sys.exit(main_guard(main))
