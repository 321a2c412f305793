"""The examples run as documented: an Optuna study with SpikeNAS as its objective, an NNI-style evaluator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_optuna_study_gives_a_pareto_front(tmp_path: Path) -> None:
    pytest.importorskip("optuna", reason="the optuna extra is not installed (pip install -e '.[optuna]')")
    done = _run("optuna_search.py", "--trials", "12", "--output", str(tmp_path / "front.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    front = json.loads((tmp_path / "front.json").read_text())["pareto"]
    assert front and all(row["cell"].startswith("|") for row in front)
    for a in front:  # no member of the front is dominated by another
        assert not any(b["score"] >= a["score"] and b["bytes"] <= a["bytes"] and b != a and
                       (b["score"] > a["score"] or b["bytes"] < a["bytes"]) for b in front)


def test_nni_style_evaluator_scores_sampled_architectures(tmp_path: Path) -> None:
    done = _run("nni_evaluator.py", "--samples", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("score")]
    assert len(lines) == 3
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import nni_evaluator
    finally:
        sys.path.pop(0)
    arch = {key: "conv3x3" for key in nni_evaluator.EDGE_KEYS}
    assert nni_evaluator.evaluate_architecture(arch) == 3.0 * 2  # conv_depth: three convs in series, two cells
