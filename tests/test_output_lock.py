"""One run at a time per output: an exclusive lock across processes, refused in one line naming the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikenas.errors import SpikeNASError
from spikenas.nas import SearchConfig, run_search
from spikenas.nas.__main__ import main
from spikenas.output_lock import OutputLock, lock_path
from spikenas.scoring import ScoreConfig

ROOT = Path(__file__).resolve().parents[1]

# A library call that holds the lock of its argument (as run_search does) until its stdin closes.
HOLDER = """
import sys
from spikenas.output_lock import OutputLock
with OutputLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder():
    """Start a process holding the lock of a path; yields (process, path) and ends it."""
    started = []

    def start(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.stdout.readline().strip() == "held"
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_second_process_is_refused_with_the_holders_pid_and_command(tmp_path, holder):
    target = tmp_path / "results.json"
    proc = holder(target)
    start = time.monotonic()
    with pytest.raises(SpikeNASError) as info:
        OutputLock(target).acquire()
    assert time.monotonic() - start < 2  # refused at once, no waiting
    message = str(info.value)
    assert "\n" not in message
    assert f"{target} is in use by another run (pid {proc.pid}, started " in message
    assert "-c" in message and str(target) in message.split("command:")[1]
    proc.stdin.close()  # the holder exits and releases it
    proc.wait(timeout=30)
    with OutputLock(target):
        assert lock_path(target).exists()
    assert not lock_path(target).exists()


def test_a_lock_file_without_a_live_holder_does_not_block(tmp_path, holder):
    target = tmp_path / "results.json"
    proc = holder(target)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the lock file stays
    proc.wait(timeout=30)
    assert lock_path(target).exists()
    with OutputLock(target) as lock:
        assert lock.held and str(os.getpid()) in lock_path(target).read_text()


def test_locks_exclude_each_other_inside_one_process_too(tmp_path):
    with OutputLock(tmp_path / "a.json"), pytest.raises(SpikeNASError, match="in use by another run"):
        OutputLock(tmp_path / "a.json").acquire()
    with OutputLock(tmp_path / "a.json"), OutputLock(tmp_path / "b.json"):
        pass  # other outputs are independent


def test_cli_refuses_an_output_in_use_in_one_line_and_leaves_its_files(tmp_path, holder, capsys):
    out = tmp_path / "r.json"
    out.write_text("{}")
    proc = holder(out)
    argv = ["--fast", "--cells", "1", "--quiet", "--output", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out} is in use by another run (pid {proc.pid}, started")
    assert out.read_text() == "{}" and not (tmp_path / "r.journal.jsonl").exists()


def test_library_search_refuses_a_journal_in_use(tmp_path, holder):
    journal = tmp_path / "r.journal.jsonl"
    proc = holder(journal)  # e.g. a CLI run on r.json, whose journal this is
    with pytest.raises(SpikeNASError, match=rf"r.journal.jsonl is in use by another run \(pid {proc.pid}"):
        run_search(SearchConfig.from_fields(num_cells=1, op_set="2O", width=4, hidden=16, timesteps=2, input_size=8,
                                            batch_size=8), journal=journal, progress=False)
    evolution = SearchConfig.from_fields(algorithm="evolution", num_cells=1, width=4, hidden=16, timesteps=2,
                                         input_size=8, batch_size=8, population=4, iterations=1,
                                         score=ScoreConfig(name="sahd"))
    with pytest.raises(SpikeNASError, match="in use by another run"):  # the evolution state lies beside the journal
        run_search(evolution, journal=journal, progress=False)
    assert not journal.exists()
