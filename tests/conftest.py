"""Shared fixtures: small network configurations and data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from spikenas.network import MacroConfig

SHARED = Path(os.environ.get("SPIKENAS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CIFAR_SAMPLE = SHARED / "data" / "cifar10_sample.npz"
BENCH_DEV = SHARED / "data" / "spikenas_bench_cifar10_dev.csv"


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_macro() -> MacroConfig:
    """A 2-cell network small enough to build and score in milliseconds."""
    return MacroConfig(num_cells=2, width=4, in_channels=1, input_size=8, hidden=16, timesteps=3)


@pytest.fixture(scope="session")
def cifar_sample_path() -> Path:
    if not CIFAR_SAMPLE.exists():
        pytest.skip(f"CIFAR-10 sample not found at {CIFAR_SAMPLE} (set SPIKENAS_SHARED)")
    return CIFAR_SAMPLE
