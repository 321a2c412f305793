"""Where candidate scoring and sweep runs execute: in this process, or as Ray tasks on a cluster.

Both executors have one interface. :meth:`~LocalExecutor.map_shards` runs ``fn(shared, shard)`` for
every shard and returns the results in shard order; :meth:`~LocalExecutor.imap_unordered` yields
``(index, result)`` as each finishes. ``shared`` (scoring batches, macro and score configuration,
seeds) is the same for every shard: :class:`RayExecutor` puts it in the object store once per
executor and passes the reference, and each worker process deserialises it once and keeps it.

Search algorithms use an executor through :func:`prefetch`: at a synchronisation point (a pass of
Alg. 1, a batch of random draws) they hand over every candidate they are about to evaluate; the
candidates are grouped into shards by the ops on edge (0,1), scored remotely, and parked in the
evaluator, which journals each shard's records as the shard arrives (so an interrupt loses only the
shards in flight) and whose ``evaluate`` then returns them in the algorithm's own order. Merging
therefore happens in enumeration order, whatever order the shards finish in, so ties break exactly
as in a local search and the result depends neither on the number of workers nor on the journal's
order. :class:`LocalExecutor` scores one candidate per shard, so in this process every candidate
is journaled before the next one starts.

Ray is optional (``pip install spikenas[ray]``); it is imported only when a :class:`RayExecutor`
is created.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from spikenas.argparsing import positive_int
from spikenas.errors import SpikeNASError
from spikenas.memory import network_params
from spikenas.progress import Progress
from spikenas.space import first_difference

if TYPE_CHECKING:
    from spikenas.nas.engine import CandidateRecord, Cells, Evaluator
    from spikenas.nas.fast import SharedEvaluator

EXECUTORS = ("local", "ray")
ShardFn = Callable[[Any, Any], Any]


class LocalExecutor:
    """Runs every shard in this process, one after another (the reference for :class:`RayExecutor`).

    :param split_shared_work: also split the passes of a shared-work (fast mode) search into shards,
        as a remote executor does, instead of leaving each pass whole to the evaluator; this only
        loses sharing here, and exists to run the distributed path without a cluster.
    """

    name = "local"
    workers = 1
    in_process = True  # shards run here, one at a time: prefetch makes one-candidate shards

    def __init__(self, *, split_shared_work: bool = False) -> None:
        self.splits_shared_work = split_shared_work

    def map_shards(self, fn: ShardFn, shards: Sequence, *, shared: Any = None) -> list:
        """``[fn(shared, shard) for shard in shards]``."""
        return [fn(shared, shard) for shard in shards]

    def imap_unordered(self, fn: ShardFn, items: Sequence, *, shared: Any = None) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(shared, items[index]))`` as each finishes (here: in order)."""
        for index, item in enumerate(items):
            yield index, fn(shared, item)

    def describe(self) -> dict:
        return {"executor": "local", "workers": 1}

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Worker-side cache of shared objects, keyed by object-store id: a worker process deserialises the
# batches and configuration once and reuses them for every later task of the same search.
_WORKER_SHARED: dict[str, Any] = {}
_WORKER_SHARED_MAX = 4


def _worker_shared(boxed: list) -> Any:
    import ray

    ref = boxed[0]  # boxed in a list so Ray passes the reference instead of resolving it per task
    key = ref.hex()
    if key not in _WORKER_SHARED:
        while len(_WORKER_SHARED) >= _WORKER_SHARED_MAX:
            _WORKER_SHARED.pop(next(iter(_WORKER_SHARED)))
        _WORKER_SHARED[key] = ray.get(ref)
    return _WORKER_SHARED[key]


def _run_task(fn: ShardFn, item: Any, boxed: list, threads: int | None) -> Any:
    """Body of every Ray task: fixed thread count, cached shared object, then ``fn``."""
    if threads is not None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return fn(_worker_shared(boxed), item)


class RayExecutor:
    """Runs shards as Ray tasks on a cluster (or a local Ray instance).

    :param address: cluster to join: ``HOST:6379``, ``auto`` (the cluster started on this node with
        ``ray start``), or None to start a private single-node Ray instance.
    :param workers: most tasks in flight at once; None: every CPU of the cluster / ``num_cpus``.
    :param num_cpus: CPUs reserved per task; it is also each task's torch thread count.
    :param num_gpus: GPUs reserved per task (places tasks on GPU workers; scoring itself runs on CPU).
    :param max_retries: times Ray reruns a task whose worker process or node died.
    :param runtime_env: Ray runtime environment of the tasks, e.g. ``{"env_vars": {...}}`` or
        ``{"working_dir": "."}`` to ship this checkout to a cluster without spikenas installed.
    :raises SpikeNASError: if Ray is not installed or a bad value is given.
    """

    name = "ray"
    splits_shared_work = True  # fast mode's passes are sharded over the workers
    in_process = False

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_retries: int = 3,
        runtime_env: dict | None = None,
    ) -> None:
        try:
            import ray
        except ImportError as err:
            raise SpikeNASError(
                "--executor ray needs Ray: pip install 'spikenas[ray]' (or pip install ray)"
            ) from err
        if workers is not None and workers < 1:
            raise SpikeNASError(f"workers must be >= 1 or None (all CPUs), got {workers}")
        if num_cpus <= 0 or num_gpus < 0:
            raise SpikeNASError(f"num_cpus must be > 0 and num_gpus >= 0, got {num_cpus} and {num_gpus}")
        if max_retries < 0:
            raise SpikeNASError(f"max_retries must be >= 0, got {max_retries}")
        self._ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                ray.init(
                    address=address, runtime_env=runtime_env, include_dashboard=False,
                    log_to_driver=False, logging_level="WARNING",
                )
            except (ConnectionError, ValueError, RuntimeError) as err:
                raise SpikeNASError(f"cannot connect to the Ray cluster at {address!r}: {err}") from err
            self._owns_ray = True
        self.address = address
        self.num_cpus, self.num_gpus, self.max_retries = num_cpus, num_gpus, max_retries
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // num_cpus))
        self.workers = workers
        self._threads = max(1, math.floor(num_cpus))
        self._task = ray.remote(_run_task)
        self._runtime_env = runtime_env
        self._refs: dict[int, tuple[Any, Any]] = {}

    def _share(self, shared: Any) -> list:
        """Object-store reference of ``shared``, put once per executor (boxed: see ``_worker_shared``)."""
        key = id(shared)
        if key not in self._refs:
            self._refs[key] = (shared, self._ray.put(shared))  # holding ``shared`` keeps its id unique
        return [self._refs[key][1]]

    def imap_unordered(self, fn: ShardFn, items: Sequence, *, shared: Any = None) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(shared, items[index]))`` as tasks finish, at most ``workers`` in flight.

        A task whose worker died is rerun by Ray (``max_retries``); an exception raised by ``fn``
        is raised here. Tasks still in flight when the iteration stops (an exception, an interrupt,
        ``close()``) are cancelled by killing their workers.
        """
        ray = self._ray
        boxed = self._share(shared)
        options = dict(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries)
        if self._runtime_env is not None:
            options["runtime_env"] = self._runtime_env  # also when joining a Ray that was started elsewhere
        task = self._task.options(**options, retry_exceptions=False)
        pending: dict[Any, int] = {}
        queue = iter(enumerate(items))
        try:
            while True:
                while len(pending) < self.workers:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    pending[task.remote(fn, nxt[1], boxed, self._threads)] = nxt[0]
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:
                        raise err.as_instanceof_cause() from None
                    except ray.exceptions.RayError as err:
                        raise SpikeNASError(
                            f"task {index} did not finish after {self.max_retries} retries: {type(err).__name__}: {err}"
                        ) from err
                    yield index, result
        finally:
            # Killing the worker, not interrupting it: a task interrupted mid-import (spikingjelly imports
            # torch._inductor on a neuron's first step) leaves half-initialised modules in a worker Ray
            # would reuse. A killed worker is replaced by a fresh one.
            for ref in pending:
                ray.cancel(ref, force=True)

    def map_shards(self, fn: ShardFn, shards: Sequence, *, shared: Any = None) -> list:
        """``[fn(shared, shard) for shard in shards]``, computed as Ray tasks; shard order kept."""
        out: list = [None] * len(shards)
        for index, result in self.imap_unordered(fn, shards, shared=shared):
            out[index] = result
        return out

    def describe(self) -> dict:
        return {
            "executor": "ray", "address": self.address, "workers": self.workers, "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus, "max_retries": self.max_retries, "ray": self._ray.__version__,
        }

    def close(self) -> None:
        """Drop the shared objects; shut Ray down if this executor started it."""
        self._refs.clear()
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Executor = LocalExecutor | RayExecutor


def make_executor(
    kind: str = "local", *, address: str | None = None, workers: int | None = None, **options: Any
) -> Executor:
    """The executor a CLI's ``--executor`` / ``--ray-address`` / ``--workers`` ask for."""
    if kind == "local":
        if address is not None:
            raise SpikeNASError("--ray-address needs --executor ray")
        return LocalExecutor()
    if kind == "ray":
        return RayExecutor(address, workers=workers, **options)
    raise SpikeNASError(f"executor must be one of {EXECUTORS}, got {kind!r}")


def add_executor_arguments(parser: Any) -> None:
    """Add ``--executor``, ``--ray-address`` and ``--workers`` to an argparse parser."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help="where to score/train (default local)")
    parser.add_argument(
        "--ray-address", help="Ray cluster to join (HOST:6379 or auto); default: start Ray on this machine"
    )
    parser.add_argument("--workers", type=positive_int,
                        help="ray: most tasks at once (default: every CPU of the cluster)")


def executor_from_args(args: Any) -> Executor:
    return make_executor(args.executor, address=args.ray_address, workers=args.workers)


# ---- candidate scoring for the search algorithms -------------------------------------------------

Candidate = tuple["Cells", int]  # cells and their parameter count


def score_shard(evaluator: Evaluator, shard: Sequence[Candidate]) -> list[CandidateRecord]:
    """Score every candidate of a shard with a journal-less copy of the search's evaluator."""
    return [evaluator.evaluate(cells, params=params) for cells, params in shard]


def shard_candidates(candidates: Sequence[Candidate], *, shards_per_worker: int = 4, workers: int = 1) -> list[list]:
    """Group candidates into shards by the ops on edge (0,1) of each cell, keeping enumeration order.

    Candidates that differ only behind the leading edge stay together, so a shared-work scorer
    still shares node values inside a shard. Groups larger than needed to give every worker
    ``shards_per_worker`` shards are cut into consecutive pieces.
    """
    groups: dict[tuple, list] = {}
    for cand in candidates:
        groups.setdefault(tuple(g.ops[0] for g in cand[0]), []).append(cand)
    size = max(1, math.ceil(len(candidates) / max(1, shards_per_worker * workers)))
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def prefetch(
    evaluator: Evaluator,
    candidates: Iterable[Cells],
    *,
    executor: Executor,
    params: Sequence[int] | None = None,
    shard_fn: ShardFn = score_shard,
    progress: bool = False,
) -> int:
    """Score ``candidates`` on ``executor`` and park the records in ``evaluator`` for ``evaluate``.

    Candidates the evaluator answers itself (memoised, resumed, disconnected) and repeats are not
    sent. Each shard's records are journaled as the shard arrives (:meth:`Evaluator.park`), so an
    interrupt loses only the shards in flight; ``evaluate`` later counts and returns each parked record
    exactly as if it had scored it, so the search's order, counters and tie-breaking are those of a
    local search. On an in-process executor with the plain :func:`score_shard` every shard is one
    candidate (nothing is shared between candidates there), so each is journaled before the next starts.

    :param candidates: cell tuples, in the order the search will evaluate them.
    :param params: parameter count of each candidate when the search already knows them.
    :param shard_fn: ``fn(evaluator, [(cells, params), ...]) -> [CandidateRecord, ...]`` run per shard.
    :returns: the number of candidates scored remotely.
    """
    todo: list[Candidate] = []
    seen = set()
    for index, cells in enumerate(candidates):
        cells = tuple(cells)
        if cells in seen or evaluator.is_known(cells) or not all(g.is_connected() for g in cells):
            continue
        seen.add(cells)
        todo.append((cells, network_params(cells, evaluator.config) if params is None else int(params[index])))
    if not todo:
        return 0
    if getattr(executor, "in_process", False) and shard_fn is score_shard:
        shards = [[candidate] for candidate in todo]
    else:
        shards = shard_candidates(todo, workers=executor.workers)
    with Progress(len(todo), f"scoring on {executor.name} ({executor.workers} workers)", enabled=progress) as bar:
        for _, records in executor.imap_unordered(shard_fn, shards, shared=evaluator.shipped()):
            evaluator.park(records)
            bar.update(len(records))
    return len(todo)


def fast_shard(evaluator: SharedEvaluator, shard: list[tuple[Cells, int]], *, position: int | None = None
               ) -> list[CandidateRecord]:
    """Score one shard of a pass with a shipped :class:`SharedEvaluator` (``shard_fn`` of
    :func:`prefetch`): ``[(cells, params), ...]`` -> records, in shard order."""
    return evaluator.evaluate_many([c for c, _ in shard], params=[p for _, p in shard], position=position)


def check_shardable(evaluator: Evaluator) -> None:
    """Raise unless ``evaluator``'s passes can be scored shard by shard on an executor."""
    fast = getattr(evaluator, "fast", None)
    if fast is not None and fast.proxy_batch is not None:
        raise SpikeNASError(
            f"fast mode's proxy screening (proxy_batch {fast.proxy_batch}) keeps the top fraction of a whole pass, "
            "which shards on an executor cannot reproduce: drop --proxy-batch or use --executor local"
        )


def prefetch_pass(
    evaluator: SharedEvaluator,
    candidates: list[Cells],
    *,
    executor: Executor,
    params: list[int] | None = None,
    progress: bool = False,
) -> int:
    """Score one pass of fast mode on ``executor`` and park the records for :meth:`SharedEvaluator.evaluate_many`.

    The candidates the evaluator will score itself (not memoised, resumed or parked, connected,
    first occurrences) are sharded by :func:`spikenas.executor.prefetch`; every shard is scored with
    the position where the whole pass differs, so the records equal those of scoring the pass in
    this process. A shard whose scoring raises fails alone (in this process the pass fails whole).

    :raises SpikeNASError: if the evaluator screens with a proxy (see :func:`check_shardable`).
    :returns: the number of candidates scored on the executor.
    """
    check_shardable(evaluator)
    candidates = [tuple(c) for c in candidates]
    todo, seen = [], set()
    for cells in candidates:
        if cells not in seen and not evaluator.is_known(cells) and all(g.is_connected() for g in cells):
            seen.add(cells)
            todo.append(cells)
    if not todo:
        return 0
    # The whole pass's position (as SharedEvaluator.evaluate_many takes it), also when a resume left part of it.
    shard_fn = functools.partial(fast_shard, position=first_difference(candidates))
    return prefetch(evaluator, candidates, executor=executor, params=params, shard_fn=shard_fn, progress=progress)
