"""Regression benchmark of the fast (shared-work) Alg. 1 on a small configuration, with exact mode
measured in the same run as the reference the ratio is taken against.

    python -m pytest bench/bench_search.py --benchmark-enable

Configuration: digits at 8x8, 2 cells of width 4, hidden 16, T = 3, B = 16, op set 2O (64 cells per
pass), kernel sahd, one thread. The full-size search comparison is bench/search_time.py.
"""

from __future__ import annotations

import pytest
import torch

from spikenas.data import load_dataset
from spikenas.nas import consecutive_search
from spikenas.nas.engine import Evaluator
from spikenas.nas.fast import FastConfig, SharedEvaluator
from spikenas.nas.space_api import CellSpace
from spikenas.network import MacroConfig
from spikenas.scoring import ScoreConfig

MACRO = MacroConfig(num_cells=2, width=4, in_channels=1, input_size=8, hidden=16, timesteps=3)


@pytest.fixture(scope="module")
def batches() -> list[torch.Tensor]:
    torch.set_num_threads(1)
    return load_dataset("digits").batches(16, 1, seed=0, input_size=8)


def search(mode: str, batches: list[torch.Tensor], proxy: int | None = None):
    score = ScoreConfig(name="sahd")
    if mode == "exact":
        evaluator = Evaluator(MACRO, batches, score, seed=0, weight_seeding="per_edge")
    else:
        evaluator = SharedEvaluator(MACRO, batches, score, seed=0, fast=FastConfig(proxy_batch=proxy))
    return consecutive_search(CellSpace(evaluator.config, op_set="2O"), evaluator, progress=False)


@pytest.mark.parametrize("mode,proxy", [("exact", None), ("fast", None), ("fast", 8)])
def test_alg1_search(benchmark, batches, mode, proxy):
    result = benchmark.pedantic(search, args=(mode, batches, proxy), rounds=3, iterations=1)
    assert result.best.status == "ok"
