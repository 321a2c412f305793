"""The public API of ``import spikenas`` and the ``spikenas`` console command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import spikenas
from spikenas.errors import SpikeNASError

CELL = "|conv3x3~0|+|skip~0|conv3x3~1|+|skip~0|skip~1|conv3x3~2|"


@pytest.fixture
def macro() -> spikenas.MacroConfig:
    return spikenas.MacroConfig(num_cells=2, width=4, hidden=16, timesteps=3, in_channels=1, input_size=8,
                                num_classes=10)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def test_public_names() -> None:
    for name in ("score", "score_network", "search", "Genotype", "MacroConfig", "Budget", "list_scores",
                 "register_score", "register_op", "ScoreConfig", "SearchConfig", "__version__"):
        assert hasattr(spikenas, name), name
    assert spikenas.__version__.count(".") >= 2
    assert "conv_depth" in spikenas.list_scores() and "sahd" in spikenas.list_scores()


def test_score_structural_and_spike_scores(macro, images) -> None:
    depth = spikenas.score(CELL, macro=macro, images=images)
    assert depth.score == 6.0 and depth.status == "ok"  # three convs in series, two cells
    sahd = spikenas.score(CELL, macro=macro, images=images, name="sahd", seed=1)
    again = spikenas.score([CELL, CELL], macro=macro, images=[images], name="sahd", seed=1)
    assert sahd.status == "ok" and sahd.num_calls > 0 and sahd.score == again.score
    other_seed = spikenas.score(CELL, macro=macro, images=images, name="sahd", seed=2)
    assert other_seed.score != sahd.score


def test_score_refuses_bad_input(macro, images) -> None:
    with pytest.raises(SpikeNASError, match=r"images must be \[B, 1, 8, 8\]"):
        spikenas.score(CELL, macro=macro, images=torch.randn(8, 3, 8, 8))
    with pytest.raises(SpikeNASError, match="got 3 genotypes"):
        spikenas.score([CELL] * 3, macro=macro, images=images)
    with pytest.raises(SpikeNASError, match="unknown score 'nope'"):
        spikenas.score(CELL, macro=macro, images=images, name="nope")


def test_memory_params_and_bytes(macro) -> None:
    cell = spikenas.Genotype.from_nb201(CELL)
    params = spikenas.memory.params(cell, macro)
    net = spikenas.network.build_network(cell, macro, seed=0)
    assert params == sum(p.numel() for p in net.parameters())
    assert spikenas.memory.bytes(cell, macro, bits=4) == (params * 4 + 7) // 8
    assert spikenas.Budget(params).fits(params) and not spikenas.Budget(params - 1).fits(params)


def test_search_returns_the_result_with_its_payload() -> None:
    result = spikenas.search(op_set="2O", num_cells=1, width=4, hidden=16, timesteps=2, batch_size=8,
                             input_size=8)
    assert isinstance(result, spikenas.SearchResult)
    assert result.best.score > 0 and result.payload["result"]["params"] == result.best.params
    with pytest.raises(SpikeNASError, match="not both"):
        spikenas.search(spikenas.SearchConfig(), op_set="2O")


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_console_command_help_and_errors(tmp_path: Path) -> None:
    done = _run([sys.executable, "-m", "spikenas", "--help"], tmp_path)
    assert done.returncode == 0 and "search" in done.stdout and "train" in done.stdout
    done = _run([sys.executable, "-m", "spikenas", "frobnicate"], tmp_path)
    assert done.returncode == 2 and "unknown command 'frobnicate'" in done.stderr


@pytest.mark.slow
def test_console_command_and_python_m_give_the_same_results(tmp_path: Path) -> None:
    """``spikenas search`` and ``python -m spikenas search`` are one run (timings and versions aside)."""
    flags = ["--fast", "--ops", "2O", "--quiet"]
    script = Path(sys.executable).with_name("spikenas")
    console = [str(script)] if script.exists() else [sys.executable, "-m", "spikenas"]
    a = _run([*console, "search", *flags, "--output", "a.json"], tmp_path)
    b = _run([sys.executable, "-m", "spikenas", "search", *flags, "--output", "b.json"], tmp_path)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    drop = ("timings", "versions", "seconds")

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in drop}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    assert strip(json.loads((tmp_path / "a.json").read_text())) == strip(json.loads((tmp_path / "b.json").read_text()))


def test_search_function_and_search_package_have_different_names() -> None:
    """``spikenas.search`` is the public function whatever else was imported; the algorithms live in
    ``spikenas.nas``, so importing them cannot replace the function with a module."""
    import importlib.util
    import types

    import spikenas
    import spikenas.nas  # noqa: F401

    assert isinstance(spikenas.search, types.FunctionType)
    assert importlib.util.find_spec("spikenas.search") is None
