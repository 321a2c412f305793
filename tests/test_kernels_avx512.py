"""The "avx512" instruction-set variant of spikenas._native (csrc/kernels_avx512.cpp) and the variants below it:
every variant this CPU runs gives exactly the PyTorch reference's integers (Hamming counts by the dense and the
sparse path, the hamming-kind Gram, packed words, distinct-pattern counts) on random bit matrices of odd shapes
(rows off multiples of 2, 4, 8 and 32; word counts off multiples of 8, one word, bit tails, several word chunks),
and each lower variant forced at import by $SPIKENAS_NATIVE_ISA (as on a CPU without AVX-512) still does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from spikenas.kernels import _cpp
from spikenas.kernels.gram import reference as gram_ref
from spikenas.kernels.pack import reference as pack_ref
from spikenas.kernels.patterns import reference as patterns_ref

if _cpp.unavailable_reason() is not None:
    pytest.skip(f"cpp backend not built: {_cpp.unavailable_reason()}", allow_module_level=True)

from spikenas.kernels.gram import cpp as gram_cpp  # noqa: E402
from spikenas.kernels.pack import cpp as pack_cpp  # noqa: E402
from spikenas.kernels.patterns import cpp as patterns_cpp  # noqa: E402

NATIVE = _cpp.native()
SUPPORTED = NATIVE.supported_impls()
VARIANTS = ("portable", "popcnt", "avx2", "avx512")
# The CPU flags (Linux /proc/cpuinfo spelling) the avx512 variant needs.
AVX512_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_vpopcntdq")

# (rows, bits per row): rows 1, 3, 5, 7, 9, 33 and 37 leave partial register tiles (4 x 4) and a partial
# 32-row macro tile; 1, 7, 9, 15, 17, 513 and 1030 words leave masked vector tails, 513 and 1030 words span
# several chunks of the dense path (512 words for avx512, 1024 for avx2, 256 for the scalar variants).
SHAPES = [
    (1, 1),
    (3, 64),
    (5, 7 * 64 - 3),
    (7, 9 * 64),
    (9, 15 * 64 + 1),
    (33, 17 * 64 - 63),
    (37, 513 * 64 - 5),
    (6, 1030 * 64 + 11),
]
RATES = (0.0, 1.0, 0.5, 0.15, 0.02)


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def _gen(*key: object) -> torch.Generator:
    """Seeded by the test case (and $SPIKENAS_TEST_SEED, to draw other fresh inputs)."""
    seed = zlib.crc32(repr((os.environ.get("SPIKENAS_TEST_SEED", "0"), "avx512", key)).encode())
    return torch.Generator().manual_seed(seed)


def _spikes(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """bool spikes whose rows fire at rates drawn from RATES (silent and all-firing rows too)."""
    rates = torch.tensor(RATES)[torch.randint(len(RATES), shape[:-1], generator=gen)]
    return torch.rand(shape, generator=gen) < rates.unsqueeze(-1)


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest):
    """Runs the test with one instruction-set variant (skipped where the CPU lacks it), then the best again."""
    if request.param not in SUPPORTED:
        pytest.skip(f"this CPU does not run the {request.param!r} variant (it runs {SUPPORTED})")
    NATIVE.set_impl(request.param)
    yield request.param
    NATIVE.set_impl(SUPPORTED[-1])


@pytest.fixture(params=["dense", "sparse"])
def path(request: pytest.FixtureRequest):
    """Runs the test with the Gram's dense or sparse path forced."""
    NATIVE.set_gram_path(request.param)
    yield request.param
    NATIVE.set_gram_path("auto")


def test_avx512_is_registered_exactly_where_the_cpu_has_it() -> None:
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo to read the CPU flags from")
    if "avx2" not in flags:
        pytest.skip("the CPU lacks AVX2, below which the avx512 variant is not considered")
    has = all(flag in flags for flag in AVX512_FLAGS)
    assert ("avx512" in SUPPORTED) == has, (flags & set(AVX512_FLAGS), SUPPORTED)
    if has:
        assert NATIVE.popcount_impl() == SUPPORTED[-1] == "avx512"


@pytest.mark.parametrize("b,n", SHAPES)
def test_hamming_matches_reference(variant: str, path: str, b: int, n: int) -> None:
    packed = pack_ref.pack_bits(_spikes((2, b, n), _gen("hamming", variant, path, b, n)))
    got = gram_cpp.hamming_gram(packed, n)
    assert got.dtype == torch.int32
    assert torch.equal(got, gram_ref.hamming_gram(packed, n))


@pytest.mark.parametrize("b,n,groups", [(7, 9 * 64 + 1, 3), (33, 64, 5), (5, 1030 * 64 - 1, 2), (1, 70, 4)])
def test_hamming_kind_gram_matches_reference(variant: str, path: str, b: int, n: int, groups: int) -> None:
    """``N - H`` summed over G: integers in float64, so equal whatever the order of the sums."""
    packed = pack_ref.pack_bits(_spikes((2, groups, b, n), _gen("gram", variant, path, b, n)))
    got = gram_cpp.spike_gram(packed, n, kind="hamming")
    assert torch.equal(got, gram_ref.spike_gram(packed, n, kind="hamming"))


@pytest.mark.parametrize("n", [1, 63, 64, 65, 9 * 64 + 5])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.float32, torch.float64])
def test_pack_matches_reference(variant: str, n: int, dtype: torch.dtype) -> None:
    """One element width per branch of pack_words (1, 2, 4, 8 bytes); floats with -0.0 as silence."""
    gen = _gen("pack", variant, n, str(dtype))
    x = _spikes((3, 5, n), gen)
    if dtype.is_floating_point:
        silence = torch.where(torch.rand(x.shape, generator=gen) < 0.5, -0.0, 0.0)
        spikes = torch.where(x, torch.where(torch.rand(x.shape, generator=gen) < 0.5, -1.0, 3.0), silence).to(dtype)
    else:
        spikes = x.to(dtype) * torch.randint(1, 100, x.shape, generator=gen).to(dtype)
    assert torch.equal(pack_cpp.pack_bits(spikes), pack_ref.pack_bits(x))


@pytest.mark.parametrize("rows,n,pool", [(77, 131, 9), (9, 1, 2), (33, 64 * 9 - 1, 5), (5, 64, 4)])
def test_pattern_counts_match_reference(variant: str, rows: int, n: int, pool: int) -> None:
    """Rows drawn from a small pool so that they repeat, packed by the variant, counted by the cpp backend."""
    gen = _gen("patterns", variant, rows, n)
    base = torch.rand(pool, n, generator=gen) < 0.3
    patterns = base[torch.randint(0, pool, (3, 2, rows), generator=gen)].to(torch.float32)
    got = patterns_cpp.count_distinct(pack_cpp.pack_bits(patterns), n)
    assert torch.equal(got, patterns_ref.count_distinct_dense(patterns))


# Run with a variant forced at import, without torch (which takes seconds to import): loads the extension
# file alone, packs the uint8 spikes of in.npz, computes Hamming counts by both paths into out.npz.
_FORCED_RUN = """
import importlib.util, os, sys
import numpy as np
spec = importlib.util.spec_from_file_location("spikenas._native", sys.argv[1])
native = importlib.util.module_from_spec(spec)
spec.loader.exec_module(native)
out = {"impl": np.array(native.popcount_impl())}
with np.load(sys.argv[2]) as inputs:
    for name in sorted(inputs.files):
        spikes = inputs[name]
        b, n = spikes.shape
        packed = np.empty((b, (n + 63) // 64), dtype=np.int64)
        native.pack_bits(spikes, b, n, 0xFF, packed, 1)
        out[name + "_packed"] = packed
        for path in ("dense", "sparse"):
            native.set_gram_path(path)
            h = np.empty((b, b), dtype=np.int32)
            native.hamming_gram(packed, 1, b, packed.shape[1], h, 1)
            out[name + "_" + path] = h
np.savez(sys.argv[3], **out)
"""


def test_each_lower_variant_forced_at_import_is_exact(tmp_path: Path) -> None:
    """What a CPU without AVX-512 (or without AVX2, or popcnt) runs, selected by $SPIKENAS_NATIVE_ISA: its
    packed words, Hamming counts (dense and sparse path) and the pattern counts of its words are exact."""
    if "avx512" not in SUPPORTED:
        pytest.skip(f"this CPU lacks AVX-512 ({', '.join(AVX512_FLAGS)}); test_kernels_cpp forces its variants")
    gen = _gen("forced")
    inputs = {f"s{k}": _spikes((b, n), gen) for k, (b, n) in enumerate([(37, 513 * 64 - 5), (9, 15 * 64 + 1), (3, 1)])}
    pool = torch.rand(4, 200, generator=gen) < 0.3
    inputs["patterns"] = pool[torch.randint(0, 4, (33,), generator=gen)]
    np_inputs = {name: x.to(torch.uint8).numpy() for name, x in inputs.items()}
    np.savez(tmp_path / "in.npz", **np_inputs)
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-c", _FORCED_RUN, NATIVE.__file__, str(tmp_path / "in.npz"), str(tmp_path / name)],
            env={**os.environ, "SPIKENAS_NATIVE_ISA": name, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in SUPPORTED[:-1]
    }
    for name, run in runs.items():
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0, f"{name}: {err}"
        with np.load(tmp_path / f"{name}.npz") as got:
            assert str(got["impl"]) == name
            for key, x in inputs.items():
                packed = pack_ref.pack_bits(x)
                assert torch.equal(torch.from_numpy(got[key + "_packed"]), packed), (name, key)
                want = gram_ref.hamming_gram(packed, x.shape[-1])
                for path in ("dense", "sparse"):
                    assert torch.equal(torch.from_numpy(got[f"{key}_{path}"]), want), (name, key, path)
            counted = patterns_cpp.count_distinct(torch.from_numpy(got["patterns_packed"]), 200)
            assert torch.equal(counted, patterns_ref.count_distinct_dense(inputs["patterns"]))


def test_env_forces_avx512_and_the_setter_switches_back_and_forth() -> None:
    if "avx512" not in SUPPORTED:
        pytest.skip(f"this CPU lacks AVX-512 ({', '.join(AVX512_FLAGS)})")
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('spikenas._native', sys.argv[1])\n"
        "m = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        "print(m.popcount_impl()); m.set_impl('avx2'); print(m.popcount_impl()); m.set_impl('avx512')\n"
        "print(m.popcount_impl())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, NATIVE.__file__],
        env={**os.environ, "SPIKENAS_NATIVE_ISA": "avx512"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["avx512", "avx2", "avx512"]
