"""Timing shared by the kernel benchmarks: functions run in turn, round by round, so that drifts of a
shared machine's speed hit all of them alike and their ratios stay meaningful."""

from __future__ import annotations

import time
from collections.abc import Callable


def min_interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 0) -> dict[str, float]:
    """The minimum seconds of each function over ``rounds`` rounds that run every function once, in turn,
    after ``warmup`` such rounds that are not timed."""
    best = dict.fromkeys(fns, float("inf"))
    for i in range(warmup + rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if i >= warmup:
                best[name] = min(best[name], time.perf_counter() - start)
    return best
