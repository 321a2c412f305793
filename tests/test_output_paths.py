"""Output paths are checked before any work: a path that cannot be written is one line and exit status 2.

The tests run as root, for whom permission bits do not stop writes; a path under an existing regular file
is unwritable for every user (no directory can be created there), and /proc takes no new files.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import spikenas.analyze as analyze_package
from spikenas.analyze import STUDIES
from spikenas.analyze.__main__ import main as analyze_main
from spikenas.argparsing import (
    OUTPUT_DIR_ARGUMENTS,
    OUTPUT_FILE_ARGUMENTS,
    Parser,
    check_output_path,
    output_dir,
    output_file,
)
from spikenas.errors import SpikeNASError
from spikenas.nas.__main__ import main as search_main
from spikenas.train.__main__ import main as train_main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """An existing regular file: nothing can be created under it."""
    path = tmp_path / "plain_file"
    path.write_text("not a directory\n")
    return path


def test_writable_paths_pass_and_nothing_is_created(tmp_path):
    assert check_output_path(tmp_path / "r.json") == tmp_path / "r.json"
    assert check_output_path(tmp_path / "new" / "deeper" / "r.json") == tmp_path / "new" / "deeper" / "r.json"
    assert check_output_path(tmp_path / "out", directory=True) == tmp_path / "out"
    assert check_output_path(tmp_path, directory=True) == tmp_path
    (tmp_path / "old.json").write_text("{}")
    check_output_path(tmp_path / "old.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]
    assert (tmp_path / "old.json").read_text() == "{}"


@pytest.mark.parametrize(
    "relative,directory,message",
    [
        ("plain_file/r.json", False, "plain_file is a file, not a directory"),
        ("plain_file/a/b/r.json", False, "plain_file is a file, not a directory"),
        ("plain_file/out", True, "plain_file is a file, not a directory"),
        ("plain_file", True, "exists and is not a directory"),
        (".", False, "is a directory; give a file name"),
    ],
)
def test_unwritable_paths_name_the_path_and_the_reason(tmp_path, blocker, relative, directory, message):
    path = tmp_path / relative
    with pytest.raises(SpikeNASError, match=message) as info:
        check_output_path(path, directory=directory)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="no /proc on this system")
def test_proc_takes_no_new_files():
    with pytest.raises(SpikeNASError, match="cannot create files in /proc"):
        check_output_path("/proc/x/results.json")


def test_read_only_file_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text("{}")
    monkeypatch.setattr(os, "access", lambda p, mode: False)  # what a non-root user sees on a read-only file
    with pytest.raises(SpikeNASError, match="exists and is read-only"):
        check_output_path(path)


def test_empty_path_is_refused():
    with pytest.raises(SpikeNASError, match="must not be empty"):
        check_output_path("  ")


def test_argparse_types_report_one_line(blocker, capsys):
    parser = Parser(prog="prog")
    parser.add_argument("--output", type=output_file)
    parser.add_argument("--output-dir", type=output_dir)
    for flag in ("--output", "--output-dir"):
        with pytest.raises(SystemExit) as info:
            parser.parse_args([flag, str(blocker / "x")])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"argument {flag}: cannot write {blocker / 'x'}" in err[0]


def _refused(main, argv: list[str], capsys, bad: Path) -> None:
    """``main(argv)`` exits 2 with one line naming ``bad``, and creates nothing."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(bad) in err[0] and "is a file, not a directory" in err[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--fast"],
        ["--fast", "--algorithm", "random"],
        ["--fast", "--algorithm", "evolution", "--space", "autosnn", "--fitness", "autosnn"],
        ["--fast", "--evaluate", "0"],
    ],
    ids=["spikenas", "random", "evolution", "evaluate"],
)
def test_search_refuses_unwritable_output(argv, blocker, capsys, tmp_path):
    bad = blocker / "results.json"
    _refused(search_main, [*argv, "--output", str(bad)], capsys, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain_file"]


def test_train_refuses_unwritable_output_dir(blocker, capsys):
    bad = blocker / "train_out"
    _refused(train_main, ["--genotype", "0", "--output-dir", str(bad)], capsys, bad)


def _study_argv(study: str) -> tuple[list[str], list[str]]:
    """Minimal arguments of ``study`` (its required options filled with placeholders) and its output options."""
    parser = argparse.ArgumentParser()
    importlib.import_module(f"spikenas.analyze.{study}").add_arguments(parser)
    argv, outputs = [study], []
    for action in parser._actions:
        if action.required and action.option_strings:
            value = str(action.choices[0]) if action.choices else "1"
            argv += [action.option_strings[0], value]
        if action.dest in OUTPUT_DIR_ARGUMENTS + OUTPUT_FILE_ARGUMENTS:
            outputs.append(action.option_strings[0])
    return argv, outputs


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_refuses_unwritable_outputs(study, blocker, capsys):
    argv, outputs = _study_argv(study)
    assert outputs, f"study {study} declares no output argument named in argparsing's output lists"
    for flag in outputs:
        bad = blocker / flag.strip("-")
        start = argv.index(flag) if flag in argv else None
        given = argv if start is None else argv[:start] + argv[start + 2 :]
        _refused(analyze_main, [*given, flag, str(bad)], capsys, bad)


STANDALONE = sorted(
    info.name for info in pkgutil.iter_modules(analyze_package.__path__)
    if hasattr(importlib.import_module(f"spikenas.analyze.{info.name}"), "add_arguments")
    and hasattr(importlib.import_module(f"spikenas.analyze.{info.name}"), "main")
)


@pytest.mark.parametrize("study", STANDALONE)
def test_stand_alone_study_entries_refuse_unwritable_outputs(study, blocker, capsys):
    """A study's own ``main`` (its Parser) checks its outputs too."""
    argv, outputs = _study_argv(study)
    main = importlib.import_module(f"spikenas.analyze.{study}").main
    for flag in outputs:
        bad = blocker / flag.strip("-")
        _refused(main, [*argv[1:], flag, str(bad)], capsys, bad)


def test_search_from_the_issue_fails_before_the_search(blocker):
    """The issue's example, end to end: refused in about the time Python takes to start."""
    bad = blocker / "results.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "spikenas", "search", "--fast", "--output", str(bad)], env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "argument --output: cannot write" in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""
