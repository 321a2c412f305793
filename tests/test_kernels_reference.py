"""The pure-PyTorch references against brute force: bit order, Hamming counts, kernel formula,
and the explicit singular rule of the log-det."""

from __future__ import annotations

import pytest
import torch
from spikenas.kernels.gram import reference as gram_ref
from spikenas.kernels.logdet import reference as logdet_ref
from spikenas.kernels.pack import reference as pack_ref


def _spikes(shape: tuple[int, ...], rate: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < rate


@pytest.mark.parametrize("n", [1, 63, 64, 65, 130])
def test_pack_bit_order_and_zero_padding(n: int) -> None:
    x = _spikes((3, n), 0.5, n)
    packed = pack_ref.pack_bits(x)
    assert packed.shape == (3, (n + 63) // 64) and packed.dtype == torch.int64
    for r in range(3):
        for j in range(64 * packed.shape[-1]):
            bit = (int(packed[r, j // 64]) >> (j % 64)) & 1
            assert bit == (int(x[r, j]) if j < n else 0)
    assert torch.equal(pack_ref.unpack_bits(packed, n), x)


def test_pack_high_bit_is_the_sign_of_the_int64() -> None:
    x = torch.zeros(1, 64, dtype=torch.bool)
    x[0, 63] = True
    assert int(pack_ref.pack_bits(x)[0, 0]) == -(2**63)


@pytest.mark.parametrize("b,n", [(1, 5), (2, 63), (9, 130)])
def test_hamming_reference_brute_force(b: int, n: int) -> None:
    x = _spikes((2, b, n), 0.3, b * n)
    h = gram_ref.hamming_gram(pack_ref.pack_bits(x), n)
    brute = (x.unsqueeze(-2) != x.unsqueeze(-3)).sum(dim=-1).to(torch.int32)
    assert torch.equal(h, brute)


def test_kernel_formula_brute_force() -> None:
    n, alpha, eps = 70, 0.7, 1e-3
    x = _spikes((4, 3, n), 0.4, 7)
    k = gram_ref.spike_gram_dense(x.float(), kind="sahd", alpha=alpha, eps=eps)
    want = torch.zeros(3, 3, dtype=torch.float64)
    for g in range(4):
        rates = x[g].double().mean(dim=-1)
        for i in range(3):
            for j in range(3):
                h = float((x[g, i] != x[g, j]).sum())
                expected = n * (rates[i] * (1 - rates[j]) + (1 - rates[i]) * rates[j])
                want[i, j] += n - alpha * h / (expected + eps)
    torch.testing.assert_close(k, want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("b", [1, 2, 5, 64, 255])
def test_slogdet_matches_torch_on_regular_matrices(b: int) -> None:
    a = torch.randn(3, b, b, dtype=torch.float64, generator=torch.Generator().manual_seed(b))
    sign, logabs = logdet_ref.slogdet(a)
    want_sign, want_logabs = torch.linalg.slogdet(a)
    assert torch.equal(sign, want_sign)
    torch.testing.assert_close(logabs, want_logabs, rtol=1e-12, atol=1e-10)


def _singular_cases() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    cases = [torch.zeros(1, 1, dtype=torch.float64), torch.full((7, 7), 131072.0, dtype=torch.float64)]
    for b in (2, 3, 33, 255):
        for _ in range(5):
            a = torch.randn(b, b, dtype=torch.float64, generator=g)
            i, j = torch.randperm(b, generator=g)[:2].tolist()
            a[j] = a[i]
            cases.append(a)
        low_rank = torch.randn(b, b - 1, dtype=torch.float64, generator=g)
        cases.append(low_rank @ low_rank.T)
        zero_row = torch.randn(b, b, dtype=torch.float64, generator=g)
        zero_row[b // 2] = 0
        cases.append(zero_row)
    return cases


def test_slogdet_singular_is_explicit() -> None:
    for a in _singular_cases():
        sign, logabs = logdet_ref.slogdet(a)
        assert sign.item() == 0 and logabs.item() == float("-inf"), a.shape


def test_slogdet_duplicate_rows_defeat_an_exact_zero_test() -> None:
    # Why the rule is a tolerance: LAPACK's LU leaves a tiny nonzero pivot for most of these.
    finite = sum(torch.linalg.slogdet(a).sign.item() != 0 for a in _singular_cases())
    assert finite > 0


def test_slogdet_nonfinite_and_empty() -> None:
    sign, logabs = logdet_ref.slogdet(torch.full((2, 3, 3), float("nan")))
    assert sign.isnan().all() and logabs.isnan().all()
    sign, logabs = logdet_ref.slogdet(torch.zeros(4, 0, 0))
    assert torch.equal(sign, torch.ones(4, dtype=torch.float64))
    assert torch.equal(logabs, torch.zeros(4, dtype=torch.float64))
