"""SpikeNAS-Bench's cell space, registered through the public op registry, and its CSV records.

The benchmark (tju-sun-lab/SpikeNAS-Bench) trained every cell of a SNASNet-style space whose edges
hold one of five ops, coded 0..4: ``zero``, ``skip`` and ``LIF(v_th) -> Conv3x3 -> BN`` with
v_th 0.5, 1.0 or 1.5. Importing this module registers those ops and the op set :data:`OP_SET`
in code order, so ``Genotype.index(OP_SET)`` equals the benchmark's ``arch_id``
(``sum(op_k * 5**k)`` over :data:`spikenas.space.EDGES`). :func:`bench_macro` is the benchmark's
network (SNASNet's CIFAR-10 macro, the same cell in both positions) at any width; at width 128 its
memory model equals the ``params`` column.
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
    """The benchmark's records, as parallel arrays in file order."""

    arch_id: np.ndarray  # int64 [R]
    ops: np.ndarray  # int64 [R, 6] op codes on EDGES
    params: np.ndarray  # int64 [R] parameters of the width-128 network
    test_acc: np.ndarray  # float64 [R] CIFAR-10 test accuracy, %

    def __len__(self) -> int:
        return len(self.arch_id)

    def genotypes(self) -> list[Genotype]:
        return [genotype(a) for a in self.arch_id]

    def connected(self) -> np.ndarray:
        """bool ``[R]``: the cell's input reaches its output."""
        return np.array([g.is_connected() for g in self.genotypes()], dtype=bool)

    def subset(self, rows: np.ndarray) -> BenchRecords:
        return BenchRecords(self.arch_id[rows], self.ops[rows], self.params[rows], self.test_acc[rows])


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
    """Read a SpikeNAS-Bench CSV (columns include :data:`COLUMNS`).

    :raises SpikeNASError: missing file or columns, an empty, malformed or non-finite value (naming its line and
        column), or an ``arch_id`` that disagrees with its op codes.
    """
    path = Path(path)
    if not path.is_file():
        raise SpikeNASError(f"benchmark file {path} not found (a SpikeNAS-Bench CSV with columns {COLUMNS})")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SpikeNASError(f"{path}: missing columns {missing}; found {reader.fieldnames}")
        rows = []
        for r in reader:
            where = f"{path}, line {reader.line_num}"
            rows.append((
                _cell(r, "arch_id", int, where), [_cell(r, c, int, where) for c in OP_COLUMNS],
                _cell(r, "params", int, where), _cell(r, "test_acc", float, where),
            ))
    if not rows:
        raise SpikeNASError(f"{path} holds no records")
    ops = np.array([r[1] for r in rows], dtype=np.int64)
    k = len(get_op_set(OP_SET))
    if ops.min() < 0 or ops.max() >= k:
        raise SpikeNASError(f"{path}: op codes must be in 0..{k - 1}, found {ops.min()}..{ops.max()}")
    arch_id = np.array([r[0] for r in rows], dtype=np.int64)
    expected = (ops * k ** np.arange(len(EDGES))).sum(axis=1)
    bad = np.flatnonzero(expected != arch_id)
    if bad.size:
        raise SpikeNASError(f"{path}: arch_id {arch_id[bad[0]]} disagrees with its op codes {ops[bad[0]].tolist()}")
    return BenchRecords(
        arch_id, ops, np.array([r[2] for r in rows], dtype=np.int64), np.array([r[3] for r in rows], dtype=np.float64)
    )
