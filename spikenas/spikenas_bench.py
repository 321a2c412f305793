"""SpikeNAS-Bench's cell space, registered through the public op registry, and its CSV records.

The benchmark (tju-sun-lab/SpikeNAS-Bench) trained every cell of a SNASNet-style space whose edges
hold one of five ops, coded 0..4: ``zero``, ``skip`` and ``LIF(v_th) -> Conv3x3 -> BN`` with
v_th 0.5, 1.0 or 1.5. Importing this module registers those ops and the op set :data:`OP_SET`
in code order, so ``Genotype.index(OP_SET)`` equals the benchmark's ``arch_id``
(``sum(op_k * 5**k)`` over :data:`spikenas.space.EDGES`). :func:`bench_macro` is the benchmark's
network (SNASNet's CIFAR-10 macro, the same cell in both positions) at any width; at width 128 its
memory model equals the ``params`` column.

:func:`load_bench` also reads tables in the same layout from other op sets, such as the trained ground truth of
:mod:`spikenas.analyze.ground_truth`: an ``op_set`` column names the op set the codes index, and
``op01_c2 .. op23_c2`` (and so on) give the codes of a network's further cells. Their network is the ground
truth's (:func:`spikenas.analyze.ground_truth.network_macro`), one cell per group of op columns.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikenas.errors import SpikeNASError
from spikenas.layers import Layer
from spikenas.network import MacroConfig
from spikenas.neuron import NeuronConfig
from spikenas.ops import OpLayers, get_op_set, lif_conv_bn, list_op_sets, list_ops, register_op, register_op_set
from spikenas.space import EDGES, Genotype

OP_SET = "bench5"
THRESHOLDS = {"lif05_conv3x3": 0.5, "lif10_conv3x3": 1.0, "lif15_conv3x3": 1.5}
BENCH_WIDTH = 128
COLUMNS = ("arch_id", "op01", "op02", "op03", "op12", "op13", "op23", "params", "test_acc")
OP_COLUMNS = ("op01", "op02", "op03", "op12", "op13", "op23")


def _lif_conv(v_threshold: float) -> OpLayers:
    def layers(prefix: str, channels: int, size: int, neuron: NeuronConfig, src: tuple[str, bool]) -> list[Layer]:
        return lif_conv_bn(prefix, channels, size, 3, neuron.with_threshold(v_threshold), src=src)

    return layers


def _register() -> None:
    for name, v_th in THRESHOLDS.items():
        if name not in list_ops():
            register_op(name, nb201=f"lif{v_th:g}_conv_3x3", spiking=True)(_lif_conv(v_th))
    if OP_SET not in list_op_sets():
        register_op_set(OP_SET, ("zero", "skip", *THRESHOLDS))


_register()


def bench_macro(*, width: int = BENCH_WIDTH, timesteps: int = 5) -> MacroConfig:
    """SpikeNAS-Bench's network: SNASNet's CIFAR-10 macro (2 cells, hidden 1024, 100 outputs voted by 10)."""
    return MacroConfig(num_cells=2, width=width, timesteps=timesteps, num_classes=10, vote=10, hidden=1024)


def genotype(arch_id: int) -> Genotype:
    """The cell of benchmark record ``arch_id``."""
    return Genotype.from_index(int(arch_id), OP_SET)


@dataclass(frozen=True)
class BenchRecords:
    """Benchmark records, as parallel arrays in file order.

    SpikeNAS-Bench's records (op set :data:`OP_SET`) have one group of op codes: the same cell in both positions
    of :func:`bench_macro`. Records of another op set have one group per cell of their network.
    """

    arch_id: np.ndarray  # int64 [R]: sum over cells c of (cell c's index in the op set) * k**(6 c)
    ops: np.ndarray  # int64 [R, 6 * groups] op codes on EDGES, cell by cell
    params: np.ndarray  # int64 [R] parameters of the trained network
    test_acc: np.ndarray  # float64 [R] test accuracy, %
    op_set: str = OP_SET  # the op set the codes index

    def __len__(self) -> int:
        return len(self.arch_id)

    @property
    def cell_columns(self) -> int:
        """Groups of op codes per record (cells that may differ)."""
        return self.ops.shape[1] // len(EDGES)

    def genotypes(self) -> list[Genotype]:
        """The cell of each record (records with one group of op codes)."""
        if self.cell_columns != 1:
            raise SpikeNASError(f"records of {self.cell_columns} cells have no single genotype; use networks()")
        return [Genotype.from_index(int(a), self.op_set) for a in self.arch_id]

    def networks(self) -> list[tuple[Genotype, ...]]:
        """The cells of each record's network, in order: SpikeNAS-Bench's cell twice; otherwise one per group."""
        if self.op_set == OP_SET:
            return [(g, g) for g in self.genotypes()]
        k = len(get_op_set(self.op_set))
        return [tuple(Genotype.from_index(int(code @ k ** np.arange(len(EDGES))), self.op_set)
                      for code in row.reshape(self.cell_columns, len(EDGES))) for row in self.ops]

    def macro(self) -> MacroConfig:
        """The network the records were trained in (:func:`bench_macro`, or the ground truth's)."""
        if self.op_set == OP_SET:
            return bench_macro()
        from spikenas.analyze.ground_truth import network_macro  # the tables' producer owns their network

        return network_macro(self.cell_columns)

    def connected(self) -> np.ndarray:
        """bool ``[R]``: every cell's input reaches its output."""
        return np.array([all(g.is_connected() for g in cells) for cells in self.networks()], dtype=bool)

    def subset(self, rows: np.ndarray) -> BenchRecords:
        return BenchRecords(self.arch_id[rows], self.ops[rows], self.params[rows], self.test_acc[rows], self.op_set)


def _cell(row: dict, column: str, kind: type, where: str) -> int | float:
    """The value of ``column`` in a CSV ``row`` as ``kind`` (int or float); every value the benchmark
    records is present and finite, so an empty, malformed, NaN or infinite one is an error."""
    text = row.get(column)
    if text is None or not text.strip():
        raise SpikeNASError(f"{where}: column {column} is empty (every record has every column)")
    try:
        value = kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise SpikeNASError(f"{where}: column {column} holds {text!r}, not {expected}") from None
    if not math.isfinite(value):
        raise SpikeNASError(f"{where}: column {column} holds {text!r}; every value must be a finite number")
    return value


def load_bench(path: str | Path) -> BenchRecords:
    """Read a SpikeNAS-Bench CSV (columns include :data:`COLUMNS`), or a table in its layout from another op set
    (an ``op_set`` column, the same in every row, and ``op01_c2 ..`` for further cells).

    :raises SpikeNASError: missing file or columns, an empty, malformed or non-finite value (naming its line and
        column), an unknown or mixed op set, or an ``arch_id`` that disagrees with its op codes.
    """
    path = Path(path)
    if not path.is_file():
        raise SpikeNASError(f"benchmark file {path} not found (a SpikeNAS-Bench CSV with columns {COLUMNS})")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in fields]
        if missing:
            raise SpikeNASError(f"{path}: missing columns {missing}; found {fields}")
        op_columns = list(OP_COLUMNS)
        cell = 2
        while f"{OP_COLUMNS[0]}_c{cell}" in fields:
            op_columns += [f"{c}_c{cell}" for c in OP_COLUMNS]
            cell += 1
        rows, op_sets = [], set()
        for r in reader:
            where = f"{path}, line {reader.line_num}"
            rows.append((
                _cell(r, "arch_id", int, where), [_cell(r, c, int, where) for c in op_columns],
                _cell(r, "params", int, where), _cell(r, "test_acc", float, where),
            ))
            op_sets.add((r.get("op_set") or OP_SET).strip())
    if not rows:
        raise SpikeNASError(f"{path} holds no records")
    if len(op_sets) > 1:
        raise SpikeNASError(f"{path}: column op_set holds {sorted(op_sets)}; a table holds one op set")
    op_set = op_sets.pop()
    if op_set not in list_op_sets():
        raise SpikeNASError(f"{path}: op_set {op_set!r} is not registered; registered: {', '.join(list_op_sets())}")
    if op_set == OP_SET and len(op_columns) > len(OP_COLUMNS):
        raise SpikeNASError(f"{path}: SpikeNAS-Bench records hold one cell (its network repeats it), found "
                            f"{len(op_columns) // len(OP_COLUMNS)} groups of op columns")
    ops = np.array([r[1] for r in rows], dtype=np.int64)
    k = len(get_op_set(op_set))
    if ops.min() < 0 or ops.max() >= k:
        raise SpikeNASError(f"{path}: op codes must be in 0..{k - 1}, found {ops.min()}..{ops.max()}")
    arch_id = np.array([r[0] for r in rows], dtype=np.int64)
    expected = (ops * k ** np.arange(ops.shape[1], dtype=np.int64)).sum(axis=1)
    bad = np.flatnonzero(expected != arch_id)
    if bad.size:
        raise SpikeNASError(f"{path}: arch_id {arch_id[bad[0]]} disagrees with its op codes {ops[bad[0]].tolist()}")
    return BenchRecords(
        arch_id, ops, np.array([r[2] for r in rows], dtype=np.int64), np.array([r[3] for r in rows], dtype=np.float64),
        op_set,
    )
