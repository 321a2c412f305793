"""Sweeps: many independent runs (training, scoring) on an executor, one result file per run, resumable.

A :class:`SweepTask` has a stable id and a module-level function called with keyword arguments.
:func:`run_sweep` skips every task whose result file ``<output_dir>/<id>.json`` already exists (and
was written for the same arguments), runs the others on a :mod:`spikenas.executor` executor, and
writes each result atomically the moment it arrives, so a killed driver loses only runs in flight
and a rerun recomputes nothing finished. On Ray a run whose worker process or node dies is retried
(``max_retries``); a run whose function raises is reported as failed and left without a result
file, so the next rerun tries it again. Result files are keyed by id: a retried run can never appear
twice.

Task functions live with what they run: :func:`spikenas.train.train_job.train_task` (train a network),
:func:`spikenas.nas.score_job.score_task` (score a network under a search configuration) and
:func:`spikenas.autosnn.supernet.supernet_task` (train AutoSNN's super-network, measure paths).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikenas.errors import SpikeNASError
from spikenas.executor import Executor, LocalExecutor
from spikenas.progress import Progress
from spikenas.results import versions, write_json

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]*")


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep."""

    id: str  # stable and unique in the sweep; names the result file <id>.json
    fn: Callable[..., dict]  # module-level (importable by workers) function returning a JSON-ready dict
    kwargs: dict = field(default_factory=dict)  # keyword arguments of fn, recorded as the run's config
    # keyword arguments that say where the run keeps its working files (checkpoints), not what it computes: passed
    # to fn and recorded, but not part of the config a rerun compares, so a sweep's folder can move
    scratch: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise SpikeNASError(f"sweep task id {self.id!r} must match {_ID.pattern} (it names a file)")

    @property
    def function_name(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"


@dataclass
class SweepResult:
    """What a sweep call did."""

    payloads: dict[str, dict]  # task id -> its result file's content, in task order
    ran: list[str]  # ids computed in this call, in completion order
    skipped: list[str]  # ids whose result file already existed
    failed: dict[str, str]  # id -> error of runs whose function raised (no result file written)
    seconds: float  # wall time of this call


def _run_one(shared: Any, task: SweepTask) -> dict:
    """Worker side: run the task and time it; exceptions become a failure report."""
    start = time.perf_counter()
    try:
        kwargs = {**task.kwargs, **task.scratch}
        result = task.fn(**kwargs) if shared is None else task.fn(shared=shared, **kwargs)
        error = None
    except Exception as err:  # reported per run by run_sweep; never swallowed
        result, error = None, f"{type(err).__name__}: {err}"
    return {
        "result": result,
        "error": error,
        "run_s": time.perf_counter() - start,
        "worker": {"host": socket.gethostname(), "pid": os.getpid()},
    }


def result_path(output_dir: str | Path, task_id: str) -> Path:
    return Path(output_dir) / f"{task_id}.json"


def _finished(path: Path, task: SweepTask) -> dict | None:
    """The result file of ``task`` if it exists; a file for other arguments is an error."""
    if not path.exists():
        return None
    payload = json.loads(path.read_text())
    if payload.get("config") != json.loads(json.dumps(task.kwargs)) or payload.get("task") != task.function_name:
        raise SpikeNASError(
            f"{path} holds a run of {payload.get('task')} with other arguments than sweep task {task.id!r}; "
            "delete it or use another output directory"
        )
    return payload


def run_sweep(
    tasks: Sequence[SweepTask],
    *,
    output_dir: str | Path,
    executor: Executor | None = None,
    shared: Any = None,
    progress: bool = True,
) -> SweepResult:
    """Run every task not finished in ``output_dir``; write one result file per run.

    :param shared: passed as ``shared=`` to every task function when not None (put in Ray's object
        store once, not sent per task).
    :raises SpikeNASError: duplicate ids, a result file from other arguments, or, after every other
        run has finished and been written, any run whose function raised (listed by id).
    """
    start = time.perf_counter()
    executor = executor or LocalExecutor()
    ids = [t.id for t in tasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SpikeNASError(f"sweep task ids must be unique; repeated: {', '.join(dupes)}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    payloads: dict[str, dict] = {}
    todo = []
    for task in tasks:
        done = _finished(result_path(output_dir, task.id), task)
        if done is None:
            todo.append(task)
        else:
            payloads[task.id] = done
    skipped = list(payloads)
    ran: list[str] = []
    failed: dict[str, str] = {}
    with Progress(len(todo), f"sweep on {executor.name}", enabled=progress) as bar:
        for index, out in executor.imap_unordered(_run_one, todo, shared=shared):
            task = todo[index]
            bar.update(1)
            if out["error"] is not None:
                failed[task.id] = out["error"]
                continue
            payload = {
                "id": task.id,
                "task": task.function_name,
                "config": task.kwargs,
                "scratch": task.scratch,
                "seed": task.kwargs.get("seed"),
                "versions": versions(),
                "executor": executor.describe(),
                "worker": out["worker"],
                "timings": {"run_s": out["run_s"]},
                "result": out["result"],
            }
            write_json(result_path(output_dir, task.id), payload)
            payloads[task.id] = json.loads(result_path(output_dir, task.id).read_text())
            ran.append(task.id)
    result = SweepResult(
        payloads={i: payloads[i] for i in ids if i in payloads},
        ran=ran,
        skipped=skipped,
        failed=failed,
        seconds=time.perf_counter() - start,
    )
    if failed:
        lines = "; ".join(f"{k}: {v}" for k, v in failed.items())
        raise SpikeNASError(f"{len(failed)} sweep run(s) failed (rerun to retry them): {lines}")
    return result


# ---- built-in task functions ------------------------------------------------------------------------
