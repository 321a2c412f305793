"""Measures the constants of the C++ Gram's cost model (``Kernels`` in csrc/native.hpp).

The C++ backend computes a layer call's Hamming counts by one of two paths (csrc/gram.cpp): dense
XOR popcounts of row pairs, or sparse column sums at the set bits (csrc/columns.hpp). It picks the
cheaper one per call from three constants per instruction-set variant: ns per (row pair, word) of
the dense path, ns per (set bit, run of 256 rows) and per (row, word) of the sparse one. This script
times both paths on one thread for B = 256, N = 16,384 at several firing rates and fits them
(least squares on the sparse times, min over repeats)::

    python bench/calibrate_gram.py [--repeats 30]

It prints one line per variant to paste into csrc/kernels_*.cpp.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from spikenas.kernels import _cpp
from spikenas.kernels.gram import cpp as gram_cpp
from spikenas.kernels.pack import reference as pack_ref

B, N = 256, 16_384
RATES = (0.0, 0.02, 0.05, 0.1, 0.2)


def best_time(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    if _cpp.unavailable_reason() is not None:
        print(_cpp.unavailable_reason(), file=sys.stderr)
        return 1
    native = _cpp.native()
    torch.set_num_threads(1)
    words = (N + 63) // 64
    gen = torch.Generator().manual_seed(0)
    spikes = {rate: torch.rand(B, N, generator=gen) < rate for rate in RATES}
    packed = {rate: pack_ref.pack_bits(x) for rate, x in spikes.items()}
    # (set bit, run) additions of the sparse path: rows but the last, each counting its set bits or,
    # firing more than half the time, its zero bits (padding included).
    columns = []
    for x in spikes.values():
        counts = x[:-1].sum(dim=1).double()
        columns.append(float(torch.minimum(counts, 64 * words - counts).sum()))
    try:
        for impl in native.supported_impls():
            native.set_impl(impl)
            native.set_gram_path("dense")
            dense = best_time(lambda: gram_cpp.hamming_gram(packed[0.1], N), args.repeats)
            native.set_gram_path("sparse")
            seconds = [best_time(lambda p=p: gram_cpp.hamming_gram(p, N), args.repeats) for p in packed.values()]
            # seconds = a * columns + c * B * words: least squares over the rates.
            x = torch.tensor([[c, B * words] for c in columns], dtype=torch.float64)
            y = torch.tensor(seconds, dtype=torch.float64)
            a, c = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1).tolist()
            pair_ns = dense / (B * (B - 1) / 2 * words) * 1e9
            print(
                f"{impl}: dense {pair_ns:.4f} ns/word pair, sparse {a * 1e9:.4f} ns/column, "
                f"{c * 1e9:.4f} ns/row word  (dense {dense * 1e3:.2f} ms; sparse "
                + ", ".join(f"{r}: {s * 1e3:.2f} ms" for r, s in zip(RATES, seconds, strict=True))
                + ")"
            )
    finally:
        native.set_impl(native.supported_impls()[-1])
        native.set_gram_path("auto")
    return 0


if __name__ == "__main__":
    sys.exit(main())
