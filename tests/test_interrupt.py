"""Durable search progress: interrupted at any point of a pass, a resumed search equals an uninterrupted one.

Each case stops a search with KeyboardInterrupt when its k-th scoring call starts, checks that every
candidate finished before it is in the journal (and that the interrupt says how many), resumes, and
compares best cells, scores, passes and selection with an uninterrupted run, counting what was redone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikenas.errors import SpikeNASError
from spikenas.executor import LocalExecutor
from spikenas.nas import SearchConfig, run_search
from spikenas.nas import engine as engine_module
from spikenas.nas import fast as fast_module
from spikenas.nas.__main__ import main
from spikenas.scoring import ScoreConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_cells=2, op_set="2O", width=4, hidden=16, timesteps=2, input_size=8, batch_size=8,
            score=ScoreConfig(name="sahd"))


def without_timings(data):
    """``data`` with every ``seconds`` / ``*_s`` timing removed (they differ between runs)."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if k != "seconds" and not k.endswith("_s")}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data


def outcome(payload: dict) -> dict:
    """What a resumed search must reproduce: the chosen network, its score, every pass and the selection."""
    return without_timings({k: payload[k] for k in ("result", "passes", "selection")})


def journal_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[1:]]


def StopAt(fn, k: int):  # noqa: N802  (reads as the class of stopping wrappers it stands for)
    """``fn`` wrapped to raise KeyboardInterrupt when call ``k`` starts (calls 1..k-1 finish); a plain
    function, so it also binds as a method. ``wrapper.calls`` counts the calls."""

    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        if wrapper.calls == k:
            raise KeyboardInterrupt
        return fn(*args, **kwargs)

    wrapper.calls = 0
    return wrapper


def interrupted_then_resumed(config, journal, monkeypatch, stop, target, name, executor_factory):
    """Run with ``stop`` patched over ``target.name`` until it interrupts; then resume unpatched."""
    with monkeypatch.context() as patch:
        patch.setattr(target, name, stop)
        with pytest.raises(KeyboardInterrupt) as info:
            run_search(config, journal=journal, progress=False, executor=executor_factory())
    saved = journal_records(journal) if journal.exists() else []
    _, payload = run_search(config, journal=journal, resume=True, progress=False, executor=executor_factory())
    return info.value, saved, payload


@pytest.fixture(scope="module")
def exact_reference(tmp_path_factory):
    config = SearchConfig.from_fields(**TINY)
    _, payload = run_search(config, journal=tmp_path_factory.mktemp("ref") / "j.jsonl", progress=False)
    return config, payload


@pytest.mark.parametrize("executor", ["none", "local"])
@pytest.mark.parametrize("k", [1, 2, 40, 64, 65, 100])
def test_exact_search_interrupted_anywhere_resumes_to_the_same_result(exact_reference, tmp_path, monkeypatch,
                                                                      k, executor):
    config, reference = exact_reference
    journal = tmp_path / "j.jsonl"
    stop = StopAt(engine_module.score_candidate, k)
    factory = (lambda: None) if executor == "none" else LocalExecutor
    err, saved, payload = interrupted_then_resumed(config, journal, monkeypatch, stop, engine_module,
                                                   "score_candidate", factory)
    # every candidate scored before the interrupt is in the journal, and the interrupt says how many
    assert sum(r["status"] != "disconnected" for r in saved) == k - 1
    expected = f"{k - 1} candidates are in {journal}" if k > 1 else f"no candidate had finished; {journal}"
    assert err.saved.startswith(expected)
    assert outcome(payload) == outcome(reference)
    c, ref = payload["counters"], reference["counters"]
    assert c["resumed"] == len(saved)
    assert c["scored"] == ref["scored"] - (k - 1)  # redone on resume: nothing that had finished


@pytest.fixture(scope="module")
def fast_reference(tmp_path_factory):
    config = SearchConfig.from_fields(**TINY, mode="fast")
    _, payload = run_search(config, journal=tmp_path_factory.mktemp("ref") / "j.jsonl", progress=False)
    return config, payload


@pytest.mark.parametrize("k", [1, 3, 8, 9, 14])
def test_fast_search_interrupted_anywhere_resumes_to_the_same_result(fast_reference, tmp_path, monkeypatch, k):
    """Whole passes in this process, scored in pieces of 8 (JOURNAL_PIECE): each piece is journaled
    before the next starts."""
    config, reference = fast_reference
    monkeypatch.setattr(fast_module, "JOURNAL_PIECE", 8)
    journal = tmp_path / "j.jsonl"
    stop = StopAt(fast_module.SharedEvaluator.score_many, k)
    err, saved, payload = interrupted_then_resumed(config, journal, monkeypatch, stop, fast_module.SharedEvaluator,
                                                   "score_many", lambda: None)
    scored = sum(r["status"] != "disconnected" for r in saved)
    assert scored == 8 * (k - 1)
    assert str(len(saved)) in err.saved
    assert outcome(payload) == outcome(reference)
    assert payload["counters"]["scored"] == reference["counters"]["scored"] - scored


@pytest.mark.parametrize("k", [2, 5])
def test_sharded_fast_search_journals_each_shard_as_it_arrives(fast_reference, tmp_path, monkeypatch, k):
    """The executor path (shards scored by a shipped evaluator, as on Ray): the shards that came back
    before the interrupt are in the journal."""
    config, reference = fast_reference
    journal = tmp_path / "j.jsonl"
    stop = StopAt(fast_module.SharedEvaluator.score_many, k)
    err, saved, payload = interrupted_then_resumed(config, journal, monkeypatch, stop, fast_module.SharedEvaluator,
                                                   "score_many", lambda: LocalExecutor(split_shared_work=True))
    assert len(saved) > 0 and str(len(saved)) in err.saved
    assert outcome(payload) == outcome(reference)
    assert payload["counters"]["resumed"] == len(saved)
    assert payload["counters"]["scored"] == reference["counters"]["scored"] - len(saved)


@pytest.fixture(scope="module")
def proxy_reference(tmp_path_factory):
    """An uninterrupted proxy-screened fast search, and how many scoring calls it makes."""
    config = SearchConfig.from_fields(**TINY, mode="fast", proxy_batch=4, rescore_fraction=0.1, race_top=2)
    calls = StopAt(fast_module.SharedEvaluator.score_many, 0)  # counts the calls, never stops
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast_module.SharedEvaluator, "score_many", calls)
        _, payload = run_search(config, journal=tmp_path_factory.mktemp("proxy") / "j.jsonl", progress=False)
    return config, payload, calls.calls


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
def test_proxy_fast_search_interrupted_anywhere_resumes_to_the_same_result(proxy_reference, tmp_path, monkeypatch,
                                                                          fraction):
    """With proxy screening each full-size round is journaled as soon as it is scored; a pass that the
    journal holds only in part is ranked on the proxy again and its rounds are reused, not rescored."""
    config, reference, calls = proxy_reference
    assert calls >= 6  # proxy rankings and several full-size rounds in each pass
    k = 1 + round(fraction * (calls - 1))  # from the first call (the first proxy ranking) to the last
    journal = tmp_path / "j.jsonl"
    stop = StopAt(fast_module.SharedEvaluator.score_many, k)
    err, saved, payload = interrupted_then_resumed(config, journal, monkeypatch, stop, fast_module.SharedEvaluator,
                                                   "score_many", lambda: None)
    assert (f"{len(saved)} candidates" if saved else "no candidate had finished") in err.saved
    assert outcome(payload) == outcome(reference)
    full = sum(r["status"] not in ("disconnected", "screened") for r in saved)
    assert payload["counters"]["scored"] == reference["counters"]["scored"] - full  # nothing finished is redone
    if fraction >= 0.4:  # past the first pass's proxy ranking and first full-size round
        assert full > 0


def test_search_where_nothing_scored_is_an_error(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(engine_module, "score_candidate", broken)
    with pytest.raises(SpikeNASError, match=r"no candidate was scored: 64 evaluated.*64 failed.*out of memory"):
        run_search(SearchConfig.from_fields(**{**TINY, "num_cells": 1}), progress=False)
    out = tmp_path / "r.json"
    argv = ["--cells", "1", "--ops", "2O", "--width", "4", "--hidden", "16", "--timesteps", "2", "--input-size", "8",
            "--batch-size", "8", "--score", "sahd", "--quiet", "--output", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no candidate was scored: 64 evaluated") and "out of memory" in err[-1]
    assert not out.exists()


CLI = ["-m", "spikenas", "search", "--cells", "1", "--ops", "3O", "--width", "4", "--hidden", "16", "--timesteps", "2",
       "--input-size", "8", "--batch-size", "8", "--score", "sahd", "--quiet"]


def exit_code(argv: list[str]) -> int:
    """``main(argv)``'s exit status, also when argparse exits (SystemExit)."""
    try:
        return main(argv)
    except SystemExit as done:
        return done.code


def test_bad_argument_after_an_interrupt_leaves_the_journal_intact(tmp_path, capsys):
    journal = tmp_path / "r.journal.jsonl"
    journal.write_text('{"header": {}, "format": 2, "fingerprint": "x"}\n{"a": 1}\n')
    before = journal.read_bytes()
    # rejected by argparse, by the configuration, and by the evaluator (after the data is loaded)
    for bad in (["--cells", "4"], ["--score", "no_such_score"], ["--mode", "fast", "--bn-mode", "eval"]):
        assert exit_code([*CLI[3:], "--output", str(tmp_path / "r.json"), *bad]) == 2
        assert journal.read_bytes() == before
        assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.json.lock").exists()
        assert not (tmp_path / "r.journal.jsonl.previous").exists()
    assert "error:" in capsys.readouterr().err


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_sigint_to_the_cli_keeps_finished_candidates_and_resume_equals_a_full_run(tmp_path):
    """A real ``python -m spikenas search`` stopped with SIGINT mid-pass; --resume then writes the
    results an uninterrupted run writes, scoring only what the journal does not hold."""
    full = run_cli("--output", str(tmp_path / "full.json"), cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    out = tmp_path / "r.json"
    journal = tmp_path / "r.journal.jsonl"
    proc = subprocess.Popen([sys.executable, *CLI, "--output", str(out)], cwd=tmp_path, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 30):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    kept = len(journal.read_text().splitlines()) - 1
    assert 29 <= kept < 729
    assert stderr.strip().splitlines()[-1] == f"interrupted: {kept} candidates are in {journal}; rerun with --resume"
    resumed = run_cli("--output", str(out), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads((tmp_path / "full.json").read_text()), json.loads(out.read_text())
    assert outcome(a) == outcome(b)
    assert b["counters"]["resumed"] == kept and b["counters"]["scored"] == a["counters"]["scored"] - kept
    assert not (tmp_path / "r.json.lock").exists()


def test_cli_interrupt_message_states_the_journaled_count(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(engine_module, "score_candidate", StopAt(engine_module.score_candidate, 6))
    out = tmp_path / "r.json"
    assert main([*CLI[3:], "--output", str(out)]) == 130
    journal = tmp_path / "r.journal.jsonl"
    assert len(journal_records(journal)) == 5
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"interrupted: 5 candidates are in {journal}; rerun with --resume"
    assert not out.exists() and not (tmp_path / "r.json.lock").exists()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_ray_search_interrupted_after_some_shards_resumes_to_the_same_result(fast_reference, exact_reference,
                                                                             tmp_path, monkeypatch, mode):
    """On Ray each shard's records reach the journal as the shard arrives: interrupted after the second
    shard, both shards are kept, and a resumed Ray search equals the uninterrupted one."""
    pytest.importorskip("ray")
    from spikenas.executor import RayExecutor

    config, reference = exact_reference if mode == "exact" else fast_reference
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    journal = tmp_path / "j.jsonl"
    parked: list[int] = []
    park = engine_module.Evaluator.park

    def park_then_stop(self, records):
        park(self, records)
        parked.append(len(records))
        if len(parked) == 2:
            raise KeyboardInterrupt

    with RayExecutor(workers=2, num_cpus=1) as executor:
        with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
            patch.setattr(engine_module.Evaluator, "park", park_then_stop)
            run_search(config, journal=journal, progress=False, executor=executor)
        assert len(journal_records(journal)) == sum(parked) > 0
        _, payload = run_search(config, journal=journal, resume=True, progress=False, executor=executor)
    assert outcome(payload) == outcome(reference)
    assert payload["counters"]["resumed"] == sum(parked)
    assert payload["counters"]["scored"] == reference["counters"]["scored"] - sum(parked)
