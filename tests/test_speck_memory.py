"""Speck's memory model and core assignment, against sinabs' own (with a stand-in for samna's import)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import samna_standin
import torch
from torch import nn

from spikenas.hardware.speck import CORES, KI, assign_cores, fit_matrix, kernel_memory, mappable, neuron_memory

needs_sinabs = pytest.mark.skipif(importlib.util.find_spec("sinabs") is None,
                                  reason="sinabs is not installed (pip install --no-deps sinabs==3.1.3 pbr)")


def _pow2(x: int) -> int:
    return 1 << (x - 1).bit_length()


def test_memory_rounds_each_factor_up_to_a_power_of_two() -> None:
    rng = np.random.default_rng(0)
    c_in, c_out, k = rng.integers(1, 300, 50), rng.integers(1, 300, 50), rng.integers(1, 17, 50)
    h, w = rng.integers(1, 129, 50), rng.integers(1, 129, 50)
    expect_k = [int(a) * _pow2(int(kk * kk)) * _pow2(int(b)) for a, b, kk in zip(c_in, c_out, k, strict=True)]
    expect_n = [int(b) * _pow2(int(y)) * _pow2(int(x)) for b, y, x in zip(c_out, h, w, strict=True)]
    assert kernel_memory(c_in, c_out, k).tolist() == expect_k
    assert neuron_memory(c_out, h, w).tolist() == expect_n
    assert kernel_memory(32, 256, 3).item() == 32 * 16 * 256  # 3x3 -> 16, 256 stays
    with pytest.raises(ValueError, match=">= 1"):
        kernel_memory(4, 0, 3)


def _random_layers(rng: np.random.Generator, count: int) -> list[dict]:
    layers = []
    for _ in range(count):
        k = int(rng.choice([1, 3, 5]))
        size = int(rng.choice([5, 7, 14, 16, 28, 33]))
        layers.append({"c_in": int(rng.integers(1, 129)), "c_out": int(rng.integers(1, 257)), "k": k,
                       "size": size, "bias": bool(rng.random() < 0.2)})
    return layers


def _our_memory(layers: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out = [lay["size"] - lay["k"] + 1 for lay in layers]  # sinabs' convolutions here have no padding
    c_in, c_out, k = ([lay[key] for lay in layers] for key in ("c_in", "c_out", "k"))
    kern = kernel_memory(c_in, c_out, k)
    neur = neuron_memory([lay["c_out"] for lay in layers], out, out)
    bias = np.array([lay["c_out"] if lay["bias"] else 0 for lay in layers])
    return kern, neur, bias


def test_assignment_uses_each_core_once_and_respects_memory() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        layers = _random_layers(rng, int(rng.integers(1, 11)))
        fits = fit_matrix(*_our_memory(layers))
        cores = assign_cores(fits)
        brute = _brute_force_feasible(fits)
        assert (cores is not None) == brute
        if cores is not None:
            assert len(set(cores)) == len(cores) and all(fits[i, c] for i, c in enumerate(cores))


def _brute_force_feasible(fits: np.ndarray) -> bool:
    """Whether some injective layer -> core map respects ``fits`` (depth-first search; a reference)."""
    layers = fits.shape[0]

    def place(i: int, used: frozenset) -> bool:
        return i == layers or any(place(i + 1, used | {j}) for j in np.flatnonzero(fits[i]) if j not in used)

    return place(0, frozenset())


def test_vectorised_feasibility_equals_the_matching() -> None:
    rng = np.random.default_rng(2)
    nets = [_random_layers(rng, int(rng.integers(1, 12))) for _ in range(300)]
    width = max(len(n) for n in nets)
    kern = np.zeros((len(nets), width), np.int64)
    neur, bias = kern.copy(), kern.copy()
    present = np.zeros((len(nets), width), bool)
    for i, net in enumerate(nets):
        k, n, b = _our_memory(net)
        kern[i, : len(net)], neur[i, : len(net)], bias[i, : len(net)], present[i, : len(net)] = k, n, b, True
    got = mappable(kern, neur, bias, present)
    expected = [assign_cores(fit_matrix(*_our_memory(net))) is not None for net in nets]
    assert got.tolist() == expected
    assert 0 < got.sum() < len(nets)  # the draw holds both feasible and infeasible networks


def test_cores_are_speck_as_sinabs_lists_them() -> None:
    assert [(c.kernel // KI, c.neuron // KI) for c in CORES] == [
        (16, 64), (16, 64), (16, 64), (32, 32), (32, 32), (64, 16), (64, 16), (16, 16), (16, 16)]


@needs_sinabs
def test_memory_and_mapping_agree_with_sinabs() -> None:
    samna_standin.install()
    import sinabs.layers as sl
    from sinabs.backend.dynapcnn.chips.dynapcnn import DynapcnnConfigBuilder
    from sinabs.backend.dynapcnn.dynapcnn_layer import DynapcnnLayer
    from sinabs.backend.dynapcnn.mapping import get_valid_mapping

    constraints = DynapcnnConfigBuilder.get_constraints()
    assert [(c.kernel_memory, c.neuron_memory, c.bias_memory) for c in constraints] == [
        (c.kernel, c.neuron, c.bias) for c in CORES]
    rng = np.random.default_rng(3)
    feasible = infeasible = 0
    for _ in range(60):
        layers = _random_layers(rng, int(rng.integers(1, 11)))
        theirs = {}
        for i, lay in enumerate(layers):
            conv = nn.Conv2d(lay["c_in"], lay["c_out"], lay["k"], bias=lay["bias"])
            with torch.no_grad():
                conv.weight.fill_(0.01)
            theirs[i] = DynapcnnLayer(conv, sl.IAFSqueeze(batch_size=1), (lay["c_in"], lay["size"], lay["size"]),
                                      pool=[[1, 1]], discretize=False)
        kern, neur, bias = _our_memory(layers)
        summaries = [theirs[i].memory_summary() for i in range(len(layers))]
        assert [int(s["kernel"]) for s in summaries] == kern.tolist()
        assert [int(s["neuron"]) for s in summaries] == neur.tolist()
        assert [int(s["bias"]) for s in summaries] == bias.tolist()
        ours = assign_cores(fit_matrix(kern, neur, bias))
        try:
            mapping = get_valid_mapping(theirs, constraints)
        except ValueError:
            mapping = None
        if mapping is None:
            infeasible += 1
            assert ours is None
        else:
            feasible += 1
            assert ours == [mapping[i] for i in range(len(layers))]
    assert feasible and infeasible
