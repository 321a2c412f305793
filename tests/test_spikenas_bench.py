"""SpikeNAS-Bench's space: arch_id = genotype index, and the memory model equals the params column."""

from __future__ import annotations

import numpy as np
import pytest

from spikenas import spikenas_bench
from spikenas.errors import SpikeNASError
from spikenas.memory import enumerate_params, network_params
from spikenas.network import build_network
from spikenas.ops import get_op, get_op_set
from tests.conftest import BENCH_DEV


@pytest.fixture(scope="module")
def dev() -> spikenas_bench.BenchRecords:
    if not BENCH_DEV.exists():
        pytest.skip(f"SpikeNAS-Bench dev split not found at {BENCH_DEV} (set SPIKENAS_SHARED)")
    return spikenas_bench.load_bench(BENCH_DEV)


def test_op_set_order_and_thresholds() -> None:
    assert get_op_set(spikenas_bench.OP_SET) == ("zero", "skip", "lif05_conv3x3", "lif10_conv3x3", "lif15_conv3x3")
    for name, v_th in spikenas_bench.THRESHOLDS.items():
        op = get_op(name)
        assert op.spiking and not op.is_zero
        module = op.build(4, spikenas_bench.bench_macro().neuron)
        assert module[0].v_threshold == v_th


def test_arch_id_is_genotype_index(dev: spikenas_bench.BenchRecords) -> None:
    for arch_id, codes in zip(dev.arch_id[:500], dev.ops[:500], strict=True):
        g = spikenas_bench.genotype(arch_id)
        assert g.index(spikenas_bench.OP_SET) == arch_id
        assert [get_op_set(spikenas_bench.OP_SET).index(o) for o in g.ops] == codes.tolist()


def test_memory_model_equals_params_column(dev: spikenas_bench.BenchRecords) -> None:
    table = enumerate_params(spikenas_bench.OP_SET, spikenas_bench.bench_macro())
    np.testing.assert_array_equal(table[dev.arch_id], dev.params)
    assert network_params(spikenas_bench.genotype(0), spikenas_bench.bench_macro()) == 17_179_620


def test_connected_matches_ten_percent_records(dev: spikenas_bench.BenchRecords) -> None:
    connected = dev.connected()
    assert (dev.test_acc[~connected] == 10.0).all()
    assert dev.test_acc[connected].min() > 80.0


@pytest.mark.parametrize("arch_id", [0, 3, 6753, 15624])
def test_built_network_numel_equals_memory_model(arch_id: int) -> None:
    macro = spikenas_bench.bench_macro(width=8)
    g = spikenas_bench.genotype(arch_id)
    net = build_network(g, macro, seed=0)
    assert sum(p.numel() for p in net.parameters()) == network_params(g, macro)


def test_load_bench_rejects_bad_files(tmp_path) -> None:
    with pytest.raises(SpikeNASError, match="not found"):
        spikenas_bench.load_bench(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("arch_id,op01,op02,op03,op12,op13,op23,params,test_acc\n7,1,0,0,0,0,0,1,10\n")
    with pytest.raises(SpikeNASError, match="arch_id 7"):
        spikenas_bench.load_bench(bad)
    bad.write_text("arch_id,op01\n1,1\n")
    with pytest.raises(SpikeNASError, match="missing columns"):
        spikenas_bench.load_bench(bad)
