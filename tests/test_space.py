"""Genotypes, op sets and the op registry."""

from __future__ import annotations

import itertools
import random

import pytest

from spikenas.errors import SpikeNASError
from spikenas.neuron import NeuronConfig
from spikenas.ops import get_op, get_op_set, lif_conv_bn, list_op_sets, list_ops, register_op, register_op_set
from spikenas.space import EDGES, Genotype, connected_mask, digits_table, enumerate_genotypes, num_genotypes


@pytest.mark.parametrize("op_set", ["2O", "3O", "5O"])
def test_index_round_trip(op_set):
    k = len(get_op_set(op_set))
    assert num_genotypes(op_set) == k**6
    indices = range(k**6) if k < 5 else random.Random(0).sample(range(k**6), 500)
    for i in indices:
        g = Genotype.from_index(i, op_set)
        assert g.index(op_set) == i
        assert Genotype.from_nb201(g.to_nb201()) == g
        assert Genotype.parse(str(i), op_set) == g


def test_index_digit_order_matches_benchmark_arch_id():
    # arch_id = sum(op_k * 5**k) over edges (0,1),(0,2),(0,3),(1,2),(1,3),(2,3)
    codes = (3, 0, 1, 4, 2, 3)
    arch_id = sum(c * 5**k for k, c in enumerate(codes))
    g = Genotype.from_index(arch_id, "5O")
    assert g.ops == tuple(get_op_set("5O")[c] for c in codes)
    assert (digits_table("5O")[arch_id] == codes).all()


def test_nb201_string_layout():
    s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    g = Genotype.from_nb201(s)
    assert g.ops == ("conv3x3", "conv3x3", "skip", "avgpool3x3", "conv3x3", "skip")
    assert g.to_nb201() == s


@pytest.mark.parametrize(
    "text",
    ["", "|skip_connect~0|", "|skip_connect~0|+|skip_connect~0|+|skip_connect~0|",
     "|skip_connect~0|+|skip_connect~0|skip_connect~0|+|skip_connect~0|skip_connect~1|skip_connect~2|",
     "|bogus_op~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
     "skip,skip,skip"],
)
def test_malformed_strings_raise(text):
    with pytest.raises(SpikeNASError, match="genotype|unknown op"):
        Genotype.from_nb201(text)


def test_bad_index_and_op_set():
    with pytest.raises(SpikeNASError, match="index"):
        Genotype.from_index(64, "2O")
    with pytest.raises(SpikeNASError, match="unknown op set"):
        get_op_set("7O")
    with pytest.raises(SpikeNASError, match="not in op set"):
        Genotype.from_index(1, "5O").index("2O")  # skip on (0,1), zero elsewhere: 2O has no zero


def _paths_exist(g: Genotype) -> bool:
    """Brute force: enumerate every node sequence 0 -> ... -> 3."""
    nonzero = {e for e, o in zip(EDGES, g.ops, strict=True) if not get_op(o).is_zero}
    for middle in ([], [1], [2], [1, 2]):
        path = [0, *middle, 3]
        if all((a, b) in nonzero for a, b in itertools.pairwise(path)):
            return True
    return False


def test_connectivity_matches_path_enumeration():
    mask = connected_mask("5O")
    for i, g in enumerate(enumerate_genotypes("5O")):
        assert mask[i] == g.is_connected() == _paths_exist(g)
    assert mask.sum() < len(mask)
    assert connected_mask("3O").all()


def test_live_edges():
    # e01 conv feeds node 1, but node 1 reaches the output only through zero edges: dead.
    g = Genotype(("conv3x3", "zero", "skip", "zero", "zero", "zero"))
    assert g.live_edges() == (False, False, True, False, False, False)


def test_user_registers_op_and_op_set_without_editing_the_package():
    @register_op("test_lif05_conv3x3", spiking=True)
    def _layers(prefix, channels, size, neuron: NeuronConfig, src):
        return lif_conv_bn(prefix, channels, size, 3, neuron.with_threshold(0.5), src=src)

    register_op_set("test_set", ("zero", "skip", "test_lif05_conv3x3"))
    assert "test_lif05_conv3x3" in list_ops("test_*")
    assert "test_set" in list_op_sets("test_*")
    g = Genotype.from_index(26, "test_set")
    assert g.ops[0] == "test_lif05_conv3x3"
    assert Genotype.from_nb201(g.to_nb201()) == g
    module = get_op("test_lif05_conv3x3").build(4, NeuronConfig())
    assert module[0].v_threshold == 0.5
    with pytest.warns(UserWarning, match="already registered"):
        register_op("test_lif05_conv3x3")(_layers)
    with pytest.raises(SpikeNASError, match="unknown ops"):
        register_op_set("test_bad", ("skip", "nope"))
