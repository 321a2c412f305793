"""Search time, side by side in one run, against a frozen SNASNet reference: SNASNet's random search as
bench/snasnet_reference.py implements it (torch and spikingjelly only, no spikenas code), the project's
exact random search, SpikeNAS Alg. 1 exact and Alg. 1 fast.

Every search-time ratio has the frozen reference as its numerator, so a change to the project's own
exact path or random search cannot move the denominator of the headline. All procedures use the same
data, width, T, batch size, thread count and machine. Both random searches (5O, the same cell
everywhere, each sample built and scored) are timed on ``--random-timed`` samples and extrapolated
linearly to ``--random-samples``; the output states the factor. Exact Alg. 1 builds a fresh
per-edge-seeded network per candidate; fast Alg. 1 shares work, ranks each pass on a proxy batch and
re-scores down that ranking in rounds until the best ``--race-top`` settle (spikenas.nas.fast).
Agreement: Kendall tau between exact and fast over the candidates both scored at full size, tau of the
proxy ranking against exact, exact's top-k found and ordered alike, same pick. ``--budget-run``
repeats exact and fast under a budget that prunes the same fraction of cells as the paper's 1.2M
parameters do for CIFAR-10 at a paper-like width (stated in the output).

Floors: the run exits with status 1 and one line naming the ratio when the frozen reference's time
per scored sample over the project's exact random search's falls below ``--min-reference-ratio`` (the
project's exact scoring regressed), or frozen random-N over fast Alg. 1 below ``--min-fast-ratio``.
The JSON result is written first either way.

    python bench/search_time.py --output bench_search_time.json
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import snasnet_reference
import torch

from spikenas.argparsing import Parser, main_guard
from spikenas.data import load_dataset
from spikenas.errors import SpikeNASError
from spikenas.memory import Budget, enumerate_params
from spikenas.nas import consecutive_search, random_search
from spikenas.nas.engine import Evaluator
from spikenas.nas.fast import FastConfig, SharedEvaluator
from spikenas.nas.space_api import CellSpace
from spikenas.network import MacroConfig
from spikenas.results import versions, write_json
from spikenas.scoring import ScoreConfig
from spikenas.space import Genotype
from spikenas.stats import kendall_tau

PAPER_BUDGET = 1.2e6  # SpikeNAS's CIFAR-10 budget in parameters
PAPER_LIKE = dict(num_cells=2, width=48, hidden=128, input_size=32, in_channels=3, num_classes=10)


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Floors, from runs on the shared 2-core development machine (docs/results/search_time/frozen_baseline.md:
# frozen / project per sample 0.66x at B 256 and 1.15x at B 64; frozen random-5000 / fast 180x with op set 2O),
# with margin for the load of other processes.
MIN_REFERENCE_RATIO = 0.4  # frozen reference / project exact random search, seconds per scored sample
MIN_FAST_RATIO = 20.0  # frozen random-N / fast Alg. 1, wall seconds


def build_parser() -> Parser:
    p = Parser(prog="python bench/search_time.py", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(SHARED_DATA), help="folder of cifar10_sample.npz (default ../shared/data)")
    p.add_argument("--input-size", type=int, default=8, help="images resized to this (default 8)")
    p.add_argument("--width", type=int, default=8, help="channels of the first cell (default 8)")
    p.add_argument("--hidden", type=int, default=64, help="units of the head's first Linear (default 64)")
    p.add_argument("--timesteps", type=int, default=5, help="T (default 5)")
    p.add_argument("--batch-size", type=int, default=256, help="B (default 256, as SNASNet)")
    p.add_argument("--num-batches", type=int, default=2, help="batches per score (default 2, as SNASNet)")
    p.add_argument("--op-set", default="3O", help="Alg. 1's op set (default 3O)")
    p.add_argument("--random-samples", type=int, default=5000, help="SNASNet's samples (default 5000)")
    p.add_argument("--random-timed", type=int, default=200, help="samples actually timed (default 200)")
    p.add_argument("--proxy-batch", type=int, default=16, help="fast: proxy batch (default 16)")
    p.add_argument("--rescore-fraction", type=float, default=0.05, help="fast: a round of re-scoring (default 0.05)")
    p.add_argument("--race-top", type=int, default=10, help="fast: re-score until the best K settle (default 10)")
    p.add_argument("--top-k", type=int, default=10, help="top candidates compared per pass (default 10)")
    p.add_argument("--budget-run", action="store_true", help="also time exact and fast under a paper-like budget")
    p.add_argument("--min-reference-ratio", type=float, default=MIN_REFERENCE_RATIO,
                   help="floor of frozen / project exact random search per scored sample "
                   f"(default {MIN_REFERENCE_RATIO:g}; 0: none)")
    p.add_argument("--min-fast-ratio", type=float, default=MIN_FAST_RATIO,
                   help=f"floor of frozen random-N / fast Alg. 1 (default {MIN_FAST_RATIO:g}; 0: none)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    p.add_argument("--seed", type=int, default=0, help="data and weight seed (default 0)")
    p.add_argument("--output", default="bench_search_time.json", help="JSON result file")
    return p


def agreement(exact: Evaluator, fast: SharedEvaluator, top_k: int) -> dict:
    """Kendall tau over candidates both scored in full, proxy tau, exact's top-k in fast."""
    ref = {r.cells: r.score for r in exact.records if r.status == "ok"}
    both = [(ref[r.cells], r.score) for r in fast.records if r.status == "ok" and r.cells in ref]
    proxy = [(ref[r.cells], r.proxy_score) for r in fast.records if r.proxy_score is not None and r.cells in ref]
    tau = kendall_tau(*zip(*both, strict=True)) if len(both) > 1 else float("nan")
    tau_proxy = kendall_tau(*zip(*proxy, strict=True)) if len(proxy) > 1 else float("nan")
    top = sorted(ref, key=lambda c: -ref[c])[:top_k]
    fast_scores = {r.cells: r.score for r in fast.records if r.status == "ok"}
    found = [c for c in top if c in fast_scores]
    same_order = sorted(found, key=lambda c: -fast_scores[c]) == found
    return {
        "both_scored": len(both), "kendall_tau": float(tau), "max_abs_diff": max(abs(a - b) for a, b in both),
        "proxy_ranked": len(proxy), "kendall_tau_proxy": float(tau_proxy),
        "top_k": top_k, "top_k_found": len(found), "top_k_same_order": bool(same_order),
    }


def warm_up(macro: MacroConfig, batches: list[torch.Tensor], score: ScoreConfig, seed: int) -> None:
    """Pay one-off costs (spikingjelly's first LIF call imports and compiles for ~2 s) before any timing,
    in the project's multi-step path and in the reference's single-step one."""
    Evaluator(macro, batches[:1], score, seed=seed).evaluate((Genotype.from_index(1, "3O"),) * macro.num_cells)
    snasnet_reference.run_random_search(batches[:1], samples=1, width=macro.width, hidden=macro.hidden,
                                        timesteps=macro.timesteps, seed=seed + 1)


def reference_fingerprint() -> str:
    """sha256 of bench/snasnet_reference.py: which frozen reference a result was measured against."""
    return hashlib.sha256(Path(snasnet_reference.__file__).read_bytes()).hexdigest()


def run_alg1(evaluator: Evaluator, op_set: str, budget: Budget | None) -> tuple[float, object]:
    start = time.perf_counter()
    result = consecutive_search(CellSpace(evaluator.config, op_set=op_set), evaluator, budget=budget, progress=False)
    return time.perf_counter() - start, result


def progress(line: str) -> None:
    """A phase's time on stderr as soon as it is known (a full run takes many minutes)."""
    print(line, file=sys.stderr, flush=True)


def floor_failures(ratios: dict[str, float], floors: dict[str, float]) -> list[str]:
    """One line per ratio below its floor (a floor of 0 or less is off)."""
    return [f"{name} = {ratios[name]:.2f} is below its floor {floor:g}"
            for name, floor in floors.items() if floor > 0 and not ratios[name] >= floor]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        if not 1 <= args.random_timed <= args.random_samples:
            raise SpikeNASError(f"--random-timed must be in 1..--random-samples ({args.random_samples}), "
                                f"got {args.random_timed}")
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        threads = torch.get_num_threads()
        dataset = load_dataset("cifar10-sample", data_dir=args.data_dir)
        batches = dataset.batches(args.batch_size, args.num_batches, seed=args.seed, input_size=args.input_size)
        macro = MacroConfig(num_cells=2, width=args.width, timesteps=args.timesteps, in_channels=3,
                            input_size=args.input_size, num_classes=10, hidden=args.hidden)
        score = ScoreConfig(name="sahd")
        fast_cfg = FastConfig(proxy_batch=args.proxy_batch, rescore_fraction=args.rescore_fraction,
                              race_top=args.race_top)
        rows, out = [], {"config": vars(args), "macro": macro.to_dict(), "seed": args.seed, "versions": versions(),
                         "threads": threads, "reference": {"file": "bench/snasnet_reference.py",
                                                           "sha256": reference_fingerprint()}}

        def exact_eval() -> Evaluator:
            return Evaluator(macro, batches, score, seed=args.seed, weight_seeding="per_edge")

        def fast_eval() -> SharedEvaluator:
            return SharedEvaluator(macro, batches, score, seed=args.seed, fast=fast_cfg)

        warm_up(macro, batches, score, args.seed)
        factor = args.random_samples / args.random_timed
        frozen = snasnet_reference.run_random_search(batches, samples=args.random_timed, width=args.width,
                                                     hidden=args.hidden, timesteps=args.timesteps, seed=args.seed)
        t_frozen_timed = frozen["seconds"]
        t_frozen = t_frozen_timed * factor
        progress(f"frozen reference: {frozen['scored']} scored in {t_frozen_timed:.1f} s")
        rnd = Evaluator(macro, batches, score, seed=args.seed)
        start = time.perf_counter()
        res_random = random_search(CellSpace(rnd.config, op_set="5O"), rnd, samples=args.random_timed,
                                   seed=args.seed, progress=False)
        t_project_timed = time.perf_counter() - start
        t_project = t_project_timed * factor
        progress(f"project random search: {res_random.counters.scored} scored in {t_project_timed:.1f} s")
        t_fast, res_fast = run_alg1(fast_eval_inst := fast_eval(), args.op_set, None)
        progress(f"fast Alg. 1: {t_fast:.1f} s")
        t_exact, res_exact = run_alg1(exact_eval_inst := exact_eval(), args.op_set, None)
        progress(f"exact Alg. 1: {t_exact:.1f} s")
        agree = agreement(exact_eval_inst, fast_eval_inst, args.top_k)
        agree["same_pick"] = res_fast.best.cells == res_exact.best.cells
        n_exact = res_exact.counters.scored
        n_fast = res_fast.counters.scored + res_fast.counters.screened
        per_frozen = t_frozen_timed / frozen["scored"]
        per_project = t_project_timed / res_random.counters.scored
        n, timed = args.random_samples, args.random_timed
        rows.append((f"frozen SNASNet random-{n} (reference, 5O; timed {timed}, x{factor:g})", t_frozen, n))
        rows.append((f"SpikeNAS exact random-{n} (5O; timed {timed}, x{factor:g})", t_project, n))
        rows.append((f"SpikeNAS Alg. 1 exact ({args.op_set})", t_exact, n_exact))
        rows.append((f"SpikeNAS Alg. 1 fast ({args.op_set}; {res_fast.counters.scored} full, "
                     f"{res_fast.counters.screened} proxy-only)", t_fast, n_fast))
        out["timings"] = {
            "random_factor": factor,
            "frozen_random_timed_s": t_frozen_timed, "frozen_random_extrapolated_s": t_frozen,
            "frozen_random_scored": frozen["scored"], "frozen_s_per_sample": per_frozen,
            "project_random_timed_s": t_project_timed, "project_random_extrapolated_s": t_project,
            "project_random_scored": res_random.counters.scored, "project_s_per_sample": per_project,
            "exact_s": t_exact, "fast_s": t_fast,
        }
        ratios = {
            "frozen_random_over_fast": t_frozen / t_fast,
            "frozen_random_over_exact_alg1": t_frozen / t_exact,
            "frozen_over_project_random_per_sample": per_frozen / per_project,
            "exact_over_fast": t_exact / t_fast,
            "project_random_over_fast": t_project / t_fast,
        }
        floors = {"frozen_over_project_random_per_sample": args.min_reference_ratio,
                  "frozen_random_over_fast": args.min_fast_ratio}
        out["ratios"] = ratios
        out["floors"] = floors
        out["agreement"] = agree
        out["picks"] = {"exact": [str(g) for g in res_exact.best.cells], "fast": [str(g) for g in res_fast.best.cells],
                        "project_random": [str(g) for g in res_random.best.cells],
                        "frozen_random": frozen["best_cell"]}
        out["scores"] = {"project_random_best": res_random.best.score, "frozen_random_best": frozen["best_score"]}
        if args.budget_run:
            paper = MacroConfig(timesteps=args.timesteps, **PAPER_LIKE)
            fraction = float((enumerate_params(args.op_set, paper) <= PAPER_BUDGET).mean())
            limit = float(np.quantile(enumerate_params(args.op_set, macro), fraction))
            budget = Budget(limit)
            tb_fast, rb_fast = run_alg1(fb := fast_eval(), args.op_set, budget)
            tb_exact, rb_exact = run_alg1(eb := exact_eval(), args.op_set, budget)
            out["budget"] = {
                "paper_like_macro": PAPER_LIKE, "fraction_within_1.2M": fraction, "limit_params": limit,
                "exact_s": tb_exact, "fast_s": tb_fast, "exact_over_fast": tb_exact / tb_fast,
                "frozen_random_over_fast": t_frozen / tb_fast, "same_pick": rb_fast.best.cells == rb_exact.best.cells,
                "meets_budget": bool(rb_fast.meets_budget), "agreement": agreement(eb, fb, args.top_k),
            }
            rows.append((f"Alg. 1 exact, budget {limit:,.0f} params", tb_exact, rb_exact.counters.scored))
            rows.append((f"Alg. 1 fast, budget {limit:,.0f} params", tb_fast,
                         rb_fast.counters.scored + rb_fast.counters.screened))
        print(f"cifar10-sample {args.input_size}x{args.input_size}, width {args.width}, hidden {args.hidden}, "
              f"T {args.timesteps}, B {args.batch_size} x {args.num_batches} batches, {threads} thread(s)")
        print("| procedure | wall s | candidates | frozen / this | this / fast |\n|---|---:|---:|---:|---:|")
        for name, seconds, count in rows:
            print(f"| {name} | {seconds:.1f} | {count} | {t_frozen / seconds:.1f}x | {seconds / t_fast:.1f}x |")
        print(f"per scored sample: frozen reference {per_frozen:.4f} s, project exact random {per_project:.4f} s, "
              f"frozen / project {ratios['frozen_over_project_random_per_sample']:.2f}x "
              f"(floor {args.min_reference_ratio:g})")
        print(f"exact vs fast: tau {agree['kendall_tau']:.4f} over {agree['both_scored']} scored by both "
              f"(max |diff| {agree['max_abs_diff']:.2e}); proxy tau {agree['kendall_tau_proxy']:.3f} over "
              f"{agree['proxy_ranked']}; exact top-{args.top_k} found {agree['top_k_found']}, same order "
              f"{agree['top_k_same_order']}; same pick {agree['same_pick']}")
        if args.budget_run:
            b = out["budget"]
            print(f"budget like the paper's: {b['fraction_within_1.2M']:.1%} of cells fit 1.2M at width 48/hidden 128 "
                  f"on 32x32 -> limit {b['limit_params']:,.0f} here; exact/fast {b['exact_over_fast']:.1f}x, "
                  f"frozen random/fast {b['frozen_random_over_fast']:.1f}x, same pick {b['same_pick']}")
        failures = floor_failures(ratios, floors)
        out["floor_failures"] = failures
        write_json(args.output, out)
        if failures:
            print(f"search_time: {'; '.join(failures)}", file=sys.stderr)
            return 1
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
