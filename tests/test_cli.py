"""The search CLI end to end, and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", "2", "--hidden", "8", "--timesteps", "2", "--batch-size", "8", "--input-size", "8", "--quiet"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "spikenas", "search", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )


def test_spikenas_search_writes_results(tmp_path):
    out = tmp_path / "r.json"
    proc = run_cli("--ops", "2O", "--cells", "2", "--budget", "1.5k", *TINY, "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    res = data["result"]
    assert res["params"] <= 1500 and res["meets_budget"] is True and len(res["cells"]) == 2
    assert data["counters"]["scored"] > 0 and data["counters"]["pruned"] > 0
    for key in ("config", "seed", "versions", "timings", "backend"):
        assert key in data
    assert data["versions"]["torch"] and data["timings"]["search_s"] > 0
    assert "score" in proc.stdout and "pruned by memory" in proc.stdout


def test_random_search_and_resume(tmp_path):
    out = tmp_path / "r.json"
    args = ["--algorithm", "random", "--samples", "6", "--ops", "5O", *TINY, "--output", str(out)]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    a = json.loads(out.read_text())
    again = run_cli(*args, "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    b = json.loads(out.read_text())
    assert a["result"] == b["result"]
    assert b["counters"]["scored"] == 0 and b["counters"]["resumed"] > 0


def test_evaluate_given_genotype(tmp_path):
    out = tmp_path / "e.json"
    cell = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|nor_conv_3x3~2|"
    proc = run_cli("--evaluate", cell, "--ops", "2O", *TINY, "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["result"]["cells"][0]["nb201"] == cell


@pytest.mark.parametrize(
    "args,message",
    [
        (["--budget", "0"], "budget"),
        (["--budget", "-5"], "budget"),
        (["--ops", "4O"], "op set"),
        (["--evaluate", "|nor_conv_3x3~0|+|bogus"], "malformed genotype string"),
        (["--cells", "4"], "--cells"),
        (["--cells", "0"], "--cells"),
        (["--ops", "2O", "--budget", "10"], "smallest network"),
        (["--algorithm", "random", "--ops", "5O", "--budget", "10"], "smallest network of op set 5O (edge (0,3)"),
        (["--algorithm", "evolution", "--ops", "5O", "--budget", "10", "--bits", "8"],
         "smallest network of op set 5O (connected cells) with 2 cell(s) at width 2 has"),
        (["--algorithm", "evolution", "--space", "autosnn", "--fitness", "autosnn", "--budget", "10"],
         "smallest network of the AutoSNN space at width 2"),
        (["--dataset", "cifar10", "--data-dir", "/nonexistent/dir"], "/nonexistent/dir"),
        (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent/fm"], "/nonexistent/fm"),
    ],
)
def test_bad_input_one_line_error(tmp_path, args, message):
    proc = run_cli(*args, *TINY, "--output", str(tmp_path / "x.json"), cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr
