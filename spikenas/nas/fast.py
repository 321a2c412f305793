"""Fast mode of the search: candidates of a pass share their computation instead of each being
built and run from scratch.

Under per-edge weight seeding (:func:`spikenas.network.seed_per_edge`) the module of op ``o`` on
edge ``e`` of cell ``p`` has the same weights in every candidate, and BatchNorm in train mode
normalises with the statistics of its own input, so every value in the network depends only on the
ops that lead to it. :class:`SharedEvaluator` exploits this, for the candidates of one pass:

* **prefix caching**: the stem, the cells before the first position where candidates differ and the
  downconv into it are run once; their activations and kernel contributions are reused;
* **shared cell evaluation** at that position: node 1 is computed once per op on edge (0,1), node 2
  once per ops on edges (0,1), (0,2), (1,2), each edge output once per (edge, op, source node) and each
  LIF's spikes and kernel once per (source node, neuron settings); a candidate's kernel is the sum of
  the contributions of its parts (with its own call count, so ``reduce='mean'`` divides correctly);
  only node 3 (a sum of cached edge outputs) is formed per candidate;
* **stacked evaluation** of what follows the varying cell (downconv, later cells, head): up to
  ``stack_elements`` worth of candidates run through each module in one call, with per-candidate
  BatchNorm statistics (:mod:`spikenas.nas.stacked`), so the per-call overhead that dominates
  small networks is paid once per module and chunk instead of once per candidate;
* **memoisation** of identical networks (the evaluator's memo and journal), **disconnected cells**
  (input cut off from output) scored -inf without being run (status ``disconnected``), and
  **batched log-dets**: the kernels of ``chunk`` candidates are stacked and go through one
  :func:`spikenas.kernels.slogdet` call;
* **proxy screening** (optional, :class:`FastConfig`): all candidates of a pass are first ranked on a
  small batch (the first ``proxy_batch`` samples of the first batch) with the same shared
  computation, then re-scored at full size down the proxy ranking in rounds of ``rescore_fraction``
  of the pass (at least ``rescore_min``): with ``race_top`` k > 0, rounds go on until one leaves the
  set of the k best full scores unchanged (a race: candidates the proxy ranks too low get a chance
  as long as the top is still moving); with 0, one round. The others are recorded with status
  ``screened``, score -inf and their ``proxy_score``.

Without screening the scores equal those of building each network with
``build_network(cells, config, seed=seed, weight_seeding="per_edge")`` and scoring it with
:func:`spikenas.scoring.score_network` up to float rounding (the kernel parts are summed in another
order; convolutions see the same tensors). With screening, the pick and the order of the
candidates scored at full size equal exact mode's whenever exact mode's best candidates are among
those re-scored (measured by ``bench/search_time.py``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from spikingjelly.activation_based.neuron import BaseNode
from torch import nn

from spikenas import kernels
from spikenas.errors import SpikeNASError
from spikenas.memory import network_params
from spikenas.nas.engine import CandidateRecord, Cells, Evaluator
from spikenas.nas.stacked import Stack, run_stacked, shared_stage, stacked_cell
from spikenas.network import Cell, build_network, edge_op
from spikenas.ops import get_op
from spikenas.scoring import get_score, list_scores
from spikenas.scoring.recorder import KINDS, set_bn_mode
from spikenas.space import EDGES, Genotype, first_difference

_EDGE = {edge: i for i, edge in enumerate(EDGES)}
JOURNAL_PIECE = 256  # fast mode without a proxy: candidates scored together and journaled before the next piece


@dataclass(frozen=True)
class FastConfig:
    """Options of the fast mode (the network, data and score come from the evaluator)."""

    proxy_batch: int | None = None  # rank each pass on this many samples first; None: score all at full size
    rescore_fraction: float = 0.05  # a round of full-size re-scoring: this fraction of a pass's proxy ranking
    rescore_min: int = 8  # a round re-scores at least this many candidates
    race_top: int = 10  # more rounds while a round changes the set of this many best full scores; 0: one round
    chunk: int = 64  # candidates whose kernels go through one batched log-det
    stack_elements: int = 2**23  # candidates run stacked through shared modules: at most this many elements per value

    def __post_init__(self) -> None:
        if self.proxy_batch is not None and self.proxy_batch < 2:
            raise SpikeNASError(f"proxy_batch must be >= 2 or None, got {self.proxy_batch}")
        if not 0.0 < self.rescore_fraction <= 1.0:
            raise SpikeNASError(f"rescore_fraction must be in (0, 1], got {self.rescore_fraction}")
        if self.rescore_min < 1:
            raise SpikeNASError(f"rescore_min must be >= 1, got {self.rescore_min}")
        if self.race_top < 0:
            raise SpikeNASError(f"race_top must be >= 0 (0: one round of re-scoring), got {self.race_top}")
        if self.chunk < 1:
            raise SpikeNASError(f"chunk must be >= 1, got {self.chunk}")
        if self.stack_elements < 1:
            raise SpikeNASError(f"stack_elements must be >= 1, got {self.stack_elements}")

    def to_dict(self) -> dict:
        return asdict(self)

    def rescored(self, n: int) -> int:
        """How many of ``n`` proxy-ranked candidates a round re-scores at full size."""
        if self.proxy_batch is None:
            return n
        return min(n, max(self.rescore_min, math.ceil(self.rescore_fraction * n)))


@dataclass
class _Part:
    """A computed value with the kernel contributions of the LIF calls that produced it."""

    value: torch.Tensor  # [T, B, ...] float
    kernel: torch.Tensor | None  # float64 [B, B], summed over the calls; None when there were none
    calls: int  # LIF calls (layers x timesteps) behind ``kernel``


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def _fold(parts: list[torch.Tensor | None], out: torch.Tensor | None = None) -> torch.Tensor | None:
    """``parts`` summed left to right as chained :func:`_add` does, None parts skipped; None when all
    are. With ``out`` (not aliasing any part) a sum of two or more parts is written there instead of
    into new tensors (same values); a single part is returned as it is."""
    present = [p for p in parts if p is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    if out is None:
        total = present[0]
        for p in present[1:]:
            total = total + p
        return total
    torch.add(present[0], present[1], out=out)
    for p in present[2:]:
        out.add_(p)
    return out


class SharedEvaluator(Evaluator):
    """An :class:`~spikenas.nas.engine.Evaluator` (memo, journal, resume, counters) that scores
    many candidates at once with shared computation; its networks use per-edge weight seeding.

    :meth:`evaluate` scores one network exactly (a fresh per-edge-seeded network);
    :meth:`evaluate_many` scores a pass's candidates with the sharing described in the module.
    """

    def __init__(self, *args, fast: FastConfig | None = None, **kwargs) -> None:
        kwargs["weight_seeding"] = "per_edge"
        super().__init__(*args, **kwargs)
        self.fast = fast or FastConfig()
        if not shareable(self.score_config.name):
            shareable_names = [n for n in list_scores() if shareable(n)]
            raise SpikeNASError(
                f"fast mode shares spike kernels summed over every LIF call (scores {', '.join(shareable_names)}); "
                f"got score {self.score_config.name!r}"
            )
        self.formula = self.score_config.kernel_formula()
        if self.score_config.option("bn_mode") != "train":
            raise SpikeNASError(
                f"fast mode needs bn_mode='train' (batch statistics), got {self.score_config.bn_mode!r}"
            )
        if self.fast.proxy_batch is not None and self.fast.proxy_batch > self.batches[0].shape[0]:
            raise SpikeNASError(
                f"proxy_batch {self.fast.proxy_batch} exceeds the batch size {self.batches[0].shape[0]}"
            )
        self._edge_modules: dict[tuple[int, int, str], nn.Module] = {}
        template = build_network(
            [Genotype(("skip",) * len(EDGES))] * self.config.num_cells, self.config, seed=self.seed,
            weight_seeding="per_edge",
        )
        self._stem = template.stem
        self._downconvs = {}
        position = 0
        for stage in template.cells:
            if isinstance(stage, Cell):
                position += 1
            else:
                self._downconvs[position] = stage
        last = max(i for i, m in enumerate(template.head) if isinstance(m, BaseNode))
        self._head = template.head[: last + 1]  # the layers after the last LIF do not enter the score
        for module in (self._stem, self._head, *self._downconvs.values()):
            set_bn_mode(module, "train")

    # ----------------------------------------------------------------------------------------
    # modules and kernels

    def _edge_module(self, position: int, edge: int, op_name: str) -> nn.Module:
        key = (position, edge, op_name)
        if key not in self._edge_modules:
            channels = self.config.cell_widths[position]
            module = edge_op(op_name, channels, self.config.neuron, seed=self.seed, position=position, edge=edge)
            self._edge_modules[key] = set_bn_mode(module, "train")
        return self._edge_modules[key]

    def _run(self, module: nn.Module, x: torch.Tensor) -> _Part:
        """Run ``module`` on ``x`` from reset state, folding every LIF call into a kernel (as one
        candidate of :func:`~spikenas.nas.stacked.run_stacked`: the same layer calls, kernels
        summed in call order)."""
        part = run_stacked(module, x, 1, self._stacked_gram)
        return _Part(part.value, None if part.kernel is None else part.kernel[0], int(part.calls[0]))

    # ----------------------------------------------------------------------------------------
    # cells

    def _edge(self, position: int, edge: int, op_name: str, src_key: tuple, src: torch.Tensor,
              cache: dict) -> _Part:
        """Output of one edge op on node value ``src`` (identified by ``src_key``), cached; its
        first stage, when ops share one (:func:`~spikenas.nas.stacked.shared_stage`: a leading
        LIF, a pooling op), is computed once per node for all of them."""
        key = ("edge", edge, op_name, src_key)
        if key in cache:
            return cache[key]
        module = self._edge_module(position, edge, op_name)
        shared = shared_stage(module)
        if shared is None:
            part = self._run(module, src)
        else:
            stage, sig, rest = shared
            first = self._stage(stage, sig, src_key, src, cache)
            if rest is None:
                part = first
            else:
                after = self._run(rest, first.value)
                part = _Part(after.value, _add(first.kernel, after.kernel), first.calls + after.calls)
        cache[key] = part
        return part

    def _stage(self, stage: nn.Module, sig: tuple, src_key: tuple, src: torch.Tensor, cache: dict) -> _Part:
        """A shared first stage on a node, cached by its signature; a LIF's spikes bring their kernel."""
        key = ("stage", sig, src_key)
        if key not in cache:
            cache[key] = self._run(stage, src)
        return cache[key]

    def _node(self, position: int, genotype: Genotype, dst: int, nodes: list[tuple[tuple, torch.Tensor]],
              caches: tuple[dict, ...], out: torch.Tensor | None = None,
              kernel_out: torch.Tensor | None = None) -> _Part:
        """Node ``dst`` of a cell: the sum of its non-zero in-edges in source order, as :class:`Cell`
        adds them; the parts of edges from node ``src`` are cached in ``caches[src]``. With ``out``
        (``[T, B, ...]``, possibly strided) the value is written there; with ``kernel_out``
        (float64 ``[B, B]``) a kernel summed from several edges is."""
        values, kernels, calls = [], [], 0
        for src in range(dst):
            e = _EDGE[(src, dst)]
            op_name = genotype.ops[e]
            if get_op(op_name).is_zero:
                continue
            src_key, src_value = nodes[src]
            part = self._edge(position, e, op_name, src_key, src_value, caches[src])
            values.append(part.value)
            kernels.append(part.kernel)
            calls += part.calls
        if out is None:
            total = _fold(values) if values else torch.zeros_like(nodes[0][1])
        elif not values:
            total = out.zero_()
        elif len(values) == 1:
            total = out.copy_(values[0])
        else:
            total = _fold(values, out)
        return _Part(total, _fold(kernels, kernel_out), calls)

    def _cell(self, position: int, genotype: Genotype, x: torch.Tensor, input_key: tuple,
              shared: dict, group: dict, out: torch.Tensor | None = None,
              kernel_out: tuple[torch.Tensor, torch.Tensor] | None = None) -> _Part:
        """One cell on input ``x`` (identified by ``input_key``). Node 1 and everything computed from
        nodes 0 and 1 is cached in ``shared``; node 2 and what is computed from it in ``group``
        (callers clear it when node 2 changes); node 3 is computed each time, into ``out`` when given.
        ``kernel_out``: (float64 ``[B, B]`` for the cell's kernel, one for node 3's), written when
        a kernel is a sum (a kernel of one part is returned as that part)."""
        caches = (shared, shared, group)
        nodes: list[tuple[tuple, torch.Tensor]] = [(input_key, x)]
        kernels, calls = [], 0
        for dst in (1, 2, 3):
            if dst < 3:
                ops = tuple(genotype.ops[_EDGE[(s, d)]] for d in range(1, dst + 1) for s in range(d))
                key = (input_key, dst, ops)
                cache = caches[dst]
                if ("node", key) not in cache:
                    cache[("node", key)] = self._node(position, genotype, dst, nodes, caches)
                part = cache[("node", key)]
            else:
                key = (input_key, 3, genotype.ops)
                part = self._node(position, genotype, dst, nodes, caches, out,
                                  None if kernel_out is None else kernel_out[1])
            nodes.append((key, part.value))
            kernels.append(part.kernel)
            calls += part.calls
        return _Part(nodes[3][1], _fold(kernels, None if kernel_out is None else kernel_out[0]), calls)

    # ----------------------------------------------------------------------------------------
    # networks

    def _suffix(self, candidates: list[Cells], start: int, x: Stack) -> Stack:
        """Everything after cell ``start - 1`` for stacked candidates: downconv and cell for
        positions >= start, then the head (each module runs once on all of them)."""
        for position in range(start, len(candidates[0])):
            down = run_stacked(self._downconvs[position], x.value, x.n, self._stacked_gram)
            x = Stack(down.value, x.n, _add(x.kernel, down.kernel), x.calls + down.calls)
            x = stacked_cell(x, [c[position] for c in candidates],
                             functools.partial(self._edge_module, position), self._stacked_gram)
        head = run_stacked(self._head, x.value, x.n, self._stacked_gram)
        return Stack(head.value, x.n, _add(x.kernel, head.kernel), x.calls + head.calls)

    def _stacked_gram(self, spikes: torch.Tensor) -> torch.Tensor:
        """``[..., T, B, N]`` spikes -> float64 ``[..., B, B]`` kernels summed over T."""
        f = self.formula
        return kernels.spike_gram_dense(spikes, kind=f["kind"], alpha=f["alpha"], backend=self.score_config.backend)

    def _prefix(self, cells: Cells, position: int, images: torch.Tensor) -> _Part:
        """Stem, cells before ``position`` and the downconv into it: the input of cell ``position``."""
        stem = self._stem(images)
        x = stem.unsqueeze(0).expand(self.config.timesteps, *stem.shape)
        kernel, calls = None, 0
        for p in range(position + 1):
            if p > 0:
                down = self._run(self._downconvs[p], x)
                x, kernel, calls = down.value, _add(kernel, down.kernel), calls + down.calls
            if p < position:
                part = self._cell(p, cells[p], x, ("prefix", p), {}, {})
                x, kernel, calls = part.value, _add(kernel, part.kernel), calls + part.calls
        return _Part(x, kernel, calls)

    def kernels_of(
        self, candidates: list[Cells], images: torch.Tensor, *, position: int | None = None
    ) -> Iterator[tuple[int, torch.Tensor, int]]:
        """Combined kernel of every candidate on one batch, with shared computation: the prefix
        once, the varying cell's shared parts once, and what follows it stacked, as many
        candidates at a time as fit ``FastConfig.stack_elements``.

        :param candidates: networks (one genotype per cell position), each connected.
        :param images: float ``[B, C, H, W]``.
        :param position: first cell position where the candidates may differ (they must agree
            before it); None: :func:`first_difference` of ``candidates``. It sets the order in which
            a kernel's parts are summed, so shards of a pass pass the whole pass's position to get
            the whole pass's scores bit for bit.
        :returns: yields ``(index into candidates, float64 [B, B] kernel, LIF calls)`` in an order
            that groups candidates sharing node 2 of the varying cell; the kernel is already divided
            by the calls when ``reduce='mean'``.
        """
        first = candidates[0]
        if position is None:
            position = first_difference(candidates)
        elif not 0 <= position < len(first) or any(c[:position] != first[:position] for c in candidates):
            raise SpikeNASError(f"position {position}: the candidates must share every cell before it")
        with torch.no_grad():
            prefix = self._prefix(first, position, images)
            shared: dict = {}
            group: dict = {}
            group_key = None

            def node2_key(i: int) -> tuple:
                ops = candidates[i][position].ops
                return ops[_EDGE[(0, 1)]], ops[_EDGE[(0, 2)]], ops[_EDGE[(1, 2)]]

            order = sorted(range(len(candidates)), key=lambda i: (node2_key(i), i))
            per_candidate = prefix.value.numel()
            size = max(1, self.fast.stack_elements // max(1, per_candidate))
            x = prefix.value
            b = x.shape[1]
            node_kernel = torch.empty(b, b, dtype=torch.float64)  # scratch for node 3's kernel sums
            for begin in range(0, len(order), size):
                chunk = order[begin : begin + size]
                # node 3 of each candidate is written straight into the stacked layout [T, B, n, ...]
                values = x.new_empty((x.shape[0], b, len(chunk), *x.shape[2:]))
                cell_kernels = torch.empty(len(chunk), b, b, dtype=torch.float64)
                cell_calls = []
                for j, index in enumerate(chunk):
                    if node2_key(index) != group_key:
                        group, group_key = {}, node2_key(index)
                    slot = cell_kernels[j]
                    part = self._cell(position, candidates[index][position], x, ("input", position),
                                      shared, group, values[:, :, j], (slot, node_kernel))
                    if part.kernel is None:
                        slot.zero_()
                    elif part.kernel is not slot:
                        slot.copy_(part.kernel)
                    cell_calls.append(part.calls)
                stacked = Stack(values.view(x.shape[0], b * len(chunk), *x.shape[2:]), len(chunk), cell_kernels,
                                torch.tensor(cell_calls, dtype=torch.int64))
                rest = self._suffix([candidates[i] for i in chunk], position + 1, stacked)
                # rest.kernel holds the cell kernels: never None
                kernels = rest.kernel if prefix.kernel is None else prefix.kernel + rest.kernel
                calls = prefix.calls + rest.calls
                for j, index in enumerate(chunk):
                    if int(calls[j]) == 0:
                        raise SpikeNASError(f"network {[str(g) for g in candidates[index]]} has no LIF calls to score")
                if self.formula["reduce"] == "mean":
                    kernels = kernels / calls.to(torch.float64)[:, None, None]
                for j, index in enumerate(chunk):
                    yield index, kernels[j], int(calls[j])

    def score_many(
        self, candidates: list[Cells], batches: list[torch.Tensor], *, position: int | None = None
    ) -> list[tuple[float, str]]:
        """Score connected candidates on ``batches``: (mean log|det K| over batches, status) each;
        a singular kernel on any batch gives (-inf, ``singular``). ``position``: see :meth:`kernels_of`."""
        logdets = torch.zeros(len(candidates), len(batches), dtype=torch.float64)
        signs = torch.zeros_like(logdets)
        for b, images in enumerate(batches):
            pending: list[tuple[int, torch.Tensor]] = []
            for index, kernel, _ in self.kernels_of(candidates, images, position=position):
                pending.append((index, kernel))
                if len(pending) >= self.fast.chunk:
                    self._logdets(pending, signs[:, b], logdets[:, b])
                    pending = []
            if pending:
                self._logdets(pending, signs[:, b], logdets[:, b])
        out = []
        for i in range(len(candidates)):
            if bool((signs[i] == 0).any()) or not bool(torch.isfinite(logdets[i]).all()):
                out.append((float("-inf"), "singular"))
            else:
                out.append((float(logdets[i].mean()), "ok"))
        return out

    def _logdets(self, pending: list[tuple[int, torch.Tensor]], signs: torch.Tensor, logdets: torch.Tensor) -> None:
        """One batched log-det over the stacked kernels of ``pending``, written at their indices."""
        index = torch.tensor([i for i, _ in pending])
        sign, logdet = kernels.slogdet(torch.stack([k for _, k in pending]), backend=self.score_config.backend)
        signs[index], logdets[index] = sign, logdet

    # ----------------------------------------------------------------------------------------
    # the evaluator interface

    def evaluate_many(
        self, candidates: list[Cells], *, params: list[int] | None = None, position: int | None = None
    ) -> list[CandidateRecord]:
        """Records for ``candidates`` (in their order), sharing computation across them.

        Repeated networks come from the memo (or the resumed journal), records scored elsewhere
        (parked by :func:`spikenas.executor.prefetch`) are taken as they are, disconnected ones are
        refused unbuilt; with a proxy the rest are ranked on it and its best are scored in full.
        Without a proxy the rest are scored in pieces of ``JOURNAL_PIECE``, each journaled as soon as
        it is scored. With one, each full-size round is journaled as soon as it is scored and the
        screened rest when the pass ends, every record tagged with the pass's key
        (:func:`proxy_pass_key`): a pass that a resumed journal holds only in part is ranked on the proxy
        again as a whole, and its journaled rounds are reused instead of scored, so the rounds, the
        race and the screened set are those of an uninterrupted run. Records parked by ``prefetch`` were
        journaled when they arrived.

        :param position: see :meth:`kernels_of`.
        """
        start = time.perf_counter()
        candidates = [tuple(c) for c in candidates]
        if params is None:
            params = [network_params(c, self.config) for c in candidates]
        if position is None and candidates:
            position = first_difference(candidates)  # the whole pass's, also when a resume leaves part of it
        records: list[CandidateRecord | None] = [None] * len(candidates)
        todo: list[int] = []
        parked: set[int] = set()
        first_seen: dict[Cells, int] = {}
        key = proxy_pass_key(candidates, position) if self.fast.proxy_batch is not None else None
        resumed = self._partial_pass(candidates, key)  # scored before an interrupt, in this very pass
        for i, cells in enumerate(candidates):
            self._asked(cells)
            if cells in resumed and cells not in first_seen:
                todo.append(i)
                first_seen[cells] = i
                continue
            if cells in self._memo or cells in first_seen:
                self.counters.memo_hits += 1
                continue
            if cells in self._parked:
                records[i] = self._parked.pop(cells)
                parked.add(i)
                status = records[i].status
                if status == "failed":
                    self.counters.failed += 1
                elif status == "screened":
                    self.counters.screened += 1
                else:
                    self.counters.scored += 1
            elif not all(g.is_connected() for g in cells):
                self.counters.disconnected += 1
                records[i] = CandidateRecord(cells, params[i], float("-inf"), "disconnected")
            else:
                todo.append(i)
            first_seen[cells] = i
        proxy: dict[int, float] = {}
        rounds = [todo] if todo else []
        if todo and self.fast.rescored(len(todo)) < len(todo):
            images = self.batches[0][: self.fast.proxy_batch]
            ranked = self.score_many([candidates[i] for i in todo], [images], position=position)
            proxy = {i: s for i, (s, _) in zip(todo, ranked, strict=True)}
            order = sorted(todo, key=lambda i: (-proxy[i], i))
            size = self.fast.rescored(len(todo))
            rounds = [order[r : r + size] for r in range(0, len(order), size)]
            if not self.fast.race_top:
                rounds = rounds[:1]
        if not proxy and todo:
            # Without a proxy every candidate's record is final when its piece is scored: journal each
            # piece at once, so an interrupt loses only the piece in flight.
            for piece in self._pieces(candidates, todo, position):
                self._score_and_journal(piece, candidates, params, records, proxy, position, None)
            rounds = []
        scored: dict[int, float] = {}
        top: list[int] | None = None
        for batch in rounds:  # proxy rounds: each journaled as soon as it is scored
            batch = sorted(batch)
            fresh_round = [i for i in batch if candidates[i] not in resumed]
            ok = self._score_and_journal(fresh_round, candidates, params, records, proxy, position, key)
            for i in batch:
                if candidates[i] in resumed:
                    records[i] = resumed[candidates[i]]
            if not ok or any(records[i].status == "failed" for i in batch):
                break
            scored.update((i, records[i].score) for i in batch)
            leaders = sorted(scored, key=lambda i: (-scored[i], i))[: self.fast.race_top]
            if leaders == top:
                break
            top = leaders
        for i in todo:
            if records[i] is None and candidates[i] in resumed:
                records[i] = resumed[candidates[i]]
            elif records[i] is None:
                records[i] = CandidateRecord(candidates[i], params[i], float("-inf"), "screened", proxy_score=proxy[i],
                                             proxy_pass=key)
                self.counters.screened += 1
        fresh = [i for i, r in enumerate(records) if r is not None and i not in parked and r.cells not in self._memo]
        seconds = (time.perf_counter() - start) / max(1, len(fresh))
        for i in fresh:
            records[i].seconds = seconds  # the pass's time, shared equally; parked records keep their own
        for i, record in enumerate(records):
            if record is not None and i in parked:
                self._memo[record.cells] = record  # journaled when it was parked
        self._append_all([records[i] for i in fresh])
        for i in fresh:
            self._memo[records[i].cells] = records[i]
        return [self._memo[c] for c in candidates]

    def _pieces(self, candidates: list[Cells], todo: list[int], position: int) -> list[list[int]]:
        """``todo`` (indices into ``candidates``) cut into pieces of at most ``JOURNAL_PIECE`` candidates,
        each scored and journaled before the next: in the order :meth:`kernels_of` groups them (by the ops
        into node 2 of cell ``position``), so a piece keeps most of the pass's sharing."""
        def key(i: int) -> tuple:
            ops = candidates[i][position].ops
            return ops[_EDGE[(0, 1)]], ops[_EDGE[(0, 2)]], ops[_EDGE[(1, 2)]], i

        order = sorted(todo, key=key)
        return [sorted(order[b : b + JOURNAL_PIECE]) for b in range(0, len(order), JOURNAL_PIECE)]

    def _partial_pass(self, candidates: list[Cells], key: str | None) -> dict[Cells, CandidateRecord]:
        """Records of the screened pass ``key`` that a resumed journal holds, when it holds only part of
        the pass (an interrupt cut it); empty when it holds none or all of it (then they are memo hits)."""
        if key is None:
            return {}
        held = {c: r for c in candidates if (r := self._memo.get(c)) is not None and r.proxy_pass == key}
        if not held:
            return {}
        pending = [c for c in candidates if c not in held and c not in self._memo and c not in self._parked
                   and all(g.is_connected() for g in c)]
        return held if pending else {}

    def _score_and_journal(self, batch: list[int], candidates: list[Cells], params: list[int],
                           records: list[CandidateRecord | None], proxy: dict[int, float], position: int | None,
                           proxy_pass: str | None) -> bool:
        """:meth:`_score_round` ``batch``, then memoise and journal its records at once, each tagged with
        ``proxy_pass`` and given an equal share of the batch's time; True for an empty batch."""
        if not batch:
            return True
        begin = time.perf_counter()
        ok = self._score_round(batch, candidates, params, records, proxy, position)
        seconds = (time.perf_counter() - begin) / len(batch)
        for i in batch:
            records[i].proxy_pass = proxy_pass
            records[i].seconds = seconds
            self._memo[candidates[i]] = records[i]
        self._append_all([records[i] for i in batch])
        return ok

    def _score_round(self, batch: list[int], candidates: list[Cells], params: list[int],
                     records: list[CandidateRecord | None], proxy: dict[int, float], position: int | None) -> bool:
        """Score ``batch`` (indices into ``candidates``) at full size into ``records``; False when it
        failed (a batch is scored as a whole: all of it fails together)."""
        try:
            scores = self.score_many([candidates[i] for i in batch], self.batches, position=position)
        except (RuntimeError, SpikeNASError) as err:
            for i in batch:
                records[i] = CandidateRecord(candidates[i], params[i], float("-inf"), "failed", message=str(err))
            self.counters.failed += len(batch)
            return False
        for i, (score, status) in zip(batch, scores, strict=True):
            records[i] = CandidateRecord(candidates[i], params[i], score, status, proxy_score=proxy.get(i))
        self.counters.scored += len(batch)
        return True

    def detached(self) -> SharedEvaluator:
        """A journal-less, memo-less copy (same network, data, score and fast options) to score
        shards in another process; its module caches start empty."""
        return SharedEvaluator(self.config, self.batches, self.score_config, seed=self.seed, fast=self.fast)

    def __getstate__(self) -> dict:
        # Edge modules are a per-process cache, rebuilt on demand (seeded per edge, so identically).
        state = super().__getstate__()
        state["_edge_modules"] = {}
        return state


def proxy_pass_key(candidates: list[Cells], position: int | None) -> str:
    """Key of a screened pass: 16 hex digits of SHA-256 over its candidates (in order) and the cell position
    it searches; the records of one pass share it in the journal."""
    text = f"{position}|" + "|".join(",".join(g.to_nb201() for g in cells) for cells in candidates)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shareable(name: str) -> bool:
    """Whether score ``name`` is a spike-kernel score summed over every LIF call (what fast mode shares)."""
    kernel = get_score(name).kernel
    if kernel is None:
        return False
    return set(kernel["kinds"]) == set(KINDS) and not kernel["per_layer"] and not kernel["over_time"]


__all__ = ["FastConfig", "SharedEvaluator", "shareable"]
