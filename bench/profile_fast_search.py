"""Where fast Alg. 1's time goes: cProfile of one search at bench/search_time.py's configuration.

Builds the data, macro and :class:`~spikenas.nas.fast.SharedEvaluator` as bench/search_time.py
does (cifar10-sample resized to 8x8, width 8, hidden 64, T 5, B 256 x 2 batches, op set 3O, 2 cells,
score sahd, proxy batch 16, re-scoring rounds of 5 % until the best 10 settle), warms up, then
times ``--repeats`` plain runs (wall time, no profiler) and profiles one more under cProfile. The
profile's self time (``tottime``) is put in categories:

* ``forward: conv/linear/pool``, ``forward: BN`` (torch's train-mode BatchNorm), ``forward: LIF``
  (spikingjelly's neuron code or :func:`spikenas.nas.stacked.lif_spikes`, with the torch
  element-wise ops they call);
* ``bit packing`` (the copy of spikes into the kernel's layout and the packing wrapper),
  ``Gram/Hamming`` (the popcount kernels, packing inside them included), ``log-det``;
* ``BN handling``: the grouped BatchNorm's per-candidate weight copies and reshapes;
* ``tensor glue``: other torch ops (stacking, selecting, index_add, node and kernel sums);
* ``Python overhead``: module calls, hooks, reset_net, caches, bookkeeping (Python self time;
  a tensor ``+`` written as an operator counts here, cProfile does not see it);
* ``other``: what fits nowhere above.

Torch ops with no category of their own are attributed to the category of the function that
called them.

    python bench/profile_fast_search.py --repeats 3 --markdown profile.md
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch

from spikenas.argparsing import Parser, main_guard
from spikenas.data import load_dataset
from spikenas.nas import consecutive_search
from spikenas.nas.engine import Evaluator
from spikenas.nas.fast import FastConfig, SharedEvaluator
from spikenas.nas.space_api import CellSpace
from spikenas.network import MacroConfig
from spikenas.scoring import ScoreConfig
from spikenas.space import Genotype

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CATEGORIES = (
    "forward: conv/linear/pool", "forward: BN", "forward: LIF", "bit packing", "Gram/Hamming", "log-det",
    "BN handling", "tensor glue", "Python overhead", "other",
)
# Functions whose self time is one category: (category, file fragment or "" for builtins, name fragment).
_RULES: tuple[tuple[str, str, str], ...] = (
    ("forward: conv/linear/pool", "", "conv2d"),
    ("forward: conv/linear/pool", "", "linear"),
    ("forward: conv/linear/pool", "", "avg_pool"),
    ("forward: conv/linear/pool", "", "max_pool"),
    ("BN handling", "stacked.py", "grouped_batch_norm"),
    ("forward: BN", "", "batch_norm"),
    ("forward: LIF", "spikingjelly", ""),
    ("forward: LIF", "stacked.py", "lif_spikes"),
    ("bit packing", "", "spike_bits"),
    ("bit packing", "", "pack_bits"),
    ("bit packing", "stacked.py", "stacked_gram"),
    ("Gram/Hamming", "", "spike_gram"),
    ("Gram/Hamming", "", "hamming_gram"),
    ("log-det", "", "slogdet"),
    ("log-det", "fast.py", "_logdets"),
    ("BN handling", "", "set_bn_mode"),
)
# Builtins without a rule take the category of their caller when it has one (the element-wise ops
# of a LIF step, the weight copies of the grouped BatchNorm, the spike copy before packing), else
# ``tensor glue`` for torch tensor operations and ``Python overhead`` for the rest.
_OWN = {"forward: LIF", "bit packing", "log-det", "BN handling"}


def _rule(func: tuple[str, int, str]) -> str | None:
    file, _, name = func
    label = name if file == "~" else f"{file}:{name}"
    for cat, where, what in _RULES:
        if (not where or where in file) and (not what or what in label):
            return cat
    return None


def _is_torch_op(name: str) -> bool:
    return "torch" in name or "Tensor" in name


def categorize(stats: pstats.Stats) -> dict[str, float]:
    """cProfile self time (s) per category, builtins split over their callers."""
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for func, (_, _, tottime, _, callers) in stats.stats.items():
        cat = _rule(func)
        if cat is not None:
            totals[cat] += tottime
            continue
        file, _, name = func
        if file != "~":
            totals["Python overhead" if "python3" in file or "spikenas" in file else "other"] += tottime
            continue
        fallback = "tensor glue" if _is_torch_op(name) else "Python overhead"
        split = sum(c[2] for c in callers.values())
        for caller, (_, _, tt, _) in callers.items():
            owner = _rule(caller)
            totals[owner if owner in _OWN else fallback] += tt
        totals[fallback] += tottime - split  # calls from callers cProfile did not see
    return totals


def build(args) -> tuple[MacroConfig, list[torch.Tensor], ScoreConfig, FastConfig]:
    """Data, macro, score and fast options as bench/search_time.py builds them."""
    dataset = load_dataset("cifar10-sample", data_dir=args.data_dir)
    batches = dataset.batches(args.batch_size, args.num_batches, seed=args.seed, input_size=args.input_size)
    macro = MacroConfig(num_cells=2, width=args.width, timesteps=args.timesteps, in_channels=3,
                        input_size=args.input_size, num_classes=10, hidden=args.hidden)
    fast = FastConfig(proxy_batch=args.proxy_batch, rescore_fraction=args.rescore_fraction, race_top=args.race_top)
    return macro, batches, ScoreConfig(name="sahd"), fast


def search(macro, batches, score, fast, args):
    evaluator = SharedEvaluator(macro, batches, score, seed=args.seed, fast=fast)
    return consecutive_search(CellSpace(evaluator.config, op_set=args.op_set), evaluator, progress=False)


def build_parser() -> Parser:
    p = Parser(prog="python bench/profile_fast_search.py", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(SHARED_DATA), help="folder of cifar10_sample.npz (default ../shared/data)")
    p.add_argument("--input-size", type=int, default=8, help="images resized to this (default 8)")
    p.add_argument("--width", type=int, default=8, help="channels of the first cell (default 8)")
    p.add_argument("--hidden", type=int, default=64, help="units of the head's first Linear (default 64)")
    p.add_argument("--timesteps", type=int, default=5, help="T (default 5)")
    p.add_argument("--batch-size", type=int, default=256, help="B (default 256)")
    p.add_argument("--num-batches", type=int, default=2, help="batches per score (default 2)")
    p.add_argument("--op-set", default="3O", help="op set (default 3O)")
    p.add_argument("--proxy-batch", type=int, default=16, help="proxy batch (default 16)")
    p.add_argument("--rescore-fraction", type=float, default=0.05, help="a round of re-scoring (default 0.05)")
    p.add_argument("--race-top", type=int, default=10, help="re-score until the best K settle (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="plain timed runs before the profiled one (default 3)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--top", type=int, default=25, help="functions listed by self time (default 25)")
    p.add_argument("--seed", type=int, default=0, help="data and weight seed (default 0)")
    p.add_argument("--markdown", help="also write the summary to this Markdown file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        macro, batches, score, fast = build(args)
        # one-off costs (spikingjelly's first LIF call, allocator warm-up) before any timing
        Evaluator(macro, batches[:1], score, seed=args.seed).evaluate((Genotype.from_index(1, "3O"),) * 2)
        search(macro, batches, score, fast, args)
        walls = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = search(macro, batches, score, fast, args)
            walls.append(time.perf_counter() - start)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        result = search(macro, batches, score, fast, args)
        profiler.disable()
        profiled = time.perf_counter() - start
        stats = pstats.Stats(profiler)
        totals = categorize(stats)
        rows = []
        for func, (_, ncalls, tottime, cumtime, _) in stats.stats.items():
            rows.append((tottime, ncalls, cumtime, _rule(func) or "", pstats.func_std_string(func)))
        rows.sort(reverse=True)
        total = sum(totals.values())
        c = result.counters
        lines = [
            f"cifar10-sample {args.input_size}x{args.input_size}, width {args.width}, hidden {args.hidden}, "
            f"T {args.timesteps}, B {args.batch_size} x {args.num_batches}, {args.op_set}, proxy {args.proxy_batch}, "
            f"rescore {args.rescore_fraction}, race top {args.race_top}, {torch.get_num_threads()} thread(s)",
            f"pick {[str(g) for g in result.best.cells]} score {result.best.score:.6f}; "
            f"{c.scored} full, {c.screened} proxy-only, {c.disconnected} disconnected, {c.memo_hits} memo hits",
            f"wall s without profiler: {', '.join(f'{w:.3f}' for w in walls)} (median "
            f"{statistics.median(walls):.3f})" if walls else "",
            f"wall s under cProfile: {profiled:.3f} (profiler overhead included; categories below are cProfile "
            "self time)",
            "",
            "| category | self s | share |",
            "|---|---:|---:|",
            *[f"| {cat} | {t:.3f} | {t / total:.1%} |" for cat, t in totals.items()],
            f"| total | {total:.3f} | 100% |",
            "",
            f"Top {args.top} functions by self time:",
            "",
            "| self s | calls | cum s | own category | function |",
            "|---:|---:|---:|---|---|",
            *[f"| {t:.3f} | {n} | {cu:.3f} | {cat} | `{name}` |" for t, n, cu, cat, name in rows[: args.top]],
        ]
        text = "\n".join(lines)
        print(text)
        if args.markdown:
            Path(args.markdown).write_text(text + "\n")
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
