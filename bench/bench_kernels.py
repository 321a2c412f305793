"""Kernel benchmarks: the C++ popcount Gram against the float matrix-product route, and log-dets.

Run (about two minutes on 2 cores; the float route at N = 1.3M dominates; other load on the machine
shows up directly, so the tables report the minimum over rounds and the load average)::

    python -m pytest bench/bench_kernels.py --benchmark-enable
    python bench/bench_kernels.py            # the same, plus nothing else

Both print a Markdown table of the measured times and ratios at the end (min over rounds).

Gram: one layer call (G = 1) of B = 256 float32 spikes (what a LIF layer emits) at firing rate 0.1,
kernel ``sahd``. "float route" is :func:`spikenas.kernels.gram.reference.spike_gram_dense` (spikes -> float
matrix product -> kernel); "cpp packed" is :func:`spikenas.kernels.gram.cpp.spike_gram` on already packed
words (packing excluded); "cpp dense" is :func:`spikenas.kernels.gram.cpp.spike_gram_dense` on the float
spikes (packing included); both let the cost model pick the dense or the sparse path per call.
"Gram paths" times each path forced, and the model's choice, at several firing rates (N = 131,072).
Log-det: batches of float64 matrices like the score's K, through ``torch.linalg.slogdet``, the
torch backend (:mod:`spikenas.kernels.logdet.reference`) and the cpp backend.
"""

from __future__ import annotations

import functools
import os
import sys

import pytest
import torch
from interleaved_timing import min_interleaved
from spikenas.kernels import _cpp
from spikenas.kernels.gram import reference as gram_ref
from spikenas.kernels.logdet import reference as logdet_ref
from spikenas.kernels.pack import reference as pack_ref

if _cpp.unavailable_reason() is not None:
    pytest.skip(f"cpp backend not built: {_cpp.unavailable_reason()}", allow_module_level=True)

from spikenas.kernels.gram import cpp as gram_cpp  # noqa: E402
from spikenas.kernels.logdet import cpp as logdet_cpp  # noqa: E402
from spikenas.kernels.pack import cpp as pack_cpp  # noqa: E402

B = 256
NS = (16_384, 131_072, 1_310_720)
LOGDET = ((64, 256), (256, 64), (512, 16))  # (B, batch)
# (rounds, warm-up rounds) per N: the float route at 1.3M takes seconds per call.
FAST_ROUNDS = {16_384: (300, 10), 131_072: (60, 3), 1_310_720: (8, 1)}
FLOAT_ROUNDS = {16_384: (10, 1), 131_072: (5, 1), 1_310_720: (2, 0)}

# The dense and the sparse Gram path at firing rates around the score's (median ~8 % at init).
PATH_N = 131_072
PATH_RATES = (0.02, 0.05, 0.1, 0.2)

#: (measurement, size) -> min seconds (or the auto path's name), filled as benchmarks run.
RESULTS: dict[tuple[str, int | float | tuple[int, int]], float | str] = {}


@functools.cache
def spikes(n: int) -> torch.Tensor:
    """float32 ``[1, B, n]`` spikes at rate 0.1."""
    g = torch.Generator().manual_seed(n)
    return (torch.rand(1, B, n, generator=g) < 0.1).float()


@functools.cache
def packed(n: int) -> torch.Tensor:
    return pack_cpp.pack_bits(spikes(n))


@functools.cache
def matrices(b: int, batch: int) -> torch.Tensor:
    """float64 ``[batch, b, b]`` kernel matrices of random spikes (symmetric, well conditioned)."""
    g = torch.Generator().manual_seed(b)
    x = torch.rand(batch, 4, b, 2048, generator=g) < torch.rand(batch, 4, b, 1, generator=g) * 0.3
    return gram_cpp.spike_gram(pack_ref.pack_bits(x), 2048)


def _measure(benchmark, key: tuple[str, int | tuple[int, int]], fn, rounds: tuple[int, int]) -> None:
    benchmark.pedantic(fn, rounds=rounds[0], warmup_rounds=rounds[1], iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        RESULTS[key] = benchmark.stats.stats.min


@pytest.mark.parametrize("n", NS)
def test_gram_cpp_packed(benchmark, n: int) -> None:
    p = packed(n)
    _measure(benchmark, ("cpp packed", n), lambda: gram_cpp.spike_gram(p, n, kind="sahd"), FAST_ROUNDS[n])


@pytest.mark.parametrize("n", NS)
def test_gram_cpp_dense(benchmark, n: int) -> None:
    x = spikes(n)
    _measure(benchmark, ("cpp dense", n), lambda: gram_cpp.spike_gram_dense(x, kind="sahd"), FAST_ROUNDS[n])


@pytest.mark.parametrize("n", NS)
def test_pack_cpp(benchmark, n: int) -> None:
    x = spikes(n)
    _measure(benchmark, ("cpp pack", n), lambda: pack_cpp.pack_bits(x), FAST_ROUNDS[n])


@functools.cache
def packed_at(rate: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(rate * 1000))
    return pack_cpp.pack_bits(torch.rand(1, B, PATH_N, generator=g) < rate)


@pytest.mark.parametrize("rate", PATH_RATES)
def test_gram_paths(benchmark, rate: float) -> None:
    """The cost model's choice through pytest-benchmark; each path forced, interleaved, beside it."""
    native = _cpp.native()
    p = packed_at(rate)

    def forced(path: str):
        def run():
            native.set_gram_path(path)
            try:
                gram_cpp.spike_gram(p, PATH_N, kind="sahd")
            finally:
                native.set_gram_path("auto")

        return run

    _measure(benchmark, ("path auto", rate), lambda: gram_cpp.spike_gram(p, PATH_N, kind="sahd"), (20, 2))
    if benchmark.stats is None:
        return
    runs = {"dense": forced("dense"), "sparse": forced("sparse"), "auto": forced("auto")}
    for name, seconds in min_interleaved(runs, 20).items():
        RESULTS[(f"path {name} interleaved", rate)] = seconds
    RESULTS[("auto picks", rate)] = native.preferred_gram_path(_cpp.array(p[0]), B, p.shape[-1])


@pytest.mark.parametrize("b,batch", LOGDET)
def test_logdet_torch_linalg(benchmark, b: int, batch: int) -> None:
    a = matrices(b, batch)
    _measure(benchmark, ("torch.linalg", (b, batch)), lambda: torch.linalg.slogdet(a), (5, 1))


@pytest.mark.parametrize("b,batch", LOGDET)
def test_logdet_torch_backend(benchmark, b: int, batch: int) -> None:
    a = matrices(b, batch)
    _measure(benchmark, ("torch backend", (b, batch)), lambda: logdet_ref.slogdet(a), (5, 1))


@pytest.mark.parametrize("b,batch", LOGDET)
def test_logdet_cpp(benchmark, b: int, batch: int) -> None:
    a = matrices(b, batch)
    _measure(benchmark, ("cpp", (b, batch)), lambda: logdet_cpp.slogdet(a), (5, 1))


# The float route last: its gigabytes of temporaries at N = 1.3M disturb what runs right after.


@pytest.mark.parametrize("n", NS)
def test_gram_float_route(benchmark, n: int) -> None:
    x = spikes(n)
    _measure(benchmark, ("float", n), lambda: gram_ref.spike_gram_dense(x, kind="sahd"), FLOAT_ROUNDS[n])


# ---- GPU (skipped without CUDA): Triton Gram throughput against the measured memory bandwidth ----

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
GPU_GRAM = ((4, 8192, 131_072), (8, 4096, 131_072), (16, 2048, 131_072), (64, 256, 131_072), (256, 16, 131_072))
GPU_SPIKE = ((256, 1, 131_072), (256, 16, 131_072))


def _synced(fn):
    def run():
        fn()
        torch.cuda.synchronize()

    return run


@functools.cache
def gpu_packed(b: int, groups: int, n: int) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(b * groups)
    words = (n + 63) // 64
    return torch.randint(-(2**63), 2**63 - 1, (groups, b, words), device="cuda", dtype=torch.int64, generator=g)


@gpu
def test_gpu_copy_bandwidth(benchmark) -> None:
    x = torch.ones(2**28, dtype=torch.int64, device="cuda")  # 2 GiB
    y = torch.empty_like(x)
    _measure(benchmark, ("gpu copy", 2 * x.numel() * 8), _synced(lambda: y.copy_(x)), (20, 3))


@gpu
@pytest.mark.parametrize("b,groups,n", GPU_GRAM)
def test_gpu_hamming_triton(benchmark, b: int, groups: int, n: int) -> None:
    from spikenas.kernels.gram import triton as gram_tr

    p = gpu_packed(b, groups, n)
    _measure(benchmark, ("gpu hamming", (b, groups, n)), _synced(lambda: gram_tr.hamming_gram(p, n)), (20, 3))


@gpu
@pytest.mark.parametrize("b,groups,n", GPU_SPIKE)
def test_gpu_spike_gram_triton(benchmark, b: int, groups: int, n: int) -> None:
    from spikenas.kernels.gram import triton as gram_tr

    p = gpu_packed(b, groups, n)
    _measure(benchmark, ("gpu spike", (b, groups, n)), _synced(lambda: gram_tr.spike_gram(p, n)), (20, 3))


@gpu
def test_gpu_pack_triton(benchmark) -> None:
    from spikenas.kernels.pack import triton as pack_tr

    x = (torch.rand(1, B, NS[-1], device="cuda") < 0.1).float()
    _measure(benchmark, ("gpu pack", NS[-1]), _synced(lambda: pack_tr.pack_bits(x)), (20, 3))


@gpu
@pytest.mark.parametrize("b,batch", LOGDET)
def test_gpu_logdet(benchmark, b: int, batch: int) -> None:
    a = matrices(b, batch).cuda()
    _measure(benchmark, ("gpu torch.linalg", (b, batch)), _synced(lambda: torch.linalg.slogdet(a)), (10, 2))
    RESULTS[("gpu backend", (b, batch))] = min(_time_cuda(lambda: logdet_ref.slogdet(a)) for _ in range(10))


def _time_cuda(fn) -> float:
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3


def gpu_markdown() -> list[str]:
    copy = [key for key in RESULTS if key[0] == "gpu copy"]
    if not copy:
        return []
    bandwidth = copy[0][1] / RESULTS[copy[0]]
    lines = [
        "",
        f"GPU ({torch.cuda.get_device_name()}): device-to-device copy {bandwidth / 1e12:.2f} TB/s (read + write)",
        "",
        "| Triton op | B | G | N | time (ms) | packed bytes read / time | % of copy bandwidth | popc32/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, name, shapes in (("hamming_gram", "gpu hamming", GPU_GRAM), ("spike_gram", "gpu spike", GPU_SPIKE)):
        for b, groups, n in shapes:
            key = (name, (b, groups, n))
            if key not in RESULTS:
                continue
            t = RESULTS[key]
            nbytes = groups * b * ((n + 63) // 64) * 8
            popc = groups * b * (b + 1) / 2 * 2 * ((n + 63) // 64)  # int32 word pairs of the upper triangle
            lines.append(
                f"| {label} | {b} | {groups} | {n:,} | {t * 1e3:.3f} | {nbytes / t / 1e12:.2f} TB/s "
                f"| {100 * nbytes / t / bandwidth:.0f}% | {popc / t / 1e12:.2f} T |"
            )
    if ("gpu pack", NS[-1]) in RESULTS:
        t = RESULTS[("gpu pack", NS[-1])]
        nbytes = B * NS[-1] * 4 * (1 + 1 / 32)
        lines.append(
            f"| pack_bits (float32 in) | {B} | 1 | {NS[-1]:,} | {t * 1e3:.3f} | {nbytes / t / 1e12:.2f} TB/s "
            f"| {100 * nbytes / t / bandwidth:.0f}% | - |"
        )
    lines += ["", "| GPU log-det | batch | torch.linalg.slogdet (ms) | torch/triton backend (ms) |"]
    lines.append("|---|---|---|---|")
    for b, batch in LOGDET:
        if ("gpu torch.linalg", (b, batch)) in RESULTS:
            lines.append(
                f"| B = {b} | {batch} | {RESULTS[('gpu torch.linalg', (b, batch))] * 1e3:.2f} "
                f"| {RESULTS[('gpu backend', (b, batch))] * 1e3:.2f} |"
            )
    return lines


def markdown() -> str:
    """The tables of RESULTS (empty when nothing was timed)."""
    if not RESULTS:
        return ""
    if not any(key[0] in ("float", "cpp packed", "cpp") or key[0].startswith("path ") for key in RESULTS):
        return "\n".join(gpu_markdown())

    def ms(key: tuple) -> str:
        return f"{RESULTS[key] * 1e3:.2f}" if key in RESULTS else "-"

    def ratio(slow: tuple, fast: tuple) -> str:
        return f"{RESULTS[slow] / RESULTS[fast]:.1f}x" if slow in RESULTS and fast in RESULTS else "-"

    impl = _cpp.native().popcount_impl()
    lines = [
        f"Gram, B = {B}, G = 1, float32 spikes, kind sahd; {torch.get_num_threads()} threads; cpp variant `{impl}`; "
        f"1-min load average {os.getloadavg()[0]:.2f} at the end",
        "",
        "| N | float route (ms) | cpp packed (ms) | speed-up | cpp incl. packing (ms) | speed-up | pack only (ms) "
        "| cpp word pairs/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in NS:
        pairs = B * (B - 1) / 2 * ((n + 63) // 64)
        rate = f"{pairs / RESULTS[('cpp packed', n)] / 1e9:.1f} G" if ("cpp packed", n) in RESULTS else "-"
        lines.append(
            f"| {n:,} | {ms(('float', n))} | {ms(('cpp packed', n))} | {ratio(('float', n), ('cpp packed', n))} "
            f"| {ms(('cpp dense', n))} | {ratio(('float', n), ('cpp dense', n))} | {ms(('cpp pack', n))} | {rate} |"
        )
    if any(key[0].startswith("path ") for key in RESULTS):
        lines += [
            "",
            f"Gram paths, B = {B}, N = {PATH_N:,}, G = 1, kind sahd (packing excluded; min over 20 rounds "
            "running the three in turn)",
            "",
            "| firing rate | dense path (ms) | sparse path (ms) | dense / sparse | cost model (ms) | it picks |",
            "|---|---|---|---|---|---|",
        ]
        for rate in PATH_RATES:
            dense, sparse, auto = ((f"path {p} interleaved", rate) for p in ("dense", "sparse", "auto"))
            lines.append(
                f"| {rate:g} | {ms(dense)} | {ms(sparse)} | {ratio(dense, sparse)} | {ms(auto)} "
                f"| {RESULTS.get(('auto picks', rate), '-')} |"
            )
    lines += [
        "",
        "Batched log-det, float64",
        "",
        "| B | batch | torch.linalg.slogdet (ms) | torch backend (ms) | cpp (ms) | torch.linalg / cpp | cpp GFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for b, batch in LOGDET:
        key = (b, batch)
        flops = f"{batch * 2 / 3 * b**3 / RESULTS[('cpp', key)] / 1e9:.1f}" if ("cpp", key) in RESULTS else "-"
        lines.append(
            f"| {b} | {batch} | {ms(('torch.linalg', key))} | {ms(('torch backend', key))} | {ms(('cpp', key))} "
            f"| {ratio(('torch.linalg', key), ('cpp', key))} | {flops} |"
        )
    return "\n".join(lines + gpu_markdown())


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "--benchmark-enable", "-q", "-p", "no:cacheprovider"]))
