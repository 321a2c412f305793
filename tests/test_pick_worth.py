"""The measured worth of the training-free pick: every figure equals its study file, and the search says it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from spikenas.nas.__main__ import main
from spikenas.nas.pick_worth import TRUSTED, WORTH, PickWorth, pick_worth

ROOT = Path(__file__).resolve().parents[1]


def _study_folds(study: str) -> list[float]:
    """The default rule's mean pick percentile per held-out fold, read from a selection study's file."""
    path = ROOT / study
    if path.suffix == ".json":
        result = json.loads(path.read_text())
        label = result["default_rule"]
        folds = [p for p in result["pools"] if p.startswith("fold")]
        return [result["pools"][f]["rules"][label][0]["mean_pick"] for f in folds]
    row = next(line for line in path.read_text().splitlines() if "(default) |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")[1:-1]]  # the folds, without the rule and the "all" pool
    return [float(re.match(r"[\d.]+", c).group()) for c in cells]


@pytest.mark.parametrize("key", list(WORTH))
def test_every_figure_is_its_study_files(key) -> None:
    worth = WORTH[key]
    assert (worth.op_set, worth.num_cells) == key
    assert list(worth.folds) == pytest.approx(_study_folds(worth.study), abs=0.05)


def test_the_default_ordering_only_and_the_fallback() -> None:
    from spikenas.scoring import ScoreConfig

    default = ScoreConfig()
    assert pick_worth("bench5", 2, default.name, default.tie_break) is WORTH[("bench5", None)]
    assert pick_worth("bench5", 2, "sahd", default.tie_break) is None
    assert pick_worth("bench5", 2, default.name, ()) is None
    assert pick_worth("speck", 1, default.name, default.tie_break) is None


def test_the_line_says_when_the_pick_needs_the_rerank_stage() -> None:
    low = PickWorth("3O", 1, (60.0, 70.0), "a ground truth", "x.json")
    high = PickWorth("3O", 1, (TRUSTED, 99.0), "a ground truth", "x.json")
    assert "needs the rerank stage" in low.line() and "--rerank-budget" in low.line() and not low.trusted
    assert "rerank" not in high.line() and high.trusted
    assert "65.0 (60.0-70.0 over 2 folds)" in low.line()


def test_a_search_prints_the_measured_worth(tmp_path, capsys) -> None:
    measured = [k for k, w in WORTH.items() if k[0] in ("2O", "3O")]
    if not measured:
        pytest.skip("no ground-truth figure in WORTH")
    op_set, cells = measured[0]
    out = tmp_path / "r.json"
    assert main(["--fast", "--dataset", "digits", "--ops", op_set, "--cells", str(cells), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert WORTH[measured[0]].line() in printed
    assert json.loads(out.read_text())["selection"]["worth"]["folds"] == list(WORTH[measured[0]].folds)
