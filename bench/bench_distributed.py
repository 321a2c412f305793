"""Speed-up of Alg. 1 on Ray against the local executor, and Ray's per-task overhead.

Runs the same search (``run_search``) four ways: in-process without an executor, through the
:class:`~spikenas.executor.LocalExecutor`, and on a private Ray instance with 1 and 2 worker
processes (1 CPU and 1 torch thread each; the in-process runs also use 1 thread). Every run must
return the same network, score and per-pass bests; the script fails otherwise. Modes are timed
interleaved ``--repeats`` times after a warm-up search and the fastest run of each counts. Per-task overhead
is the wall time of ``N`` no-op tasks through ``RayExecutor.map_shards`` divided by ``N``.

    python bench/bench_distributed.py --output bench/results/distributed.json

Times on a shared machine vary with its load: compare the ratios of one run, not absolute times.
"""

from __future__ import annotations

import os
import sys
import time

import torch

from spikenas.argparsing import Parser, main_guard
from spikenas.executor import LocalExecutor, RayExecutor
from spikenas.nas import SearchRequest, run_search
from spikenas.results import versions, write_json
from spikenas.scoring import ScoreConfig


def noop(shared: object, item: int) -> int:
    return item


def timed_search(config: SearchRequest, executor) -> tuple[float, dict]:
    start = time.perf_counter()
    _, payload = run_search(config, progress=False, executor=executor)
    return time.perf_counter() - start, payload


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="bench/bench_distributed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", default="2O", help="op set (default 2O)")
    p.add_argument("--cells", type=int, default=2, help="cells (default 2)")
    p.add_argument("--width", type=int, default=4, help="channels of the first cell (default 4)")
    p.add_argument("--batch-size", type=int, default=32, help="scoring batch (default 32)")
    p.add_argument("--noop-tasks", type=int, default=200, help="tasks for the overhead measurement (default 200)")
    p.add_argument("--score", default="sahd", help="registered score (default sahd: builds and runs each network)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per mode; the fastest counts (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="bench/results/distributed.json")
    args = p.parse_args(argv)

    def run() -> int:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        torch.set_num_threads(1)
        config = SearchRequest.from_fields(
            algorithm="spikenas", dataset="digits", op_set=args.ops, num_cells=args.cells, width=args.width,
            hidden=32, timesteps=4, input_size=16, batch_size=args.batch_size, score=ScoreConfig(name=args.score),
            seed=args.seed,
        )
        times: dict[str, list[float]] = {"plain": [], "local": [], "ray1": [], "ray2": []}
        outcomes: dict[str, tuple] = {}
        timed_search(config, None)  # warm-up: Numba compilation of the memory model, torch's first calls
        start = time.perf_counter()
        ray_exec = RayExecutor(None, workers=2, num_cpus=1)
        ray_start_s = time.perf_counter() - start
        try:
            ray_exec.map_shards(noop, list(range(4)))  # start the worker processes
            for _ in range(args.repeats):  # interleaved, so a burst of load from elsewhere hits every mode
                for mode in times:
                    executor = {"plain": None, "local": LocalExecutor()}.get(mode, ray_exec)
                    if mode.startswith("ray"):
                        ray_exec.workers = int(mode[3:])
                    seconds, payload = timed_search(config, executor)
                    times[mode].append(seconds)
                    outcomes[mode] = (payload["result"]["cells"], payload["result"]["score"], payload["passes"])
            candidates = payload["counters"]["scored"]
            ray_exec.workers = 2
            start = time.perf_counter()
            ray_exec.map_shards(noop, list(range(args.noop_tasks)))
            noop_s = time.perf_counter() - start
            ray_version = ray_exec.describe()["ray"]
        finally:
            ray_exec.close()
        timings = {f"{mode}_s": min(values) for mode, values in times.items()}
        timings["ray_start_s"] = ray_start_s
        same = all(
            [o[0], o[1], [q["best_of_pass"]["score"] for q in o[2]]]
            == [outcomes["local"][0], outcomes["local"][1], [q["best_of_pass"]["score"] for q in outcomes["local"][2]]]
            for o in outcomes.values()
        )
        report = {
            "config": {**config.to_dict(), "noop_tasks": args.noop_tasks},
            "seed": args.seed,
            "versions": {**versions(), "ray": ray_version},
            "machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
            "candidates_scored": candidates,
            "timings": {**timings, "all_runs_s": times},
            "speedup_vs_local": {
                "ray_1_worker": timings["local_s"] / timings["ray1_s"],
                "ray_2_workers": timings["local_s"] / timings["ray2_s"],
            },
            "per_task_overhead_ms": 1e3 * noop_s / args.noop_tasks,
            "identical_results": same,
        }
        write_json(args.output, report)
        for key, value in timings.items():
            print(f"{key:12s} {value:8.2f}  (runs: {', '.join(f'{t:.2f}' for t in times.get(key[:-2], [value]))})")
        print(f"candidates scored per search: {candidates}")
        for key, value in report["speedup_vs_local"].items():
            print(f"speed-up vs local, {key}: {value:.2f}x")
        print(f"per-task overhead (no-op tasks, 2 in flight): {report['per_task_overhead_ms']:.2f} ms")
        load = report["machine"]["load_avg_1m"]
        print(f"identical results: {same}; 1-min load average {load:.1f}; wrote {args.output}")
        return 0 if same else 1

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
