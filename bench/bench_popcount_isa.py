"""Hamming Gram by instruction-set variant: avx512 (VPOPCNTQ) against avx2 (Harley-Seal) and the float route.

Run (about a minute on one core; the float route at N = 1.3M dominates)::

    python -m pytest bench/bench_popcount_isa.py --benchmark-enable
    python bench/bench_popcount_isa.py            # the same

One layer call (G = 1) of B = 256 rows of N bits, at firing rates 0.15 (spikes) and 0.5 (dense bits), one
thread. Timed: :func:`spikenas.kernels.gram.cpp.hamming_gram` on packed words with the dense path forced
(``set_gram_path("dense")``, so the variants compare on the same work: B (B - 1) / 2 word pairs per word) for
the avx512 and the avx2 variant, with the path the cost model picks for the avx512 variant ("auto"), and the
float route :func:`spikenas.kernels.gram.reference.hamming_from_spikes` (float32 spikes, ``x @ x.T``; its
work does not depend on the firing rate, so it is timed at 0.15 only). pytest-benchmark times the avx512 dense
path; the table reports the minimum over rounds that run all the C++ timings in turn (so that the other load
of the machine hits them alike) and the ratios within that one run. Throughput: word pairs of the upper
triangle per second.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Callable

import pytest
import torch
from interleaved_timing import min_interleaved
from spikenas.kernels import _cpp
from spikenas.kernels.gram import reference as gram_ref
from spikenas.kernels.pack import reference as pack_ref

if _cpp.unavailable_reason() is not None:
    pytest.skip(f"cpp backend not built: {_cpp.unavailable_reason()}", allow_module_level=True)
if "avx512" not in _cpp.native().supported_impls():
    pytest.skip("this CPU does not run the avx512 variant (AVX512F/BW/VL/VPOPCNTDQ)", allow_module_level=True)

from spikenas.kernels.gram import cpp as gram_cpp  # noqa: E402

B = 256
NS = (16_384, 131_072, 1_310_720)
RATES = (0.15, 0.5)
FLOAT_RATE = 0.15
# Interleaved rounds of the C++ timings and (rounds, warm-up rounds) of the float route, per N.
CPP_ROUNDS = {16_384: 40, 131_072: 15, 1_310_720: 5}
FLOAT_ROUNDS = {16_384: (10, 1), 131_072: (5, 1), 1_310_720: (2, 0)}

#: (measurement, n, rate) -> min seconds, or the cost model's choice for ("auto picks", n, rate).
RESULTS: dict[tuple[str, int, float], float | str] = {}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread for every route (the variants' per-core speed; the float route's BLAS too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def spikes(n: int, rate: float) -> torch.Tensor:
    """bool ``[B, n]`` spikes, each bit set with probability ``rate`` (seeded by n and rate)."""
    g = torch.Generator().manual_seed(n + int(rate * 1000))
    return torch.rand(B, n, generator=g) < rate


@functools.cache
def packed(n: int, rate: float) -> torch.Tensor:
    return pack_ref.pack_bits(spikes(n, rate))


def word_pairs(n: int) -> float:
    """Word pairs of the upper triangle: B (B - 1) / 2 per word."""
    return B * (B - 1) / 2 * ((n + 63) // 64)


def _hamming(impl: str, path: str, p: torch.Tensor, n: int) -> Callable[[], object]:
    native = _cpp.native()

    def run() -> object:
        native.set_impl(impl)
        native.set_gram_path(path)
        try:
            return gram_cpp.hamming_gram(p, n)
        finally:
            native.set_impl(native.supported_impls()[-1])
            native.set_gram_path("auto")

    return run


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("n", NS)
def test_hamming_by_variant(benchmark, n: int, rate: float) -> None:
    p = packed(n, rate)
    runs = {
        "avx512 dense": _hamming("avx512", "dense", p, n),
        "avx2 dense": _hamming("avx2", "dense", p, n),
        "avx512 auto": _hamming("avx512", "auto", p, n),
    }
    want = runs["avx2 dense"]()
    assert all(torch.equal(fn(), want) for fn in runs.values())
    benchmark.pedantic(runs["avx512 dense"], rounds=CPP_ROUNDS[n], warmup_rounds=1, iterations=1)
    if benchmark.stats is None:  # --benchmark-disable
        return
    for name, seconds in min_interleaved(runs, CPP_ROUNDS[n]).items():
        RESULTS[(name, n, rate)] = seconds
    RESULTS[("auto picks", n, rate)] = _cpp.native().preferred_gram_path(_cpp.array(p), B, p.shape[-1])


# The float route last: its gigabyte temporaries at N = 1.3M disturb what runs right after.


@pytest.mark.parametrize("n", NS)
def test_float_route(benchmark, n: int) -> None:
    x = spikes(n, FLOAT_RATE).float()
    rounds, warmup = FLOAT_ROUNDS[n]
    benchmark.pedantic(lambda: gram_ref.hamming_from_spikes(x), rounds=rounds, warmup_rounds=warmup, iterations=1)
    if benchmark.stats is not None:
        RESULTS[("float", n, FLOAT_RATE)] = benchmark.stats.stats.min


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown() -> str:
    """The table of RESULTS (empty when nothing was timed)."""
    if not RESULTS:
        return ""

    def ms(key: tuple) -> str:
        return f"{RESULTS[key] * 1e3:.2f}" if key in RESULTS else "-"

    def ratio(slow: tuple, fast: tuple) -> str:
        return f"{RESULTS[slow] / RESULTS[fast]:.2f}x" if slow in RESULTS and fast in RESULTS else "-"

    def rate_of(key: tuple) -> str:
        return f"{word_pairs(key[1]) / RESULTS[key] / 1e9:.1f}" if key in RESULTS else "-"

    lines = [
        f"Hamming Gram, B = {B}, G = 1, one thread; {_cpu_name()}; torch {torch.__version__}; "
        f"1-min load average {os.getloadavg()[0]:.2f} at the end",
        "",
        "| N | rate | avx512 dense (ms) | avx2 dense (ms) | avx2 / avx512 | float route (ms) | float / avx512 "
        "| avx512 G word pairs/s | avx2 G word pairs/s | auto picks | avx512 auto (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in NS:
        for rate in RATES:
            fast, avx2, auto = ((name, n, rate) for name in ("avx512 dense", "avx2 dense", "avx512 auto"))
            flt = ("float", n, FLOAT_RATE)
            lines.append(
                f"| {n:,} | {rate:g} | {ms(fast)} | {ms(avx2)} | {ratio(avx2, fast)} | {ms(flt)} | {ratio(flt, fast)} "
                f"| {rate_of(fast)} | {rate_of(avx2)} | {RESULTS.get(('auto picks', n, rate), '-')} | {ms(auto)} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "--benchmark-enable", "-q", "-p", "no:cacheprovider"]))
