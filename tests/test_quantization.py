"""Weight quantization: error bounds, idempotence, granularity, and bytes equal to the memory model's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.memory import network_params, params_to_bytes
from spikenas.network import build_network
from spikenas.quantization import (
    count_params,
    model_bytes,
    quant_scale,
    quantization_table,
    quantize_model,
    quantize_tensor,
    scale_count,
)
from spikenas.space import Genotype


def _weight(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 3, 3, 3, generator=g)
    w[2] *= 20.0  # one channel with a much wider range
    return w


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_error_bound_levels_and_idempotence(bits, granularity):
    w = _weight()
    q = quantize_tensor(w, bits=bits, granularity=granularity)
    s = quant_scale(w, bits=bits, granularity=granularity)
    assert q.shape == w.shape and q.dtype == w.dtype
    assert ((w - q).abs() <= s / 2 + 1e-6 * s).all()
    levels = q / s
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert levels.abs().max() <= 2 ** (bits - 1) - 1 + 1e-3
    assert torch.equal(quantize_tensor(q, bits=bits, granularity=granularity), q)


def test_per_channel_is_finer_than_per_tensor():
    w = _weight()
    err_t = (w - quantize_tensor(w, bits=4, granularity="per_tensor")).abs()
    err_c = (w - quantize_tensor(w, bits=4, granularity="per_channel")).abs()
    assert quant_scale(w, bits=4, granularity="per_channel").shape == (6, 1, 1, 1)
    narrow = [0, 1, 3, 4, 5]
    assert err_c[narrow].max() < err_t[narrow].max()
    assert torch.equal(err_c[2], err_t[2])  # the widest channel sets the per-tensor scale


def test_more_bits_less_error_and_exact_zero():
    w = _weight(1)
    errors = [float((w - quantize_tensor(w, bits=b)).abs().max()) for b in (2, 4, 8, 16)]
    assert errors == sorted(errors, reverse=True)
    assert torch.equal(quantize_tensor(torch.zeros(3, 2), bits=4), torch.zeros(3, 2))


def test_one_dimensional_tensors_use_one_scale():
    b = torch.tensor([0.1, -2.0, 0.7])
    assert quant_scale(b, bits=4, granularity="per_channel").ndim == 0


@pytest.mark.parametrize("bits, granularity", [(1, "per_tensor"), (32, "per_tensor"), (8, "per_row")])
def test_bad_settings(bits, granularity):
    with pytest.raises(SpikeNASError, match="bits|granularity"):
        quantize_tensor(torch.ones(2, 2), bits=bits, granularity=granularity)


def test_quantize_model_copies_and_bytes_match_memory_model(tiny_macro):
    g = Genotype.from_index(200, "3O")
    model = build_network(g, tiny_macro, seed=0)
    before = [p.clone() for p in model.parameters()]
    quantized = quantize_model(model, bits=4, granularity="per_channel")
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert any(not torch.equal(a, q) for a, q in zip(before, quantized.parameters(), strict=True))
    n = network_params(g, tiny_macro)
    assert count_params(model) == n
    for bits in (4, 8, 32):
        assert model_bytes(model, bits=bits) == params_to_bytes(n, bits)


def test_table_rows(tiny_macro):
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    calls = []
    rows = quantization_table(model, lambda m: calls.append(m) or 0.5, bits=[8, 4], granularity="per_channel")
    assert [r["bits"] for r in rows] == [32, 8, 4]
    assert rows[0]["bytes"] == 4 * count_params(model) and rows[2]["bytes"] == (count_params(model) * 4 + 7) // 8
    assert rows[1]["scale_bytes"] == 4 * scale_count(model, granularity="per_channel") == 4 * (3 + 1 + 2 + 1)
    assert rows[2]["max_abs_error"] >= rows[1]["max_abs_error"] > 0
    assert calls[0] is model and calls[1] is not model
