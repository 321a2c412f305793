"""The C++ backend (spikenas._native) against the PyTorch references, for every instruction-set
variant this CPU runs. Integers (packed words, Hamming counts) must be equal; float64 kernel
matrices agree to rtol 1e-12 (plus atol 1e-12 * G * N for entries near zero: the reference sums
over G in another order); log-dets to rtol 1e-10, atol 1e-8, with identical signs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import pytest
import torch
from spikenas.kernels import _cpp
from spikenas.kernels.gram import reference as gram_ref
from spikenas.kernels.logdet import reference as logdet_ref
from spikenas.kernels.pack import reference as pack_ref

if _cpp.unavailable_reason() is not None:
    pytest.skip(f"cpp backend not built: {_cpp.unavailable_reason()}", allow_module_level=True)

from spikenas.kernels.gram import cpp as gram_cpp  # noqa: E402
from spikenas.kernels.logdet import cpp as logdet_cpp  # noqa: E402
from spikenas.kernels.pack import cpp as pack_cpp  # noqa: E402

NATIVE = _cpp.native()
IMPLS = NATIVE.supported_impls()
RATES = (0.0, 1.0, 0.5, 0.03)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest):
    """Runs the test with one instruction-set variant, then restores the default (the best)."""
    NATIVE.set_impl(request.param)
    yield request.param
    NATIVE.set_impl(IMPLS[-1])


@pytest.fixture(params=["dense", "sparse", "auto"])
def path(request: pytest.FixtureRequest):
    """Runs the test with the Gram's dense or sparse path forced, or the cost model's choice."""
    NATIVE.set_gram_path(request.param)
    yield request.param
    NATIVE.set_gram_path("auto")


def _gen(*key: object) -> torch.Generator:
    """Seeded by the test case (and $SPIKENAS_TEST_SEED, to draw other fresh inputs)."""
    seed = zlib.crc32(repr((os.environ.get("SPIKENAS_TEST_SEED", "0"), key)).encode())
    return torch.Generator().manual_seed(seed)


def _spikes(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Bool spikes whose rows fire at rates drawn from RATES (all-silent and all-firing rows too)."""
    rates = torch.tensor(RATES)[torch.randint(len(RATES), shape[:-1], generator=gen)]
    return torch.rand(shape, generator=gen) < rates.unsqueeze(-1)


def _as_dtype(x: torch.Tensor, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """Spikes as ``dtype``; floats get assorted nonzero values and -0.0 for silence."""
    if not dtype.is_floating_point:
        return x.to(dtype)
    values = torch.where(torch.rand(x.shape, generator=gen) < 0.5, -1.0, 2.5)
    silence = torch.where(torch.rand(x.shape, generator=gen) < 0.5, -0.0, 0.0)
    return torch.where(x, values, silence).to(dtype)


def test_variant_is_the_best_supported() -> None:
    assert NATIVE.popcount_impl() == IMPLS[-1]
    assert IMPLS[0] == "portable"


@pytest.mark.parametrize("n", [1, 63, 64, 65, 1000, 4097])
@pytest.mark.parametrize(
    "dtype", [torch.bool, torch.uint8, torch.int32, torch.float16, torch.bfloat16, torch.float32, torch.float64]
)
def test_pack_matches_reference(impl: str, n: int, dtype: torch.dtype) -> None:
    gen = _gen("pack", impl, n, str(dtype))
    x = _as_dtype(_spikes((2, 3, 5, n), gen), dtype, gen)
    assert torch.equal(pack_cpp.pack_bits(x), pack_ref.pack_bits(x))


def test_pack_long_rows_and_nan(impl: str) -> None:
    gen = _gen("long", impl)
    x = _spikes((2, 300_001), gen).float()
    x[0, 5] = float("nan")
    x[1, 7] = -0.0
    assert torch.equal(pack_cpp.pack_bits(x), pack_ref.pack_bits(x))
    assert torch.equal(pack_cpp.pack_bits(x.t().contiguous().t()), pack_ref.pack_bits(x))


def test_pack_empty_leading_dim() -> None:
    assert pack_cpp.pack_bits(torch.zeros(0, 4, 70)).shape == (0, 4, 2)


@pytest.mark.parametrize("b", [1, 2, 255])
@pytest.mark.parametrize("n", [1, 63, 65, 1000, 4097])
def test_hamming_matches_reference(impl: str, path: str, b: int, n: int) -> None:
    x = _spikes((3, b, n), _gen("hamming", impl, path, b, n))
    packed = pack_ref.pack_bits(x)
    got = gram_cpp.hamming_gram(packed, n)
    assert got.dtype == torch.int32
    assert torch.equal(got, gram_ref.hamming_gram(packed, n))


def test_hamming_spans_several_word_chunks(impl: str, path: str) -> None:
    n = 64 * 1500 + 17  # more words than one cache chunk of either path
    x = _spikes((70, n), _gen("chunks", impl, path))
    packed = pack_ref.pack_bits(x)
    assert torch.equal(gram_cpp.hamming_gram(packed, n), gram_ref.hamming_gram(packed, n))


@pytest.mark.parametrize("b", [33, 256, 300, 513])
def test_sparse_path_equals_dense_path(impl: str, b: int) -> None:
    """Several runs of 256 rows (300, 513), rows past a group of 32 (33), rows firing more than half
    the time (counted by their zero bits) and silent ones: the same integers either way."""
    n = 64 * 20 + 5
    gen = _gen("paths", impl, b)
    rates = torch.tensor([0.0, 0.01, 0.1, 0.45, 0.55, 0.9, 1.0])[torch.randint(7, (2, b), generator=gen)]
    packed = pack_ref.pack_bits(torch.rand(2, b, n, generator=gen) < rates.unsqueeze(-1))
    got = {}
    try:
        for forced in ("dense", "sparse"):
            NATIVE.set_gram_path(forced)
            got[forced] = gram_cpp.hamming_gram(packed, n)
    finally:
        NATIVE.set_gram_path("auto")
    assert torch.equal(got["sparse"], got["dense"])
    assert torch.equal(got["dense"], gram_ref.hamming_gram(packed, n))


def test_sparse_path_splits_rows_longer_than_its_counters() -> None:
    """A row of more bits than the sparse counters hold per slot (kMaxColumnSum, 2**20 - 16) is
    split into parts, whatever the thread count; all-firing rows reach the bound."""
    n = 2**20 + 64 * 3 + 1
    x = torch.ones(3, n, dtype=torch.bool)
    x[1, ::3] = False
    x[2, 5:] = False
    packed = pack_ref.pack_bits(x)
    threads = torch.get_num_threads()
    try:
        NATIVE.set_gram_path("sparse")
        torch.set_num_threads(1)
        got = gram_cpp.hamming_gram(packed, n)
    finally:
        NATIVE.set_gram_path("auto")
        torch.set_num_threads(threads)
    assert torch.equal(got, gram_ref.hamming_gram(packed, n))


def test_gram_path_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="'auto', 'dense', 'sparse'.*'fast'"):
        NATIVE.set_gram_path("fast")
    assert NATIVE.gram_path() == "auto"


def test_cost_model_picks_sparse_for_sparse_spikes_and_dense_for_dense_ones(impl: str) -> None:
    """The auto choice for clear-cut layer calls (B = 256 at 0.5 % and at 50 %, and B = 1)."""
    n = 64 * 64
    silent = pack_ref.pack_bits(torch.rand(256, n, generator=_gen("model")) < 0.005)
    half = pack_ref.pack_bits(torch.rand(256, n, generator=_gen("model", 2)) < 0.5)
    assert NATIVE.preferred_gram_path(_cpp.array(silent), 256, n // 64) == "sparse"
    assert NATIVE.preferred_gram_path(_cpp.array(half), 256, n // 64) == "dense"
    assert NATIVE.preferred_gram_path(_cpp.array(silent[:1]), 1, n // 64) == "dense"


def _assert_kernel_close(got: torch.Tensor, want: torch.Tensor, groups: int, n: int) -> None:
    assert got.dtype == torch.float64 and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * groups * n)


@pytest.mark.parametrize("kind", ["sahd", "sahd_rate", "hamming"])
@pytest.mark.parametrize("b,n,groups", [(1, 65, 40), (2, 63, 9), (255, 1000, 3), (37, 4097, 12), (5, 1, 7)])
def test_spike_gram_matches_reference(impl: str, path: str, kind: str, b: int, n: int, groups: int) -> None:
    x = _spikes((2, groups, b, n), _gen("spike", impl, path, kind, b, n))
    packed = pack_ref.pack_bits(x)
    want = gram_ref.spike_gram(packed, n, kind=kind, alpha=0.7, eps=1e-3)
    _assert_kernel_close(gram_cpp.spike_gram(packed, n, kind=kind, alpha=0.7, eps=1e-3), want, groups, n)


@pytest.mark.parametrize("dtype", [torch.bool, torch.float32, torch.float16])
@pytest.mark.parametrize("kind", ["sahd", "hamming"])
def test_spike_gram_dense_matches_reference(impl: str, dtype: torch.dtype, kind: str) -> None:
    gen = _gen("dense", impl, str(dtype), kind)
    groups, n = 6, 777
    x = _as_dtype(_spikes((3, groups, 40, n), gen), dtype, gen)
    want = gram_ref.spike_gram_dense(x, kind=kind)
    _assert_kernel_close(gram_cpp.spike_gram_dense(x, kind=kind), want, groups, n)


def test_spike_gram_is_unchanged_by_batching_and_threads() -> None:
    n, groups = 300, 10
    x = _spikes((4, groups, 70, n), _gen("batching"))
    packed = pack_ref.pack_bits(x)
    whole = gram_cpp.spike_gram(packed, n)
    one_by_one = torch.stack([gram_cpp.spike_gram(p, n) for p in packed])
    assert torch.equal(whole, one_by_one)
    halves = gram_cpp.spike_gram(packed[:, :4], n) + gram_cpp.spike_gram(packed[:, 4:], n)
    _assert_kernel_close(halves, whole, groups, n)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = gram_cpp.spike_gram(packed, n)
    finally:
        torch.set_num_threads(threads)
    # Enough tiles for every thread: each entry is summed over G in order, whatever the threads.
    assert torch.equal(single, whole)


def test_kernel_symmetry_and_diagonal(impl: str) -> None:
    n = 500
    x = _spikes((8, 50, n), _gen("sym"))
    k = gram_cpp.spike_gram(pack_ref.pack_bits(x), n)
    assert torch.equal(k, k.T)
    assert torch.equal(k.diagonal(), torch.full((50,), 8.0 * n, dtype=torch.float64))


def _matrices(b: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(2, 3, b, b, dtype=torch.float64, generator=gen)
    return a + b**0.5 * torch.eye(b, dtype=torch.float64) * torch.randn(2, 3, 1, 1, generator=gen).sign()


@pytest.mark.parametrize("b", [1, 2, 3, 31, 33, 64, 100, 255, 300])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_slogdet_matches_reference(impl: str, b: int, dtype: torch.dtype) -> None:
    a = _matrices(b, _gen("logdet", impl, b)).to(dtype)
    sign, logabs = logdet_cpp.slogdet(a)
    want_sign, want_logabs = logdet_ref.slogdet(a)
    assert sign.dtype == logabs.dtype == torch.float64 and sign.shape == (2, 3)
    assert torch.equal(sign, want_sign)
    torch.testing.assert_close(logabs, want_logabs, rtol=1e-10, atol=1e-8)


def test_slogdet_of_spike_kernels(impl: str) -> None:
    x = _spikes((5, 12, 128, 2000), _gen("k", impl))
    k = gram_cpp.spike_gram(pack_ref.pack_bits(x), 2000)
    sign, logabs = logdet_cpp.slogdet(k)
    want_sign, want_logabs = logdet_ref.slogdet(k)
    assert torch.equal(sign, want_sign)
    torch.testing.assert_close(logabs, want_logabs, rtol=1e-10, atol=1e-8)


def test_slogdet_batch_smaller_than_threads_splits_one_matrix(impl: str) -> None:
    a = _matrices(200, _gen("single", impl))[0, 0]
    sign, logabs = logdet_cpp.slogdet(a)
    want_sign, want_logabs = logdet_ref.slogdet(a)
    assert sign.shape == () and torch.equal(sign, want_sign)
    torch.testing.assert_close(logabs, want_logabs, rtol=1e-10, atol=1e-8)


def test_slogdet_singular(impl: str) -> None:
    gen = _gen("singular", impl)
    cases = [torch.zeros(1, 1, dtype=torch.float64), torch.full((9, 9), 3.0, dtype=torch.float64)]
    for b in (2, 3, 40, 255):
        for _ in range(4):
            a = torch.randn(b, b, dtype=torch.float64, generator=gen)
            i, j = torch.randperm(b, generator=gen)[:2].tolist()
            a[j] = a[i]
            cases.append(a)
        zero = torch.randn(b, b, dtype=torch.float64, generator=gen)
        zero[:, b // 3] = 0
        cases.append(zero)
    x = _spikes((4, 64, 300), gen)
    x[:, 10] = x[:, 20]  # two inputs with identical spikes everywhere
    cases.append(gram_cpp.spike_gram(pack_ref.pack_bits(x), 300))
    for a in cases:
        sign, logabs = logdet_cpp.slogdet(a)
        want_sign, want_logabs = logdet_ref.slogdet(a)
        assert sign.item() == want_sign.item() == 0, a.shape
        assert logabs.item() == want_logabs.item() == float("-inf")


def test_singular_rule_is_the_reference_rule() -> None:
    assert NATIVE.SINGULAR_FACTOR == logdet_ref.SINGULAR_FACTOR


def test_slogdet_nonfinite_and_empty() -> None:
    a = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    a[1, 2, 2] = float("nan")
    a[2, 0, 3] = float("inf")
    sign, logabs = logdet_cpp.slogdet(a)
    assert sign[0] == 1 and logabs[0] == 0
    assert sign[1:].isnan().all() and logabs[1:].isnan().all()
    sign, logabs = logdet_cpp.slogdet(torch.zeros(5, 0, 0))
    assert torch.equal(sign, torch.ones(5, dtype=torch.float64))
    assert torch.equal(logabs, torch.zeros(5, dtype=torch.float64))


def test_rejects_tensors_off_the_cpu() -> None:
    meta = torch.empty(2, 70, device="meta")
    with pytest.raises(ValueError, match="spikes"):
        pack_cpp.pack_bits(meta)
    with pytest.raises(ValueError, match="packed"):
        gram_cpp.hamming_gram(torch.empty(2, 2, dtype=torch.int64, device="meta"), 70)
    with pytest.raises(ValueError, match="matrices"):
        logdet_cpp.slogdet(torch.empty(2, 2, device="meta"))


def test_native_checks_buffers() -> None:
    out = torch.empty(3, 3, dtype=torch.int32).numpy()
    with pytest.raises(ValueError, match="packed"):
        NATIVE.hamming_gram(torch.zeros(3, 5, dtype=torch.int64).numpy(), 1, 3, 2, out)
    with pytest.raises(ValueError, match="out"):
        NATIVE.hamming_gram(torch.zeros(3, 2, dtype=torch.int64).numpy(), 1, 3, 2, out.T)
    with pytest.raises(ValueError, match="kind"):
        NATIVE.spike_gram(
            torch.zeros(3, 2, dtype=torch.int64).numpy(),
            1,
            1,
            3,
            2,
            100,
            "rbf",
            0.5,
            1e-3,
            torch.empty(3, 3, dtype=torch.float64).numpy(),
        )
    with pytest.raises(ValueError, match="impl"):
        NATIVE.set_impl("sse9")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_selects_the_variant_at_import() -> None:
    done = _run("import spikenas._native as m; print(m.popcount_impl())", SPIKENAS_NATIVE_ISA="portable")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "portable"


def test_env_naming_an_unsupported_variant_makes_cpp_unavailable() -> None:
    code = (
        "from spikenas import kernels\n"
        "print(kernels.diagnostics()['cpp'])\n"
        "try:\n"
        "    kernels.resolve_backend('cpp')\n"
        "except kernels.BackendUnavailable as err:\n"
        "    print('raised', err)\n"
    )
    done = _run(code, SPIKENAS_NATIVE_ISA="sse9", SPIKENAS_BACKEND="")
    assert done.returncode == 0, done.stderr
    assert "SPIKENAS_NATIVE_ISA=sse9" in done.stdout and "raised" in done.stdout
