"""Stacked training throughput: K candidates trained in one stacked pass against the same K trained one after
another, in samples per second.

Run (a few minutes on 2 cores; the machine may be shared, so the table reports the best round of each path,
the paths timed in turn, their CPU seconds next to the wall seconds, and the load average)::

    python -m pytest bench/bench_stacked_training.py --benchmark-enable
    python bench/bench_stacked_training.py            # the same
    BENCH_THREADS=1 python bench/bench_stacked_training.py   # one intra-op thread
    python bench/bench_stacked_training.py profile 8  # per-op profile of both paths at K = 8 (torch.profiler)
    python bench/bench_stacked_training.py profile 8 digits
    BENCH_THREADS=1 python bench/bench_stacked_training.py batches 8   # both paths at batch 2, 8, 32, 128

"one after another" is :func:`spikenas.train.trainer.train_step` on each candidate in turn (what
:func:`spikenas.train.trainer.train` does per batch); "stacked" is
:func:`spikenas.train.stacked_training.stacked_train_step` on the same candidates (same weights, same batch,
each with its own AdamW). Both take one optimizer step of every candidate per call.

Networks: the Fashion-MNIST recipe's (:data:`spikenas.train.recipes.RECIPES`: width 16, hidden 256, T 2, 14x14
grey inputs, dropout 0.1, batch 128, AdamW with label smoothing 0.1), and the digits recipe's (width 8, hidden
128, T 2, 16x16, batch 64), each with two cells of 3O, every candidate's cells drawn at random (seeded), on
random inputs of that shape.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable

import pytest
import torch

from spikenas.network import MacroConfig
from spikenas.ops import get_op_set
from spikenas.space import EDGES, Genotype
from spikenas.train.recipes import RECIPES
from spikenas.train.stacked_training import StackedNetworks, stacked_train_step
from spikenas.train.trainer import initial_model, make_optimizer, train_step

KS = (1, 4, 8, 16)
ROUNDS, WARMUP = 3, 1
#: intra-op threads (BENCH_THREADS=1: on a shared machine, a thread that waits for a descheduled sibling spins and
#: burns CPU time, so one thread gives CPU seconds that measure the work; default: torch's, 2 on this machine)
THREADS = int(os.environ.get("BENCH_THREADS", torch.get_num_threads()))
SEED = 0
#: name -> the recipe whose network and optimisation are timed (the Fashion-MNIST one is the issue's; the
#: digits one, 4x fewer pixels at half the width, shows where per-operator overhead starts to count)
NETWORKS = {
    name: (MacroConfig(num_cells=2, in_channels=1, num_classes=10, **RECIPES[name].macro_fields()), RECIPES[name].train)
    for name in ("fashion-mnist", "digits")
}

#: (path, network, K) -> (best wall seconds, best CPU seconds) per call (one step of all K candidates)
RESULTS: dict[tuple[str, str, int], tuple[float, float]] = {}


def candidate_cells(k: int, macro: MacroConfig, *, seed: int = SEED) -> list[list[Genotype]]:
    """``k`` candidates of ``macro.num_cells`` 3O cells each, every edge's op drawn at random (seeded)."""
    rng = random.Random(seed)
    ops = get_op_set("3O")
    return [[Genotype(tuple(rng.choice(ops) for _ in EDGES)) for _ in range(macro.num_cells)] for _ in range(k)]


def _batch(macro: MacroConfig, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(batch, macro.in_channels, macro.input_size, macro.input_size, generator=g)
    return x, torch.randint(0, macro.num_classes, (batch,), generator=g)


def steps(k: int, network: str = "fashion-mnist", batch: int | None = None) -> dict[str, Callable[[], object]]:
    """A closure per path that takes one optimizer step of each of ``k`` candidates (equal weights in both) on a
    batch of ``batch`` images (None: the recipe's batch size)."""
    torch.set_num_threads(THREADS)
    macro, config = NETWORKS[network]
    cells = candidate_cells(k, macro)
    x, y = _batch(macro, config.batch_size if batch is None else batch)
    smoothing = config.label_smoothing
    alone = [initial_model(c, macro, config).train() for c in cells]
    opt_alone = [make_optimizer(m, config) for m in alone]
    models = [initial_model(c, macro, config) for c in cells]
    opt_stacked = [make_optimizer(m, config) for m in models]
    stacked = StackedNetworks(models).train()

    def one_after_another() -> None:
        for model, optimizer in zip(alone, opt_alone, strict=True):
            train_step(model, optimizer, x, y, label_smoothing=smoothing)

    def together() -> None:
        stacked_train_step(stacked, opt_stacked, x, y, label_smoothing=smoothing)

    return {"one after another": one_after_another, "stacked": together}


def best_interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int) -> dict[str, tuple[float, float]]:
    """Per function, the least wall seconds and the least CPU seconds (this process, all threads) of a call over
    ``rounds`` rounds that call every function once in turn, after ``warmup`` untimed rounds."""
    best = {name: (float("inf"), float("inf")) for name in fns}
    for i in range(warmup + rounds):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if i >= warmup:
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("network", list(NETWORKS))
def test_stacked_training_step(benchmark, network: str, k: int) -> None:
    """The stacked step through pytest-benchmark; then both paths interleaved for the ratio."""
    fns = steps(k, network)
    benchmark.pedantic(fns["stacked"], rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    if benchmark.stats is None:  # --benchmark-disable: one step of each is the smoke test
        fns["one after another"]()
        return
    for path, seconds in best_interleaved(fns, ROUNDS, WARMUP).items():
        RESULTS[(path, network, k)] = seconds
    batch = NETWORKS[network][1].batch_size
    seq, stk = RESULTS[("one after another", network, k)][0], RESULTS[("stacked", network, k)][0]
    benchmark.extra_info["candidate_samples_per_s"] = {p: k * batch / RESULTS[(p, network, k)][0] for p in fns}
    benchmark.extra_info["speedup"] = seq / stk


def markdown() -> str:
    """The table of RESULTS (empty when nothing was timed)."""
    if not RESULTS:
        return ""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [
        f"One optimizer step of each of K candidates, {torch.get_num_threads()} threads, best of {ROUNDS} rounds, "
        f"paths in turn; load average (1, 5, 15 min) {load} at the end",
        "",
        "samples/s: candidate-samples per wall second (K x batch / seconds per step of all K); "
        "CPU s: CPU seconds of this process per step of all K",
        "",
        "| network | K | one after another (samples/s) | stacked (samples/s) | speed-up (wall) "
        "| CPU s one after another | CPU s stacked | speed-up (CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for network, (macro, config) in NETWORKS.items():
        for k in KS:
            if ("stacked", network, k) not in RESULTS:
                continue
            (seq_wall, seq_cpu) = RESULTS[("one after another", network, k)]
            (stk_wall, stk_cpu) = RESULTS[("stacked", network, k)]
            samples = k * config.batch_size
            lines.append(
                f"| {network} (width {macro.width}, {macro.input_size}x{macro.input_size}, T {macro.timesteps}, "
                f"batch {config.batch_size}) | {k} | {samples / seq_wall:.0f} | {samples / stk_wall:.0f} "
                f"| {seq_wall / stk_wall:.2f}x | {seq_cpu:.2f} | {stk_cpu:.2f} | {seq_cpu / stk_cpu:.2f}x |"
            )
    return "\n".join(lines)


def profile(k: int, network: str = "fashion-mnist", *, rounds: int = 2, rows: int = 25) -> str:
    """Self CPU milliseconds per candidate-step of the ``rows`` costliest operators of each path at ``k``
    candidates (torch.profiler, ``rounds`` calls of each after one untimed call), as a markdown table."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    per_op: dict[str, dict[str, float]] = {}
    for path, fn in steps(k, network).items():
        fn()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(rounds):
                fn()
        per_op[path] = {e.key: e.self_cpu_time_total / 1000 / rounds / k for e in prof.key_averages()}
    paths = list(per_op)
    names = sorted(set().union(*per_op.values()), key=lambda n: -max(per_op[p].get(n, 0.0) for p in paths))
    lines = [f"| operator (self CPU ms per candidate-step, K = {k}) | " + " | ".join(paths) + " |",
             "|---|" + "---|" * len(paths)]
    for name in names[:rows]:
        lines.append(f"| {name} | " + " | ".join(f"{per_op[p].get(name, 0.0):.1f}" for p in paths) + " |")
    lines.append("| **total** | " + " | ".join(f"**{sum(per_op[p].values()):.1f}**" for p in paths) + " |")
    return "\n".join(lines)


def batch_sweep(k: int, network: str = "fashion-mnist", batches: tuple[int, ...] = (2, 8, 32, 128)) -> str:
    """CPU milliseconds per candidate-step of both paths at ``k`` candidates and several batch sizes (best of 3
    interleaved rounds): at a tiny batch a step costs its fixed per-operator overhead, which is all that
    stacking can save."""
    lines = [f"| batch | one after another (CPU ms per candidate-step) | stacked | speed-up (K = {k}) |",
             "|---|---|---|---|"]
    for batch in batches:
        best = best_interleaved(steps(k, network, batch), ROUNDS, WARMUP)
        seq, stk = best["one after another"][1], best["stacked"][1]
        lines.append(f"| {batch} | {1000 * seq / k:.1f} | {1000 * stk / k:.1f} | {seq / stk:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "profile":
        print(profile(int(sys.argv[2]) if len(sys.argv) > 2 else 8, *sys.argv[3:4]))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "batches":
        print(batch_sweep(int(sys.argv[2]) if len(sys.argv) > 2 else 8, *sys.argv[3:4]))
        sys.exit(0)
    sys.exit(pytest.main([__file__, "--benchmark-enable", "-q", "-p", "no:cacheprovider"]))
