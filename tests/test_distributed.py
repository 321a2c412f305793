"""Executors and sweeps: a two-node Ray cluster on this machine gives exactly the local results."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spikenas.errors import SpikeNASError
from spikenas.executor import LocalExecutor, make_executor, prefetch, score_shard, shard_candidates
from spikenas.nas.consecutive import consecutive_search
from spikenas.nas.engine import Evaluator
from spikenas.nas.random_search import random_search
from spikenas.nas.score_job import score_task
from spikenas.nas.space_api import CellSpace
from spikenas.network import MacroConfig
from spikenas.scoring import ScoreConfig
from spikenas.space import Genotype
from spikenas.sweep import SweepTask, result_path, run_sweep
from spikenas.train.train_job import train_task

ROOT = Path(__file__).resolve().parents[1]
SAHD = ScoreConfig(name="sahd")  # SNASNet's score: builds and runs every candidate network
MACRO = MacroConfig(num_cells=2, width=2, in_channels=1, input_size=8, hidden=8, timesteps=2)  # ~0.05 s a candidate


def batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.rand(6, 1, 8, 8, generator=g)]


def untimed(value):
    """``value`` without wall-time fields (everything else of a run must be reproduced exactly)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def records(evaluator: Evaluator) -> list[tuple]:
    return [(r.cells, r.score, r.status, r.params) for r in evaluator.records]


def run_alg1(macro, executor, journal=None):
    evaluator = Evaluator(macro, batches(), SAHD, seed=1, journal=journal)
    result = consecutive_search(CellSpace(evaluator.config, op_set="2O"), evaluator, progress=False, executor=executor)
    return result, evaluator


# ---- tasks run on workers (module level so workers can import them) ----------------------------------


def crash_once(*, marker: str, value: int, seed: int = 0) -> dict:
    """Kill this worker process on the first attempt; answer on the retry."""
    path = Path(marker)
    if not path.exists():
        path.write_text("attempted\n")
        os._exit(1)
    with open(path, "a") as f:
        f.write("retried\n")
    return {"value": value * 2 + seed}


def crash_once_shard(evaluator: Evaluator, shard: list, *, marker: str) -> list:
    """score_shard, but the first shard to run kills its worker (once: the marker file records it)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return score_shard(evaluator, shard)
    os.close(fd)
    os._exit(1)


def pid_then_sleep(shared: object, item: tuple[str, float]) -> int:
    """Write this worker's pid to ``item[0]``, sleep ``item[1]`` seconds, return the pid."""
    path, seconds = item
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def raises(*, seed: int = 0) -> dict:
    raise RuntimeError(f"boom {seed}")


# ---- without Ray --------------------------------------------------------------------------------------


def test_core_imports_and_runs_without_ray(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from spikenas.executor import RayExecutor, LocalExecutor\n"
        "import spikenas.nas, spikenas.sweep\n"
        "from spikenas.errors import SpikeNASError\n"
        "try:\n    RayExecutor()\nexcept SpikeNASError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR --executor ray needs Ray: pip install 'spikenas[ray]'" in out.stdout


@pytest.fixture(scope="module")
def local_alg1(tmp_path_factory):
    torch.set_num_threads(1)
    journal = tmp_path_factory.mktemp("alg1") / "a.jsonl"
    return (*run_alg1(MACRO, None, journal=journal), journal)


def test_local_executor_search_equals_plain_search(local_alg1, tmp_path):
    plain, ev_plain, journal = local_alg1
    local, ev_local = run_alg1(MACRO, LocalExecutor(), journal=tmp_path / "b.jsonl")
    assert (local.best.cells, local.best.score) == (plain.best.cells, plain.best.score)
    assert records(ev_local) == records(ev_plain)
    assert local.counters == plain.counters
    def strip(path):  # shards are journaled as they arrive: same records, possibly in another order
        return sorted(json.dumps({k: v for k, v in json.loads(line).items() if k not in ("seconds", "checksum")})
                      for line in path.open())

    assert strip(tmp_path / "b.jsonl") == strip(journal)


def test_shards_group_by_leading_edge_and_keep_order():
    cands = [((Genotype.from_index(i, "3O"),) * 2, i) for i in range(0, 729, 7)]
    shards = shard_candidates(cands, workers=2, shards_per_worker=4)
    assert sorted((c for s in shards for c in s), key=lambda c: c[1]) == cands
    for shard in shards:
        assert len({c[0][0].ops[0] for c in shard}) == 1
        assert [c[1] for c in shard] == sorted(c[1] for c in shard)
    assert len(shards) >= 8


def test_make_executor_rejects_bad_input():
    with pytest.raises(SpikeNASError, match="ray-address"):
        make_executor("local", address="head:6379")
    with pytest.raises(SpikeNASError, match="executor must be one of"):
        make_executor("dask")


def test_sweep_resumes_and_reports_failures(tmp_path):
    tasks = [SweepTask(f"s{i}", crash_once, {"marker": str(tmp_path / "never"), "value": i, "seed": 0})
             for i in range(3)]
    (tmp_path / "never").write_text("")  # marker present: no crash
    first = run_sweep(tasks[:2], output_dir=tmp_path / "out", progress=False)
    assert first.ran == ["s0", "s1"]
    second = run_sweep(tasks, output_dir=tmp_path / "out", progress=False)
    assert second.skipped == ["s0", "s1"] and second.ran == ["s2"]
    assert [p["result"]["value"] for p in second.payloads.values()] == [0, 2, 4]
    payload = json.loads(result_path(tmp_path / "out", "s2").read_text())
    assert {"config", "seed", "versions", "timings", "executor"} <= set(payload)
    with pytest.raises(SpikeNASError, match="other arguments"):
        run_sweep([SweepTask("s0", crash_once, {"marker": "x", "value": 9})], output_dir=tmp_path / "out",
                  progress=False)
    with pytest.raises(SpikeNASError, match=r"1 sweep run\(s\) failed .*bad: RuntimeError: boom 0"):
        run_sweep([SweepTask("bad", raises, {"seed": 0})], output_dir=tmp_path / "out", progress=False)
    assert not result_path(tmp_path / "out", "bad").exists()
    with pytest.raises(SpikeNASError, match="unique"):
        run_sweep([tasks[0], tasks[0]], output_dir=tmp_path / "o2", progress=False)
    # Scratch arguments (where a run keeps its files) reach the function and are recorded, but a sweep whose
    # folder moved still finds its finished runs.
    moved = [SweepTask(f"s{i}", crash_once, {"value": i, "seed": 0}, scratch={"marker": str(tmp_path / where)})
             for i, where in ((5, "never"), (6, "elsewhere"))]
    (tmp_path / "elsewhere").write_text("")
    run_sweep(moved[:1], output_dir=tmp_path / "o3", progress=False)
    assert json.loads(result_path(tmp_path / "o3", "s5").read_text())["scratch"] == {"marker": str(tmp_path / "never")}
    again = run_sweep([SweepTask("s5", crash_once, {"value": 5, "seed": 0}, scratch={"marker": "moved"}), moved[1]],
                      output_dir=tmp_path / "o3", progress=False)
    assert again.skipped == ["s5"] and again.payloads["s6"]["result"]["value"] == 12
    with pytest.raises(SpikeNASError, match="names a file"):
        SweepTask("a/b", raises)


# ---- on a two-node Ray cluster -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Workers import spikenas and this module's task functions.
    paths = [str(ROOT), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 100 * 2**20, "include_dashboard": False},
    )
    nodes.add_node(num_cpus=1, object_store_memory=100 * 2**20)
    ray.init(address=nodes.address, logging_level="WARNING", log_to_driver=False)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_search_equals_local(cluster, local_alg1, workers, tmp_path):
    local, ev_local, _ = local_alg1
    with make_executor("ray", address=cluster.address, workers=workers) as executor:
        assert executor.workers == workers
        dist, ev_dist = run_alg1(MACRO, executor)
    assert (dist.best.cells, dist.best.score) == (local.best.cells, local.best.score)
    assert records(ev_dist) == records(ev_local)  # every candidate's score, in the same order
    assert dist.counters == local.counters
    assert [p["best_of_pass"]["score"] for p in dist.passes] == [p["best_of_pass"]["score"] for p in local.passes]


def test_ray_fast_search_equals_local(cluster):
    from spikenas.nas.evaluators import make_evaluator
    from spikenas.nas.fast import FastConfig, SharedEvaluator

    runs = []
    for executor in (None, make_executor("ray", address=cluster.address, workers=2)):
        evaluator = make_evaluator("fast", MACRO, batches(), SAHD, seed=1)
        assert isinstance(evaluator, SharedEvaluator)
        result = consecutive_search(
            CellSpace(evaluator.config, op_set="2O"),
            evaluator, progress=False, executor=executor)
        passes = [p["best_of_pass"]["score"] for p in result.passes]
        runs.append((result.best.cells, result.best.score, result.counters, records(evaluator), passes))
        if executor is not None:
            assert evaluator.shipped().counters.scored == 0  # the driver's copy scored nothing itself
            proxy = make_evaluator("fast", MACRO, batches(), SAHD, seed=1, fast=FastConfig(proxy_batch=4))
            with pytest.raises(SpikeNASError, match="proxy screening"):
                consecutive_search(CellSpace(proxy.config, op_set="2O"), proxy, progress=False, executor=executor)
            executor.close()
    assert runs[0] == runs[1]  # best, score, counters and every candidate's score, bit for bit
    assert runs[0][2].scored > 0 and runs[0][2].memo_hits == 1


def test_ray_random_search_equals_local(cluster):
    runs = []
    for executor in (None, make_executor("ray", workers=2)):
        evaluator = Evaluator(MACRO, batches(), SAHD, seed=0)
        result = random_search(
            CellSpace(evaluator.config, op_set="2O"),
            evaluator, samples=24, seed=5, progress=False, executor=executor)
        runs.append((result.best.cells, result.best.score, result.counters, records(evaluator)))
    assert runs[0] == runs[1]
    assert runs[0][2].memo_hits > 0  # repeated draws are answered from memory in both


def test_killed_worker_during_search_loses_nothing(cluster, tmp_path):
    marker = tmp_path / "shard_marker"
    cells = [(Genotype.from_index(i, "2O"),) * 2 for i in range(0, 64, 4)]
    local = Evaluator(MACRO, batches(), SAHD, seed=0)
    expected = [(r.cells, r.score, r.status) for r in (local.evaluate(c) for c in cells)]
    dist = Evaluator(MACRO, batches(), SAHD, seed=0)
    executor = make_executor("ray", workers=2)
    sent = prefetch(dist, cells, executor=executor, shard_fn=functools.partial(crash_once_shard, marker=str(marker)))
    assert marker.exists()  # one shard did kill its worker
    assert sent == len({c for c in cells if all(g.is_connected() for g in c)})
    got = [(r.cells, r.score, r.status) for r in (dist.evaluate(c) for c in cells)]
    assert got == expected
    assert dist.counters.scored + dist.counters.disconnected == len(cells) and dist.counters.memo_hits == 0


def test_tasks_left_in_flight_are_cancelled_by_killing_their_workers(cluster, tmp_path):
    """Stopping the iteration kills the worker of a task still running, so no interrupted worker (one
    possibly stopped inside an import) runs a later task."""
    from spikenas.executor import RayExecutor

    quick, slow = tmp_path / "quick.pid", tmp_path / "slow.pid"
    with RayExecutor(address=cluster.address, workers=2) as executor:
        tasks = executor.imap_unordered(pid_then_sleep, [(str(quick), 0.0), (str(slow), 120.0)])
        index, _ = next(tasks)
        assert index == 0
        deadline = time.monotonic() + 60
        while not slow.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = int(slow.read_text())
        tasks.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"worker {pid} of the cancelled task is still alive 30 s after the cancel")
        again = dict(executor.imap_unordered(pid_then_sleep, [(str(tmp_path / "next.pid"), 0.0)]))
        assert again[0] != pid


CONV = Genotype(("conv3x3", "skip", "conv3x3", "skip", "skip", "conv3x3")).to_nb201()


def sweep_tasks() -> list[SweepTask]:
    macro = {"num_cells": 1, "width": 2, "in_channels": 1, "input_size": 8, "hidden": 8, "timesteps": 2,
             "num_classes": 10}
    train = {"epochs": 1, "batch_size": 32, "max_train_samples": 64, "max_test_samples": 64, "eval_batch_size": 64}
    search = {"dataset": "digits", "op_set": "2O", "num_cells": 1, "width": 2, "hidden": 8, "timesteps": 2,
              "input_size": 8, "batch_size": 8, "score": {"name": "sahd"}}
    tasks = [SweepTask(f"train-{name}", train_task, {"cells": [g], "macro": macro, "train": train, "seed": 0})
             for name, g in (("conv", CONV),)]
    tasks += [SweepTask(f"score-s{s}", score_task, {"cells": [CONV], "search": search, "seed": s}) for s in (0, 1)]
    return tasks


def test_ray_sweep_equals_local_and_survives_a_killed_worker(cluster, tmp_path):
    tasks = sweep_tasks()
    local = run_sweep(tasks, output_dir=tmp_path / "local", progress=False)
    marker = tmp_path / "crash_marker"
    crash = SweepTask("crash", crash_once, {"marker": str(marker), "value": 21, "seed": 0})
    with make_executor("ray", workers=2, max_retries=2) as executor:
        dist = run_sweep([*tasks, crash], output_dir=tmp_path / "ray", executor=executor, progress=False)
        assert marker.read_text() == "attempted\nretried\n"  # killed once, retried once, not run again
        assert dist.payloads["crash"]["result"] == {"value": 42}
        assert sorted(dist.ran) == sorted(t.id for t in [*tasks, crash])
        assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(f"{t.id}.json" for t in [*tasks, crash])
        for task in tasks:
            assert untimed(dist.payloads[task.id]["result"]) == untimed(local.payloads[task.id]["result"]), task.id
            assert dist.payloads[task.id]["executor"]["executor"] == "ray"
        again = run_sweep([*tasks, crash], output_dir=tmp_path / "ray", executor=executor, progress=False)
    assert again.ran == [] and len(again.skipped) == len(tasks) + 1
    assert marker.read_text() == "attempted\nretried\n"


def test_search_cli_on_ray_equals_local(cluster, tmp_path, capsys):
    from spikenas.nas.__main__ import main

    common = ["--fast", "--cells", "1", "--ops", "2O", "--width", "2", "--hidden", "8", "--timesteps", "2",
              "--input-size", "8", "--batch-size", "8", "--score", "sahd", "--quiet"]
    assert main([*common, "--output", str(tmp_path / "local.json")]) == 0
    assert main([*common, "--executor", "ray", "--ray-address", cluster.address, "--workers", "2",
                 "--output", str(tmp_path / "ray.json")]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("local", "ray"))
    assert a["result"] == b["result"] and a["counters"] == b["counters"]
    assert b["executor"]["executor"] == "ray" and b["executor"]["workers"] == 2


def test_rerank_stage_on_ray_matches_local(cluster, tmp_path):
    """The multi-fidelity stage's training runs go to the cluster as sweep tasks; the same candidates are trained
    for the same schedule and reach the same validation accuracy (up to float summation order across threads)."""
    from spikenas.nas.__main__ import main

    common = ["--fast", "--cells", "1", "--ops", "2O", "--width", "2", "--hidden", "8", "--timesteps", "2",
              "--input-size", "8", "--rerank-top", "2", "--rerank-epochs", "1", "--rerank-train-samples", "48",
              "--quiet"]
    assert main([*common, "--output", str(tmp_path / "local.json")]) == 0
    assert main([*common, "--executor", "ray", "--ray-address", cluster.address, "--workers", "2",
                 "--output", str(tmp_path / "ray.json")]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text())["rerank"] for n in ("local", "ray"))
    assert a["schedule"] == b["schedule"] and a["epochs_spent"] == b["epochs_spent"] == 2
    assert [c["cells"] for c in a["candidates"]] == [c["cells"] for c in b["candidates"]]
    for x, y in zip(a["candidates"], b["candidates"], strict=True):
        assert abs(x["val_accuracy"] - y["val_accuracy"]) <= 0.05


# ---- studies and super-network training as sweeps on the cluster ------------------------------------------

TINY_STUDY = [
    "--dataset", "digits", "--width", "2", "--hidden", "8", "--timesteps", "2", "--input-size", "8",
    "--score-batch", "16", "--epochs", "1", "--max-train-samples", "96", "--max-test-samples", "64",
    "--batch-size", "32", "--threads", "1", "--quiet",
]


def untimed_row(row: dict) -> dict:
    """A study row without its wall-time columns (``search_s``, ``train_s``)."""
    return {k: v for k, v in row.items() if not k.endswith("_s")}


def test_scenarios_study_on_ray_equals_local(cluster, tmp_path):
    pytest.importorskip("matplotlib", reason="the study's plots need matplotlib")
    from spikenas.analyze.__main__ import main

    argv = ["scenarios", *TINY_STUDY, "--cells-list", "1", "--op-sets", "2O"]
    assert main([*argv, "--output-dir", str(tmp_path / "local")]) == 0
    assert main([*argv, "--executor", "ray", "--ray-address", cluster.address, "--workers", "2",
                 "--output-dir", str(tmp_path / "ray")]) == 0
    local, dist = (json.loads((tmp_path / n / "results.json").read_text())["rows"] for n in ("local", "ray"))
    assert [untimed_row(r) for r in dist] == [untimed_row(r) for r in local] and len(local) == 2
    runs = sorted(p.name for p in (tmp_path / "ray" / "runs").iterdir())
    assert runs == ["1cells-2O-budget.json", "1cells-2O-free.json"]
    payload = json.loads((tmp_path / "ray" / "runs" / runs[0]).read_text())
    assert payload["executor"]["executor"] == "ray"


def test_fidelity_study_on_ray_equals_local(cluster, tmp_path, cifar_sample_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the study's plots need matplotlib")
    from spikenas.analyze import fidelity
    from spikenas.analyze.__main__ import main
    from tests.test_fidelity import _tiny_bench

    argv = ["fidelity", "--bench", _tiny_bench(tmp_path), "--all", "--width", "2", "--timesteps", "2",
            "--batch-size", "8", "--scores", "sahd,hamming,params,synflow", "--no-plots",
            "--data-dir", str(cifar_sample_path.parent)]
    assert main([*argv, "--output-dir", str(tmp_path / "local")]) == 0

    def no_build(*args, **kwargs):
        raise AssertionError("the driver built a network: the workers should have filled the cache")

    monkeypatch.setattr(fidelity, "build_network", no_build)  # the driver's module only, not the workers'
    assert main([*argv, "--executor", "ray", "--ray-address", cluster.address, "--workers", "2",
                 "--output-dir", str(tmp_path / "ray")]) == 0
    local, dist = (json.loads((tmp_path / n / "fidelity.json").read_text())["table"] for n in ("local", "ray"))
    assert [untimed(r) for r in dist] == [untimed(r) for r in local] and len(local) == 4
    assert (tmp_path / "ray" / "values.csv").read_text() == (tmp_path / "local" / "values.csv").read_text()
    cache = [sorted(p.relative_to(tmp_path / n) for p in (tmp_path / n / "cache").rglob("*")) for n in ("local", "ray")]
    assert cache[0] == cache[1] and len(cache[0]) > 10  # the workers filled the same cache files


def test_supernet_sweep_on_ray_equals_local_and_resumes(cluster, tmp_path):
    from spikenas.autosnn.supernet import SUPERNET_CHECKPOINT, supernet_task

    def tasks(root):
        return [SweepTask(f"supernet-s{s}", supernet_task, {
            "network": {"base_channels": 2, "timesteps": 2}, "train": {"epochs": 1, "batch_size": 32},
            "train_images": 96, "paths": 2, "checkpoint_dir": str(root / f"ckpt{s}"), "seed": s,
        }) for s in (0, 1)]

    local = run_sweep(tasks(tmp_path / "l"), output_dir=tmp_path / "local", progress=False)
    with make_executor("ray", workers=2) as executor:
        dist = run_sweep(tasks(tmp_path / "r"), output_dir=tmp_path / "ray", executor=executor, progress=False)
    for s in (0, 1):
        a, b = (r.payloads[f"supernet-s{s}"]["result"] for r in (local, dist))
        assert untimed(a) == untimed(b) and a["log"]["epochs_done"] == 1 and len(a["paths"]) == 2
        assert (tmp_path / "r" / f"ckpt{s}" / SUPERNET_CHECKPOINT).exists()
    assert local.payloads["supernet-s0"]["result"]["log"] != local.payloads["supernet-s1"]["result"]["log"]
    # a retried run finds the checkpoint and resumes after its last epoch instead of training again
    again = supernet_task(**tasks(tmp_path / "l")[0].kwargs)
    first = local.payloads["supernet-s0"]["result"]
    assert again["log"]["resumed_from"] == 1 and again["log"]["epoch_loss"] == first["log"]["epoch_loss"]
    assert again["paths"] == first["paths"]
