"""What the search's training-free pick is worth, as measured on trained records, per op set.

The pick's worth is its test-accuracy percentile among the records within the same memory budget, averaged over
nine budgets (the 10 %, ..., 90 % quantiles of the records' parameter counts), on each of five seeded folds of a
trained ground truth (``python -m spikenas.analyze selection``). A search prints it beside its pick, and says
plainly when it falls short of :data:`TRUSTED`: the ordering then does not choose well on its own in that op set,
and the multi-fidelity stage (``--rerank-budget``), or a calibration on the user's data (``--calibrate``), should
decide. ``tests/test_pick_worth.py`` checks every figure against the study file it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

TRUSTED = 90.0  # mean pick percentile on every fold at or above which the pick stands on its own


@dataclass(frozen=True)
class PickWorth:
    """The default ordering's measured worth in one op set."""

    op_set: str
    num_cells: int | None  # cells of the networks measured; None: the figure stands for any number
    folds: tuple[float, ...]  # mean pick percentile over the nine budgets, per held-out fold
    measured_on: str  # the trained records, in a few words
    study: str  # the selection study's JSON (repository path) the figures come from

    @property
    def trusted(self) -> bool:
        return min(self.folds) >= TRUSTED

    def line(self) -> str:
        """One line for the search's output."""
        lo, hi, mean = min(self.folds), max(self.folds), sum(self.folds) / len(self.folds)
        cells = "" if self.num_cells is None else f", {self.num_cells} cell{'s' if self.num_cells > 1 else ''}"
        text = (f"training-free pick in op set {self.op_set}{cells}: mean pick percentile {mean:.1f} "
                f"({lo:.1f}-{hi:.1f} over {len(self.folds)} folds) on {self.measured_on}")
        if self.trusted:
            return text
        return (text + f"; below {TRUSTED:.0f}, so it needs the rerank stage here: add --rerank-budget 16, or "
                "measure it on your data with --calibrate 8")

    def to_dict(self) -> dict:
        return {**asdict(self), "trusted": self.trusted, "threshold": TRUSTED, "line": self.line()}


#: The search's default ordering (score conv_depth, tie-break threshold_rise), per op set and number of cells.
WORTH: dict[tuple[str, int | None], PickWorth] = {
    ("bench5", None): PickWorth(
        "bench5", None, (96.0, 96.4, 98.0, 97.2, 95.3), "SpikeNAS-Bench's CIFAR-10 dev half (7,812 records)",
        "docs/selection.md",
    ),
    ("2O", 1): PickWorth(
        "2O", 1, (59.3, 79.1, 69.4, 75.1, 43.1),
        "a Fashion-MNIST ground truth (64 1-cell networks, 3 epochs of 2,000 images)",
        "docs/results/ground_truth/selection/2O-1cell/selection.json",
    ),
    ("3O", 1): PickWorth(
        "3O", 1, (57.2, 66.8, 66.8, 81.3, 48.0),
        "a Fashion-MNIST ground truth (729 1-cell networks, 3 epochs of 2,000 images)",
        "docs/results/ground_truth/selection/3O-1cell/selection.json",
    ),
    ("3O", 2): PickWorth(
        "3O", 2, (70.3, 53.7, 29.1, 78.1, 50.2),
        "a Fashion-MNIST ground truth (300 2-cell networks, 3 epochs of 2,000 images)",
        "docs/results/ground_truth/selection/3O-2cell/selection.json",
    ),
}


def pick_worth(op_set: str, num_cells: int, score: str, tie_break: Sequence[str]) -> PickWorth | None:
    """The measured worth of the default ordering in ``op_set`` with ``num_cells`` cells; None for another ordering
    or a space not measured."""
    from spikenas.scoring import ScoreConfig

    default = ScoreConfig()
    if score != default.name or tuple(tie_break) != tuple(default.tie_break):
        return None
    return WORTH.get((op_set, num_cells), WORTH.get((op_set, None)))
