"""The journal format: fingerprinted, checksummed records, strict reading, nothing destroyed before it must be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spikenas.errors import SpikeNASError
from spikenas.journal import Journal, read_journal, record_line
from spikenas.nas.engine import Evaluator
from spikenas.network import MacroConfig
from spikenas.scoring import ScoreConfig

FP = {"config": {"seed": 1, "budget": None}, "macro": {"width": 4}}
OTHER = {"config": {"seed": 2, "budget": None}, "macro": {"width": 4}}


def write(path: Path, n: int, fingerprint: dict = FP) -> Journal:
    journal = Journal(path, fingerprint)
    for i in range(n):
        journal.append({"i": i, "score": 0.5 * i})
    journal.close()
    return journal


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_records_round_trip_with_fingerprint_and_checksum(tmp_path):
    path = tmp_path / "j.jsonl"
    write(path, 3)
    records, intact = read_journal(path, FP)
    assert records == [{"i": i, "score": 0.5 * i} for i in range(3)]
    assert intact == path.stat().st_size
    raw = [json.loads(line) for line in lines(path)]
    assert raw[0]["header"] == FP and len({r["fingerprint"] for r in raw}) == 1
    assert all(len(r["checksum"]) == 16 for r in raw[1:])


def test_every_append_is_flushed_before_it_returns(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = Journal(path, FP)
    for i in range(4):
        journal.append({"i": i})
        assert len(read_journal(path, FP)[0]) == i + 1  # read by another reader while the file is still open
    journal.close()


def test_edited_score_is_detected_by_the_checksum(tmp_path):
    path = tmp_path / "j.jsonl"
    write(path, 3)
    text = lines(path)
    record = json.loads(text[2])
    record["score"] = 99.0
    text[2] = json.dumps(record) + "\n"
    path.write_text("".join(text))
    with pytest.raises(SpikeNASError, match=rf"{path}, line 3: checksum mismatch"):
        read_journal(path, FP)


def test_records_of_another_configuration_are_rejected_not_mixed(tmp_path):
    path = tmp_path / "j.jsonl"
    write(path, 2)
    other = Journal(tmp_path / "o.jsonl", OTHER)
    with open(path, "a") as f:
        f.write(record_line({"i": 7}, other.hash))
    with pytest.raises(SpikeNASError, match=rf"{path}, line 4: record of another search configuration"):
        read_journal(path, FP)
    with pytest.raises(SpikeNASError, match="different search configuration"):
        read_journal(path, OTHER)  # the header decides whose journal it is


@pytest.mark.parametrize("bad", ["\n", "   \n", "garbage\n", "[1, 2]\n", '{"i": 1\n'])
def test_a_bad_line_in_the_middle_is_an_error_naming_it(tmp_path, bad):
    path = tmp_path / "j.jsonl"
    write(path, 3)
    text = lines(path)
    path.write_text("".join(text[:2]) + bad + "".join(text[2:]))
    with pytest.raises(SpikeNASError, match=rf"{path}, line 3: "):
        read_journal(path, FP)


def test_only_a_cut_last_line_is_dropped(tmp_path):
    path = tmp_path / "j.jsonl"
    write(path, 3)
    full = path.read_text()
    path.write_text(full[: len(full) - 10])  # interrupted in the middle of writing record 3
    records, intact = read_journal(path, FP)
    assert [r["i"] for r in records] == [0, 1]
    journal = Journal(path, FP, resume=True)  # truncates the cut line and appends after record 2
    journal.append({"i": 2, "score": 1.0})
    journal.close()
    assert [r["i"] for r in read_journal(path, FP)[0]] == [0, 1, 2]
    # the same damage ending in a newline is not an interruption: it is refused
    path.write_text(full[: len(full) - 10] + "\n")
    with pytest.raises(SpikeNASError, match="line 4: not a JSON record"):
        read_journal(path, FP)


def test_a_new_search_leaves_the_old_journal_until_its_first_record_then_keeps_it_aside(tmp_path):
    path = tmp_path / "j.jsonl"
    write(path, 2)
    before = path.read_bytes()
    journal = Journal(path, OTHER)  # a new search (no resume), another configuration
    assert path.read_bytes() == before and journal.saved().startswith("no candidate had finished")
    journal.append({"i": 0})
    journal.close()
    assert journal.previous.read_bytes() == before
    assert read_journal(path, OTHER)[0] == [{"i": 0}]


def test_an_interrupt_leaving_the_journal_says_how_many_records_it_holds(tmp_path):
    path = tmp_path / "j.jsonl"
    write(path, 2)
    with pytest.raises(KeyboardInterrupt) as info, Journal(path, FP, resume=True) as journal:
        journal.append({"i": 2})
        raise KeyboardInterrupt
    assert info.value.saved == f"3 candidates are in {path}; rerun with --resume"


def test_evaluator_names_the_line_of_a_record_with_fields_of_the_wrong_type(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = Journal(path, FP)
    journal.append({"cells": 5, "params": 1, "score": 1.0, "status": "ok"})  # valid checksum, wrong type
    journal.close()
    macro = MacroConfig(num_cells=1, width=4, in_channels=1, input_size=8, hidden=16, timesteps=2)
    with pytest.raises(SpikeNASError, match=rf"{path}, line 2: not a candidate record"):
        Evaluator(macro, [], ScoreConfig(), journal=path, resume=True, fingerprint=FP)
