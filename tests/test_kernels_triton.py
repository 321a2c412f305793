"""The Triton backend against the PyTorch references: on a CUDA GPU when there is one, else on the
CPU interpreter (TRITON_INTERPRET=1, set before triton is imported; tests/test_kernels_dispatch.py
launches this file so). Interpreter shapes stay small: every program runs serially in NumPy.
Integers must be equal; float64 kernels agree to rtol 1e-12 (atol 1e-12 * G * N).
"""

from __future__ import annotations

import os
import zlib

import pytest
import torch
from spikenas.kernels import _triton
from spikenas.kernels.gram import reference as gram_ref
from spikenas.kernels.logdet import reference as logdet_ref
from spikenas.kernels.pack import reference as pack_ref

if _triton.unavailable_reason() is not None:
    pytest.skip(f"triton backend unavailable: {_triton.unavailable_reason()}", allow_module_level=True)

from spikenas.kernels.gram import triton as gram_tr  # noqa: E402
from spikenas.kernels.logdet import triton as logdet_tr  # noqa: E402
from spikenas.kernels.pack import triton as pack_tr  # noqa: E402

ON_GPU = not _triton.interpreting()
DEVICE = "cuda" if ON_GPU else "cpu"
RATES = (0.0, 1.0, 0.5, 0.03)
gpu_only = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU (running on the CPU interpreter)")


def _gen(*key: object) -> torch.Generator:
    seed = zlib.crc32(repr((os.environ.get("SPIKENAS_TEST_SEED", "0"), key)).encode())
    return torch.Generator().manual_seed(seed)


def _spikes(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """CPU bool spikes whose rows fire at rates drawn from RATES."""
    rates = torch.tensor(RATES)[torch.randint(len(RATES), shape[:-1], generator=gen)]
    return torch.rand(shape, generator=gen) < rates.unsqueeze(-1)


def _close(got: torch.Tensor, want: torch.Tensor, groups: int, n: int) -> None:
    assert got.dtype == torch.float64 and got.shape == want.shape
    torch.testing.assert_close(got.cpu(), want, rtol=1e-12, atol=1e-12 * groups * n)


def test_popcount_mode_follows_the_device() -> None:
    assert _triton.use_swar() == (not ON_GPU)


@pytest.mark.parametrize("n", [1, 63, 65, 1000])
@pytest.mark.parametrize(
    "dtype", [torch.bool, torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64]
)
def test_pack_matches_reference(n: int, dtype: torch.dtype) -> None:
    gen = _gen("pack", n, str(dtype))
    x = _spikes((2, 3, n), gen)
    if dtype.is_floating_point:
        x = torch.where(x, torch.where(torch.rand(x.shape, generator=gen) < 0.5, -1.0, 2.0), -0.0).to(dtype)
    else:
        x = x.to(dtype)
    assert torch.equal(pack_tr.pack_bits(x.to(DEVICE)).cpu(), pack_ref.pack_bits(x))


@pytest.mark.parametrize("b,n", [(1, 65), (2, 63), (255, 130), (40, 4097)])
def test_hamming_matches_reference(b: int, n: int) -> None:
    x = _spikes((2, b, n), _gen("hamming", b, n))
    packed = pack_ref.pack_bits(x)
    got = gram_tr.hamming_gram(packed.to(DEVICE), n)
    assert got.dtype == torch.int32
    assert torch.equal(got.cpu(), gram_ref.hamming_gram(packed, n))


@pytest.mark.parametrize("kind", ["sahd", "sahd_rate", "hamming"])
@pytest.mark.parametrize("b,n,groups", [(1, 65, 9), (2, 63, 5), (255, 100, 2), (20, 1000, 6)])
def test_spike_gram_matches_reference(kind: str, b: int, n: int, groups: int) -> None:
    x = _spikes((2, groups, b, n), _gen("spike", kind, b, n))
    packed = pack_ref.pack_bits(x)
    want = gram_ref.spike_gram(packed, n, kind=kind, alpha=0.7, eps=1e-3)
    _close(gram_tr.spike_gram(packed.to(DEVICE), n, kind=kind, alpha=0.7, eps=1e-3), want, groups, n)


def test_hamming_split_over_words_with_atomics() -> None:
    # One slice, one tile and many words: the word axis is split over programs (integer atomics).
    n = 200_000 if ON_GPU else 1275
    x = _spikes((3, n), _gen("split", n))
    packed = pack_ref.pack_bits(x)
    assert torch.equal(gram_tr.hamming_gram(packed.to(DEVICE), n).cpu(), gram_ref.hamming_gram(packed, n))


def test_spike_gram_dense_matches_reference() -> None:
    gen = _gen("dense")
    x = _spikes((3, 17, 200), gen).float()
    want = gram_ref.spike_gram_dense(x, kind="sahd")
    _close(gram_tr.spike_gram_dense(x.to(DEVICE), kind="sahd"), want, 3, 200)
    sym = gram_tr.spike_gram_dense(x.to(DEVICE), kind="sahd").cpu()
    assert torch.equal(sym, sym.T)


def test_slogdet_matches_reference_and_flags_singular() -> None:
    a = torch.randn(4, 30, 30, dtype=torch.float64, generator=_gen("logdet"))
    a[3, 7] = a[3, 2]
    sign, logabs = logdet_tr.slogdet(a.to(DEVICE))
    want_sign, want_logabs = logdet_ref.slogdet(a)
    assert torch.equal(sign.cpu(), want_sign) and want_sign[3] == 0
    torch.testing.assert_close(logabs.cpu(), want_logabs, rtol=1e-10, atol=1e-8)


@gpu_only
def test_hardware_and_swar_popcounts_agree_on_gpu() -> None:
    x = _spikes((3, 4, 130, 5000), _gen("swar"))
    packed = pack_ref.pack_bits(x).cuda()
    hw = gram_tr.hamming_gram(packed, 5000, use_swar=False)
    assert torch.equal(hw, gram_tr.hamming_gram(packed, 5000, use_swar=True))
    k_hw = gram_tr.spike_gram(packed, 5000, use_swar=False)
    assert torch.equal(k_hw, gram_tr.spike_gram(packed, 5000, use_swar=True))


@gpu_only
@pytest.mark.parametrize("b,n,groups", [(255, 4097, 8), (256, 131072, 1), (512, 20000, 3)])
def test_large_shapes_on_gpu(b: int, n: int, groups: int) -> None:
    x = _spikes((groups, b, n), _gen("large", b, n))
    packed = pack_ref.pack_bits(x)
    got = pack_tr.pack_bits(x.cuda().float())
    assert torch.equal(got.cpu(), packed)
    assert torch.equal(gram_tr.hamming_gram(got, n).cpu(), gram_ref.hamming_gram(packed, n))
    _close(gram_tr.spike_gram(got, n), gram_ref.spike_gram(packed, n), groups, n)
