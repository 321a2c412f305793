"""Calibration: how far the training-free ordering can be trusted on the user's own data (``--calibrate N``).

After a search, :func:`calibrate_search` short-trains a seeded sample of ``N`` of the searched candidates with
two training seeds and measures how well the search's training-free ordering ranks them by validation accuracy.

Sample (:func:`stratified_sample`). The scored, in-budget candidates are put in the search's order without its
tie-break scores (score, then fewest parameters, then the seeded draw: :func:`~spikenas.nas.ordering.search_order`
with no tie-break, so no extra score is computed for the many candidates a search leaves tied) and cut into ``N``
strata of consecutive positions of (nearly) equal size; one candidate is drawn from each stratum, seeded by the
search seed. The top, the middle and the bottom of the ordering are all represented, and a sample of a large
search spreads over the whole range of scores rather than bunching where most candidates lie.

Ordering among the sample. The search's own order: score, then each tie-break score in turn (computed for the
sampled candidates only), then the fewest parameters (:func:`~spikenas.nas.ordering.ordering_rank`). Candidates
that order leaves tied share a rank: the seeded draw that settles them in a search carries no information.

Training. As the rerank stage trains (:mod:`spikenas.nas.rerank`): the dataset's training recipe around the
candidates' cells, all ``N`` candidates of one seed trained together (:func:`~spikenas.nas.rerank.rerank_stacked_task`,
:func:`~spikenas.train.stacked_training.train_stacked`) for ``epochs`` epochs on an optional seeded subset of
``train_samples`` images, and measured on a seeded validation part of the TRAINING split (at most ``val_samples``
images of it; the test split is never read). Each training seed draws its own split, initialisation and batch
order, so the two seeds differ as two runs of the rerank stage with different seeds do. Progress is kept in a
directory (a checkpoint per candidate and epoch, a result file per finished seed): an interrupted run continues
with ``resume`` and retrains nothing that finished.

Report. Kendall's tau-b (:func:`spikenas.stats.kendall_tau`) between the ordering and the validation accuracy of
each seed and of the mean of the seeds, with a 90% bootstrap interval (candidates resampled with replacement) of
the latter; the noise floor, the tau-b between the two seeds' accuracies, i.e. how well short training ranks the
candidates against itself, the most any ordering can be expected to agree with one short-trained measurement.

Advice (:func:`advise`, the rule is :data:`ADVICE_RULE`):

* ``inconclusive`` when the noise floor is not positive: short training at this fidelity does not rank the
  candidates reproducibly, so it can judge neither the ordering nor a rerank stage; calibrate with more epochs or
  training images;
* ``rerank`` when the ordering's tau-b (on the mean of the seeds) is below half the noise floor, or its 90%
  interval reaches 0 or below: add the rerank stage;
* ``trust`` otherwise: the training-free pick is trustworthy here.

Guard. In a search that also runs the rerank stage, the calibration runs first, and the stage's ``auto`` guard
margin is the seed noise measured here (:func:`guard_margin`) instead of the SpikeNAS-Bench prior.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from spikenas.errors import SpikeNASError
from spikenas.executor import Executor, LocalExecutor
from spikenas.memory import Budget
from spikenas.nas import rerank
from spikenas.nas.engine import CandidateRecord, Evaluator
from spikenas.nas.ordering import ordering_rank, search_order
from spikenas.nas.rerank import RECOMMENDED, training_free_ranking
from spikenas.network import MacroConfig
from spikenas.stats import kendall_tau
from spikenas.sweep import SweepTask, run_sweep
from spikenas.train.recipes import recipe_name

MIN_CANDIDATES = 3  # fewer leaves a rank correlation with at most one discordant pair to count
DEFAULT_EPOCHS = 2
DEFAULT_SEEDS = (0, 1)
DEFAULT_VAL_SAMPLES = 2000  # an accuracy's standard error is at most 1.1 points on 2,000 images
BOOTSTRAP_SAMPLES = 1000
INTERVAL = 0.90  # coverage of the bootstrap interval of the ordering's tau-b
#: The rerank schedule the advice suggests: the default one (16 epochs: 4 candidates, the best 2 to epoch 6).
SUGGESTED_BUDGET = 16
ADVICE_RULE = (
    "inconclusive when the noise floor (tau-b between the two seeds' validation accuracies) is not positive; "
    "otherwise add the rerank stage when the ordering's tau-b against the mean accuracy of the seeds is below half "
    "the noise floor or its 90% bootstrap interval reaches 0; otherwise the training-free pick is trustworthy"
)


@dataclass(frozen=True)
class CalibrateConfig:
    """The opt-in calibration of a search (``--calibrate N``, ``--calibrate-epochs``, ``--calibrate-train-samples``)."""

    n: int  # candidates sampled and trained (at least MIN_CANDIDATES)
    epochs: int = DEFAULT_EPOCHS  # epochs of each short training run
    train_samples: int | None = None  # seeded subset of the training part; None: all of it
    val_samples: int | None = DEFAULT_VAL_SAMPLES  # validation images measured (the first of the part); None: all
    val_fraction: float = 0.2  # part of the training split held out for validation (seeded per training seed)
    seeds: tuple[int, ...] = DEFAULT_SEEDS  # the two training seeds; their disagreement is the noise floor
    recipe: str = "auto"  # training recipe (spikenas.train.recipes); auto: the dataset's

    def __post_init__(self) -> None:
        for name in ("n", "epochs"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise SpikeNASError(f"calibrate {name} must be an integer, got {getattr(self, name)!r}")
        if self.n < MIN_CANDIDATES:
            raise SpikeNASError(f"calibrate needs at least {MIN_CANDIDATES} candidates, got {self.n}")
        if self.epochs < 1:
            raise SpikeNASError(f"calibrate epochs must be >= 1, got {self.epochs}")
        if self.train_samples is not None and self.train_samples < 2:
            raise SpikeNASError(f"calibrate train_samples must be >= 2 or None, got {self.train_samples}")
        if self.val_samples is not None and self.val_samples < 1:
            raise SpikeNASError(f"calibrate val_samples must be >= 1 or None, got {self.val_samples}")
        if not 0.0 < self.val_fraction < 1.0:
            raise SpikeNASError(f"calibrate val_fraction must be in (0, 1), got {self.val_fraction}")
        seeds = tuple(self.seeds)
        if len(seeds) != 2 or seeds[0] == seeds[1] or any(not isinstance(s, int) or s < 0 for s in seeds):
            raise SpikeNASError(f"calibrate seeds must be two different integers >= 0, got {self.seeds!r}")
        object.__setattr__(self, "seeds", seeds)
        recipe_name(self.recipe, "digits")  # an unknown name is refused here

    @classmethod
    def from_dict(cls, data: dict) -> CalibrateConfig:
        """The config :meth:`to_dict` wrote (``seeds`` may be a list)."""
        return cls(**{**data, **({"seeds": tuple(data["seeds"])} if "seeds" in data else {})})

    def to_dict(self) -> dict:
        return {**asdict(self), "seeds": list(self.seeds)}


def stratified_sample(ordered: Sequence[CandidateRecord], n: int, *, seed: int) -> list[int]:
    """Positions in ``ordered`` (best first) of one candidate drawn from each of ``n`` strata of consecutive
    positions of (nearly) equal size, in increasing order; all positions when there are ``n`` or fewer.

    :param seed: seeds the draw within each stratum.
    :returns: int positions, sorted, distinct.
    """
    total = len(ordered)
    if total <= n:
        return list(range(total))
    edges = np.linspace(0, total, n + 1).round().astype(np.int64)
    rng = np.random.default_rng([seed, 0xCA1B])
    return [int(rng.integers(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def _tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b, NaN where either side is constant."""
    return kendall_tau(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def bootstrap_interval(
    order: np.ndarray, accuracy: np.ndarray, *, seed: int, samples: int = BOOTSTRAP_SAMPLES, coverage: float = INTERVAL
) -> tuple[float, float]:
    """Percentile bootstrap interval of the tau-b between ``order`` and ``accuracy`` (float ``[N]`` each),
    resampling candidates with replacement; resamples where either side is constant are left out.

    :returns: (low, high); NaN, NaN when fewer than half the resamples give a tau.
    """
    rng = np.random.default_rng([seed, 0xB007])
    n = len(order)
    taus = []
    for _ in range(samples):
        pick = rng.integers(0, n, size=n)
        tau = _tau(order[pick], accuracy[pick])
        if not math.isnan(tau):
            taus.append(tau)
    if len(taus) < samples / 2:
        return float("nan"), float("nan")
    tail = (1.0 - coverage) / 2 * 100
    low, high = np.percentile(taus, [tail, 100 - tail])
    return float(low), float(high)


def advise(tau: float, low: float, noise_floor: float, *, n: int) -> dict:
    """The advice of :data:`ADVICE_RULE`: ``verdict`` (inconclusive, rerank or trust) and one line of ``text``.

    :param tau: tau-b of the ordering against the mean validation accuracy of the seeds.
    :param low: the lower end of its bootstrap interval.
    :param noise_floor: tau-b between the two seeds' validation accuracies.
    :param n: candidates calibrated (named in the text).
    """
    schedule = RECOMMENDED[SUGGESTED_BUDGET]
    stage = f"add the rerank stage (--rerank-budget {SUGGESTED_BUDGET}: {schedule}; or --rerank-top K)"
    if math.isnan(noise_floor) or noise_floor <= 0:
        verdict = "inconclusive"
        text = (f"inconclusive: two seeds of short training do not rank the candidates alike (noise floor "
                f"{_fmt(noise_floor)}); calibrate with more --calibrate-epochs or training images")
    elif math.isnan(tau) or tau < noise_floor / 2:
        verdict = "rerank"
        text = (f"{stage}: the training-free order agrees with short training (tau-b {_fmt(tau)}) less than half "
                f"as well as short training agrees with itself (noise floor {_fmt(noise_floor)})")
    elif math.isnan(low) or low <= 0:
        verdict = "rerank"
        text = (f"{stage}: on {n} candidates the order's tau-b {_fmt(tau)} is not distinguishable from 0 "
                f"(90% interval from {_fmt(low)}); a larger --calibrate N can tell")
    else:
        verdict = "trust"
        text = "the training-free pick is trustworthy here; the rerank stage is not needed"
    return {"verdict": verdict, "text": text, "rule": ADVICE_RULE}


def _fmt(value: float) -> str:
    return "undefined" if math.isnan(value) else f"{value:.2f}"


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def training_setup(
    recipe: str, dataset: str, macro: dict, *, keep_size: bool, epochs: int, train_samples: int | None,
    val_samples: int | None, seed: int,
) -> tuple[dict, dict]:
    """The MacroConfig and TrainConfig fields of a short training run, as the rerank stage sets them: the recipe's
    macro fields over the search's (only dropout and T with a memory budget, ``keep_size``, so the candidates keep
    the size the budget admitted) and the recipe's optimisation for ``epochs`` epochs, on ``train_samples`` training
    and ``val_samples`` validation images (None: all)."""
    chosen, net = rerank.recipe_network(recipe, dataset, macro, keep_size=keep_size)
    train = replace(chosen.train, epochs=epochs, max_train_samples=train_samples, max_test_samples=val_samples,
                    seed=seed).to_dict()
    return net, train


def calibrate_search(
    evaluator: Evaluator,
    config: CalibrateConfig,
    *,
    budget: Budget | None,
    macro: MacroConfig,
    dataset: str,
    data_dir: str | None,
    seed: int,
    directory: str | Path,
    resume: bool = False,
    executor: Executor | None = None,
    progress: bool = True,
) -> dict:
    """Calibrate the training-free ordering of a finished search on its dataset (see the module's docstring).

    :param evaluator: the search's evaluator: its records, tie-break scores and seed.
    :param budget: the search's memory budget (candidates beyond it are left out); None: none.
    :param seed: the search seed: the sample's draw and the bootstrap.
    :param directory: progress (checkpoints, a result file per finished seed); without ``resume`` it is emptied.
    :returns: the JSON-ready report for results.json (``calibration``).
    :raises SpikeNASError: fewer than :data:`MIN_CANDIDATES` scored candidates, or a training run that failed
        (after the other seed finished and was written; rerun with ``resume`` to retry it).
    """
    start = time.perf_counter()
    records = training_free_ranking(
        evaluator.records, fits=None if budget is None else (lambda r: budget.fits_network(r.cells, macro)),
        seed=evaluator.seed,
    )  # no tie-break: the coarse order the strata are cut from
    unique: dict[tuple[str, ...], CandidateRecord] = {}
    for r in records:
        unique.setdefault(tuple(g.to_nb201() for g in r.cells), r)
    ordered = list(unique.values())
    if len(ordered) < MIN_CANDIDATES:
        raise SpikeNASError(
            f"calibrate needs at least {MIN_CANDIDATES} scored candidates within the budget, the search has "
            f"{len(ordered)}"
        )
    positions = stratified_sample(ordered, config.n, seed=seed)
    sample = [ordered[p] for p in positions]
    tie_break = tuple(evaluator.score_config.tie_break)
    order = ordering_rank(
        np.array([r.score for r in sample]),
        [np.array([evaluator.tie_score(r, name) for r in sample]) for name in tie_break],
        np.array([r.params for r in sample]),
    ).astype(np.float64)
    sample_order = search_order(sample, tie_break, evaluator.tie_score, seed=evaluator.seed)  # for the listing

    directory = rerank.progress_directory(directory, resume=resume)
    keep_size = budget is not None
    cells = [[g.to_nb201() for g in r.cells] for r in sample]
    tasks = []
    for s in config.seeds:
        net, train = training_setup(config.recipe, dataset, macro.to_dict(), keep_size=keep_size,
                                    epochs=config.epochs, train_samples=config.train_samples,
                                    val_samples=config.val_samples, seed=s)
        tasks.append(SweepTask(
            id=f"calibrate-seed{s}",
            fn=rerank.rerank_stacked_task,
            kwargs={
                "cells": cells, "macro": net, "train": train, "dataset": dataset, "data_dir": data_dir,
                "val_fraction": config.val_fraction, "stop_epoch": config.epochs,
                "checkpoint_dirs": [str(directory / f"seed{s}" / f"pos{p:06d}") for p in positions], "seed": s,
            },
        ))
    sweep = run_sweep(tasks, output_dir=directory / "runs", executor=executor or LocalExecutor(), progress=progress)
    answers = {s: sweep.payloads[t.id]["result"]["candidates"] for s, t in zip(config.seeds, tasks, strict=True)}
    trained = sum(a["epochs_trained"] for t, s in zip(tasks, config.seeds, strict=True) if t.id in sweep.ran
                  for a in answers[s])
    accuracy = {s: np.array([a["val_accuracy"][-1] for a in answers[s]], dtype=np.float64) for s in config.seeds}
    first, second = config.seeds
    mean = (accuracy[first] + accuracy[second]) / 2
    tau = _tau(order, mean)
    low, high = bootstrap_interval(order, mean, seed=seed)
    floor = _tau(accuracy[first], accuracy[second])
    listed = {id(r): k for k, r in enumerate(sample_order)}
    return {
        "config": config.to_dict(),
        "recipe": recipe_name(config.recipe, dataset),
        "n": len(sample),
        "eligible": len(ordered),
        "epochs": config.epochs,
        "sample": "stratified: one candidate drawn from each of n equal strata of the search's order (score, fewest "
                  "params, seeded draw), seeded by the search seed",
        "validation": {"split": "train", "fraction": config.val_fraction, "seeds": list(config.seeds)},
        "kendall_tau": {
            "ordering_vs_mean": _or_none(tau),
            "interval_90": [_or_none(low), _or_none(high)],
            "ordering_vs_seed": {str(s): _or_none(_tau(order, accuracy[s])) for s in config.seeds},
            "noise_floor": _or_none(floor),
        },
        "spread": {
            "val_accuracy_min": float(mean.min()), "val_accuracy_max": float(mean.max()),
            "seed_difference_mean": float(np.abs(accuracy[first] - accuracy[second]).mean()),
            "seed_difference_median": float(np.median(np.abs(accuracy[first] - accuracy[second]))),
        },
        "advice": advise(tau, low, floor, n=len(sample)),
        "candidates": [
            {
                "position": p, "order_rank": int(order[k]), "search_order": listed[id(r)],
                "cells": cells[k], "params": r.params, "score": r.score,
                "tie_scores": {name: r.tie_scores.get(name) for name in tie_break},
                "val_accuracy": {str(s): float(accuracy[s][k]) for s in config.seeds},
                "val_accuracy_mean": float(mean[k]),
            }
            for k, (p, r) in enumerate(zip(positions, sample, strict=True))
        ],
        "epochs_trained_this_run": trained,
        "directory": str(directory),
        "threads": torch.get_num_threads(),
        "calibrate_s": time.perf_counter() - start,
    }


def guard_margin(report: dict) -> tuple[float, str]:
    """The seed noise a calibration measured on the user's data, as the rerank guard's margin, and where it comes
    from in words. The margin is in points of validation accuracy: the median, over the calibration's candidates,
    of the absolute difference between the two training seeds' accuracies (after the calibration's epochs).
    """
    source = (f"calibration: the median seed difference of its {report['n']} candidates after {report['epochs']} "
              f"epochs on this data")
    return 100.0 * report["spread"]["seed_difference_median"], source


def summary(report: dict) -> list[str]:
    """Two lines for the command's output: the taus with the noise floor, and the advice."""
    kt = report["kendall_tau"]

    def f(value: float | None) -> str:
        return "undefined" if value is None else f"{value:+.2f}"

    seeds = ", ".join(f(v) for v in kt["ordering_vs_seed"].values())
    epochs = f"{report['epochs']} epoch" + ("s" if report["epochs"] != 1 else "")
    low, high = kt["interval_90"]
    return [
        f"calibration on {report['n']} of {report['eligible']} candidates ({epochs} x 2 seeds, "
        f"{report['calibrate_s']:.1f} s): Kendall tau-b of the training-free order vs validation accuracy "
        f"{f(kt['ordering_vs_mean'])} (90% {f(low)}..{f(high)}; per seed {seeds}); noise floor (seed vs seed) "
        f"{f(kt['noise_floor'])}",
        f"advice: {report['advice']['text']}",
    ]
