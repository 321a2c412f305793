"""Multi-fidelity stage: briefly train the top of the training-free ranking and choose by validation accuracy.

A :class:`RerankSchedule` is successive halving over the best ``top`` candidates of the training-free
ranking: every candidate of rung ``r`` is trained until epoch ``epochs[r]`` (continuing the run of the
previous rung, so a rung costs ``epochs[r] - epochs[r - 1]`` epochs per candidate), then the best
``1/eta`` by validation accuracy go on to the next rung. One rung is a plain top-K rerank.
:func:`run_schedule` runs a schedule against a callback ``evaluate(candidate, epochs) -> validation
accuracy``; the live search (:func:`live_rerank`, short training with :func:`spikenas.train.trainer.train`
on a held-out part of the user's training split) and the benchmark replay
(:mod:`spikenas.analyze.rerank`, logged per-epoch validation accuracy) both go through it.

The live stage runs every rung as a :mod:`spikenas.sweep` (one task per candidate and rung, on the
local or Ray executor). Each candidate's training run keeps a checkpoint per epoch in
``<output>.rerank/<candidate>/`` and each finished rung task a result file, so a rerun with
``--resume`` retrains nothing that finished and continues interrupted runs from their last epoch.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from spikenas.data import ImageDataset, load_dataset
from spikenas.errors import SpikeNASError
from spikenas.executor import Executor, LocalExecutor
from spikenas.memory import Budget
from spikenas.nas.engine import CandidateRecord, Evaluator
from spikenas.nas.ordering import search_order
from spikenas.nas.seed_noise import statistic_noise
from spikenas.network import MacroConfig
from spikenas.space import Genotype
from spikenas.sweep import SweepTask, run_sweep
from spikenas.train.recipes import Recipe, get_recipe, recipe_name
from spikenas.train.stacked_training import train_stacked
from spikenas.train.trainer import CHECKPOINT_NAME, StopTraining, TrainConfig, load_checkpoint
from spikenas.train.trainer import fingerprint as train_fingerprint
from spikenas.train.trainer import train as train_network

C = TypeVar("C")

# Default schedule (docs/multi_fidelity.md): the replay on the dev half of SpikeNAS-Bench, reranking the search's own
# order, chooses a schedule per total epochs on all five folds (RECOMMENDED); the default is the 16-epoch one
# (4 candidates for 1 epoch, the best 2 to epoch 6, ranked by their last 3 epochs: 14 epochs).
DEFAULT_TOP = 4
DEFAULT_EPOCHS: tuple[int, ...] = (1, 6)
DEFAULT_ETA = 2
DEFAULT_WINDOW = 3
MAX_TOP = 4096  # largest candidate pool a budget may ask for
AUTO_MARGIN = "auto"  # the guard's margin: the median seed noise of the accuracy after the last epoch (seed_noise.py)


@dataclass(frozen=True)
class RerankSchedule:
    """Successive halving: ``top`` candidates, rung ``r`` trained until ``epochs[r]``, keeping ``1/eta``.

    A rung ranks its candidates by their mean validation accuracy over the last ``window`` epochs it
    trained them to (fewer when a run has fewer epochs): the validation accuracy is measured after
    every epoch anyway, and the mean is steadier than one noisy epoch at a high learning rate.
    """

    top: int  # candidates taken from the top of the training-free ranking
    epochs: tuple[int, ...]  # epoch each rung trains its candidates to, strictly increasing
    eta: int = DEFAULT_ETA  # each later rung keeps ceil(n / eta) of the n candidates of the rung before
    window: int = DEFAULT_WINDOW  # a rung's statistic: mean validation accuracy over this many last epochs
    margin: float | None = None  # guard (points of validation accuracy, see run_schedule); None: no guard

    def __post_init__(self) -> None:
        if self.top < 1:
            raise SpikeNASError(f"rerank top must be >= 1, got {self.top}")
        if not self.epochs or any(e < 1 for e in self.epochs):
            raise SpikeNASError(f"rerank epochs must be one or more integers >= 1, got {self.epochs!r}")
        if any(b <= a for a, b in zip(self.epochs, self.epochs[1:], strict=False)):
            raise SpikeNASError(f"rerank epochs must increase from rung to rung, got {self.epochs!r}")
        if self.eta < 2:
            raise SpikeNASError(f"rerank eta must be >= 2, got {self.eta}")
        if self.window < 1:
            raise SpikeNASError(f"rerank window must be >= 1 epoch, got {self.window}")
        if self.margin is not None and not (math.isfinite(self.margin) and self.margin >= 0):
            raise SpikeNASError(f"rerank margin must be a finite number >= 0 (points of accuracy), got {self.margin}")

    def rung_sizes(self, available: int | None = None) -> list[int]:
        """Candidates trained in each rung when ``available`` candidates exist (None: as many as ``top``).

        A rung that would keep a single candidate is dropped: that candidate is already the choice.
        """
        n = self.top if available is None else min(self.top, available)
        sizes = [n] if n > 0 else []
        for _ in self.epochs[1:]:
            n = math.ceil(n / self.eta)
            if n < 2:
                break
            sizes.append(n)
        return sizes

    def epochs_needed(self, available: int | None = None) -> int:
        """Total training epochs the schedule spends on ``available`` candidates (None: ``top``)."""
        spent, before = 0, 0
        for n, e in zip(self.rung_sizes(available), self.epochs, strict=False):
            spent += n * (e - before)
            before = e
        return spent

    @property
    def last_epoch(self) -> int:
        """The epoch the last rung run (with ``top`` candidates) trains to."""
        return self.epochs[len(self.rung_sizes()) - 1]

    def describe(self) -> dict:
        return {"top": self.top, "epochs": list(self.epochs), "eta": self.eta, "window": self.window,
                "margin": self.margin, "rung_sizes": self.rung_sizes(), "epochs_needed": self.epochs_needed(),
                "text": str(self)}

    def __str__(self) -> str:
        sizes = self.rung_sizes()
        text = " -> ".join(f"{n}@{e}" for n, e in zip(sizes, self.epochs, strict=False))
        return text if self.margin is None else f"{text}, margin {self.margin:g}"


def parse_epochs(text: str) -> tuple[int, ...]:
    """``"1,3,10"`` -> ``(1, 3, 10)``.

    :raises SpikeNASError: not a comma-separated list of integers.
    """
    try:
        epochs = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError as err:
        raise SpikeNASError(f"rerank epochs must be comma-separated integers, got {text!r}") from err
    if not epochs:
        raise SpikeNASError(f"rerank epochs must name at least one epoch, got {text!r}")
    return epochs


def window_epochs(epochs: int, window: int) -> range:
    """The epochs (1-based) whose validation accuracies a rung at ``epochs`` averages."""
    return range(max(1, epochs - window + 1), epochs + 1)


# What the replay chooses on all five folds for each total number of epochs; --rerank-budget alone takes the
# schedule of the largest total that fits in it.
RECOMMENDED: dict[int, RerankSchedule] = {
    8: RerankSchedule(top=2, epochs=(3,), eta=2, window=1),
    16: RerankSchedule(top=DEFAULT_TOP, epochs=DEFAULT_EPOCHS, eta=DEFAULT_ETA, window=DEFAULT_WINDOW),
    32: RerankSchedule(top=4, epochs=(1, 8), eta=2, window=3),
    64: RerankSchedule(top=6, epochs=(2, 5, 15), eta=2, window=2),
    128: RerankSchedule(top=6, epochs=(1, 4, 60), eta=2, window=2),
}


def fit_schedule(
    budget: int, *, epochs: Sequence[int] = DEFAULT_EPOCHS, eta: int = DEFAULT_ETA, window: int = DEFAULT_WINDOW
) -> RerankSchedule:
    """The schedule with rungs ``epochs`` and the most candidates whose total epochs stay within ``budget``.

    :raises SpikeNASError: if not even two candidates fit (a rerank of one candidate chooses nothing).
    """
    epochs = tuple(int(e) for e in epochs)
    best = None
    for top in range(2, MAX_TOP + 1):
        schedule = RerankSchedule(top=top, epochs=epochs, eta=eta, window=window)
        if schedule.epochs_needed() > budget:
            break
        best = schedule
    if best is None:
        raise SpikeNASError(
            f"rerank budget {budget} epochs is too small for two candidates with rungs at epochs {list(epochs)}"
        )
    return best


@dataclass
class RerankOutcome:
    """What a schedule did: the rungs, the epochs spent and the choice."""

    chosen: int  # index into the candidate list of the chosen candidate
    rungs: list[dict]  # per rung: epochs, candidates (indices), statistic (window mean) and last val. accuracy
    epochs_spent: int  # training epochs in total (continued runs count only their new epochs)
    kept_training_free: bool = False  # the guard kept candidate 0 over a better-looking one within the margin

    def to_dict(self) -> dict:
        return asdict(self)


def run_schedule(
    candidates: Sequence[C],
    schedule: RerankSchedule,
    evaluate: Callable[[C, int], float] | None = None,
    *,
    evaluate_rung: Callable[[list[int], int], list[Sequence[float]]] | None = None,
) -> RerankOutcome:
    """Successive halving over ``candidates`` (training-free ranking order, best first).

    With a guard (``schedule.margin`` not None) the training-free pick, ``candidates[0]``, is never cut: when a
    rung's ranking leaves it out, it takes the place of the last candidate kept (the rung sizes, and so the epochs
    spent, are those of the unguarded schedule). The stage then replaces it only with the last rung's winner when
    that candidate's validation accuracy after the rung's final epoch exceeds the pick's by more than ``margin``
    points; below that, the difference is within the seed noise of short training and the training-free pick
    stands. The guard compares the final accuracies, not the rung's window statistic: a window mean also
    averages earlier epochs, where a slowly starting network lags by more than any seed noise and still finishes
    ahead.

    :param evaluate: validation accuracy of a candidate after ``epochs`` epochs of training (a
        candidate of a later rung continues the training of its earlier rungs); called for each
        epoch of the rung's window.
    :param evaluate_rung: optional batch form for callers that run a rung's candidates in parallel:
        ``evaluate_rung(indices, epochs)`` returns, per candidate, its validation accuracies after
        epochs ``1..epochs``; it replaces ``evaluate`` when given.
    :returns: the outcome; equal statistics keep the training-free order.
    :raises SpikeNASError: no candidates, neither callback, or a batch answer of the wrong length.
    """
    if evaluate is None and evaluate_rung is None:
        raise SpikeNASError("run_schedule needs evaluate or evaluate_rung")
    if not candidates:
        raise SpikeNASError("rerank needs at least one candidate; the search produced none that scored")
    sizes = schedule.rung_sizes(len(candidates))
    pool = list(range(sizes[0]))
    rungs, spent, before = [], 0, 0
    guarded = schedule.margin is not None
    final: list[float] = []  # validation accuracy after each pooled candidate's last epoch, in pool order
    for n, epochs in zip(sizes, schedule.epochs, strict=False):
        pool = pool[:n]
        if guarded and 0 not in pool:
            pool[-1] = 0
        span = window_epochs(epochs, schedule.window)
        if evaluate_rung is not None:
            curves = [list(c) for c in evaluate_rung(pool, epochs)]
            if len(curves) != len(pool) or any(len(c) < epochs for c in curves):
                raise SpikeNASError(f"evaluate_rung must return {len(pool)} curves of {epochs} accuracies")
            values = [[float(c[e - 1]) for e in span] for c in curves]
        else:
            values = [[float(evaluate(candidates[i], e)) for e in span] for i in pool]
        stats = [sum(v) / len(v) for v in values]
        spent += len(pool) * (epochs - before)
        before = epochs
        rungs.append({"epochs": epochs, "candidates": list(pool), "statistic": stats,
                      "accuracies": [v[-1] for v in values]})
        order = sorted(range(len(pool)), key=lambda k: -stats[k])  # stable: ties keep the ranking's order
        final = [values[k][-1] for k in order]
        pool = [pool[k] for k in order]
    chosen, kept = pool[0], False
    if guarded and chosen != 0 and final[0] - final[pool.index(0)] <= schedule.margin:
        chosen, kept = 0, True
    return RerankOutcome(chosen=chosen, rungs=rungs, epochs_spent=spent, kept_training_free=kept)


# ---- the live stage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RerankConfig:
    """The opt-in multi-fidelity stage of a search (``--rerank-top``, ``--rerank-epochs``, ``--rerank-budget``)."""

    top: int | None = None  # candidates from the top of the ranking; None: as many as the budget allows
    epochs: tuple[int, ...] = ()  # epoch of each rung; empty: the default (see schedule())
    eta: int | None = None  # each later rung keeps 1/eta of the candidates; None: the default
    window: int | None = None  # a rung ranks by mean validation accuracy over this many last epochs; None: default
    budget: int | None = None  # most training epochs in total; None: no limit (top must be given)
    val_fraction: float = 0.2  # part of the training split held out for validation (seeded)
    train_samples: int | None = None  # seeded subset of the remaining training images; None: all
    recipe: str = "auto"  # training recipe of the runs (spikenas.train.recipes); auto: the dataset's
    batch_size: int | None = None  # batch of the short training runs; None: the recipe's
    lr: float | None = None  # initial learning rate; None: the recipe's
    margin: float | str | None = AUTO_MARGIN  # guard: lead (points) needed to replace the pick; auto; None: off

    def __post_init__(self) -> None:
        if self.top is None and self.budget is None:
            raise SpikeNASError("rerank needs --rerank-top or --rerank-budget")
        if self.budget is not None and self.budget < 1:
            raise SpikeNASError(f"rerank budget must be >= 1 epoch, got {self.budget}")
        if not 0.0 < self.val_fraction < 1.0:
            raise SpikeNASError(f"rerank val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.train_samples is not None and self.train_samples < 1:
            raise SpikeNASError(f"rerank train_samples must be >= 1 or None, got {self.train_samples}")
        if (self.batch_size is not None and self.batch_size < 1) or (self.lr is not None and self.lr <= 0):
            raise SpikeNASError(f"rerank batch_size must be >= 1 and lr > 0, got {self.batch_size} and {self.lr}")
        if isinstance(self.margin, str) and self.margin != AUTO_MARGIN:
            raise SpikeNASError(f"rerank margin must be a number >= 0, {AUTO_MARGIN!r} or None, got {self.margin!r}")
        recipe_name(self.recipe, "digits")  # an unknown name is refused here
        self.schedule()

    def schedule(self) -> RerankSchedule:
        """The schedule these options ask for.

        A budget alone takes the :data:`RECOMMENDED` schedule of the largest total that fits in it; a budget
        with rungs, eta or window takes as many candidates as fit (:func:`fit_schedule`); unset options
        take the defaults (:data:`DEFAULT_EPOCHS`, :data:`DEFAULT_ETA`, :data:`DEFAULT_WINDOW`). The guard's
        margin ``auto`` is the median seed noise of the validation accuracy after the schedule's last epoch
        (:func:`spikenas.nas.seed_noise.statistic_noise` with a window of 1), what the guard compares.

        :raises SpikeNASError: bad rungs, or a ``top`` whose schedule spends more than ``budget``.
        """
        epochs = tuple(self.epochs) or DEFAULT_EPOCHS
        eta = DEFAULT_ETA if self.eta is None else self.eta
        window = DEFAULT_WINDOW if self.window is None else self.window
        if self.top is None:
            fitting = [cap for cap in RECOMMENDED if cap <= self.budget]
            if not self.epochs and self.eta is None and self.window is None and fitting:
                return self._guarded(RECOMMENDED[max(fitting)])
            return self._guarded(fit_schedule(int(self.budget), epochs=epochs, eta=eta, window=window))
        schedule = self._guarded(RerankSchedule(top=self.top, epochs=epochs, eta=eta, window=window))
        if self.budget is not None and schedule.epochs_needed() > self.budget:
            raise SpikeNASError(
                f"rerank schedule {schedule} spends {schedule.epochs_needed()} epochs, more than "
                f"--rerank-budget {self.budget}"
            )
        return schedule

    def _guarded(self, schedule: RerankSchedule) -> RerankSchedule:
        """``schedule`` with this config's guard margin (``auto``: the seed noise of its final accuracy)."""
        margin = self.margin
        if margin == AUTO_MARGIN:
            margin = statistic_noise(schedule.last_epoch, 1)
        return replace(schedule, margin=margin)


def margin_origin(config: RerankConfig, schedule: RerankSchedule) -> str:
    """Where the guard's margin of ``config`` (resolved in ``schedule``) comes from, in words."""
    if config.margin is None:
        return "off: the stage takes the best-looking candidate"
    if config.margin == AUTO_MARGIN:
        return (f"auto: the median seed noise of the validation accuracy after epoch {schedule.last_epoch} on "
                f"SpikeNAS-Bench's dev curves (CIFAR-10)")
    return "given: --rerank-margin"


def training_free_ranking(
    records: Sequence[CandidateRecord],
    *,
    tie_break: Sequence[str] = (),
    tie_value: Callable[[CandidateRecord, str], float] | None = None,
    fits: Callable[[CandidateRecord], bool] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[CandidateRecord]:
    """Scored, in-budget records in the search's order (:func:`spikenas.nas.ordering.search_order`): score,
    then each tie-break score in turn, then the fewest parameters, then the seeded draw.

    Tie-break scores are asked for (``tie_value(record, name)``, e.g. ``Evaluator.tie_score``) only for
    records still tied where the order of the first ``limit`` records depends on them.

    :param fits: whether a record is within the memory budget; None: every record is.
    :param seed: the search's seed (the draw that ends the order, as in the search's own pick).
    :raises SpikeNASError: tie-breaks without ``tie_value``.
    """
    if tie_break and tie_value is None:
        raise SpikeNASError(f"tie_break {tuple(tie_break)} needs tie_value")
    ok = [r for r in records if r.status == "ok" and math.isfinite(r.score) and (fits is None or fits(r))]
    return search_order(ok, tuple(tie_break), tie_value or (lambda r, name: 0.0), seed=seed, limit=limit)


def split_train_val(n: int, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``n`` training images into (train, validation) index arrays, int64, each sorted.

    :raises SpikeNASError: if either part would be empty.
    """
    n_val = int(round(val_fraction * n))
    if n_val < 1 or n_val >= n:
        raise SpikeNASError(f"val_fraction {val_fraction} of {n} training images leaves an empty part")
    order = np.random.default_rng([seed, 0x5E1EC7]).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def rerank_task(
    *,
    cells: list[str],
    macro: dict,
    train: dict,
    dataset: str,
    data_dir: str | None,
    val_fraction: float,
    stop_epoch: int,
    checkpoint_dir: str,
    seed: int = 0,
) -> dict:
    """Train one candidate until ``stop_epoch`` of a ``train["epochs"]``-epoch run; validation accuracy then.

    The run continues from the checkpoint in ``checkpoint_dir`` when there is one (an earlier rung, or
    an interrupted attempt), and its validation accuracy is read from the checkpoint's history when
    it already went past ``stop_epoch``.

    :param cells: NAS-Bench-201 strings, one per cell.
    :param macro: :class:`~spikenas.network.MacroConfig` fields; :param train: ``TrainConfig`` fields.
    :returns: ``val_accuracy``: validation accuracies in [0, 1] after epochs ``1..stop_epoch``, the
        history up to ``stop_epoch``, and the epochs trained by this call.
    """
    genotypes = [Genotype.from_nb201(c) for c in cells]
    config = TrainConfig(**{**train, "seed": seed})
    if not 1 <= stop_epoch <= config.epochs:
        raise SpikeNASError(f"stop_epoch must be in 1..{config.epochs}, got {stop_epoch}")
    train_set, val_set = _rerank_sets(dataset, data_dir, val_fraction, seed)
    macro_cfg = MacroConfig.from_dict(macro)
    done, answer = _rerank_progress(Path(checkpoint_dir), genotypes, macro_cfg, config, train_set, val_set, stop_epoch)
    if answer is not None:
        return answer

    def stop(epoch: int, row: dict) -> None:
        if epoch >= stop_epoch:
            raise StopTraining

    result = train_network(
        genotypes, macro_cfg, train_set, val_set, config=config, checkpoint_dir=checkpoint_dir,
        resume=done > 0, progress=False, count_test_spikes=False, on_epoch_end=stop,
    )
    history = result.history[:stop_epoch]
    return {
        "val_accuracy": [h["test_accuracy"] for h in history], "history": history, "epochs_trained": stop_epoch - done
    }


def _rerank_sets(dataset: str, data_dir: str | None, val_fraction: float, seed: int) -> tuple[ImageDataset, ...]:
    """The (train, validation) split of ``dataset``'s training images that a rerank trains and ranks on."""
    full = load_dataset(dataset, data_dir=data_dir, split="train")
    tr, va = split_train_val(len(full), val_fraction=val_fraction, seed=seed)
    tag = f"{dataset}[rerank seed={seed} val={val_fraction}]"
    train_set = ImageDataset(f"{tag}:train", full.images[tr], full.labels[tr], full.num_classes)
    val_set = ImageDataset(f"{tag}:val", full.images[va], full.labels[va], full.num_classes)
    return train_set, val_set


def _rerank_progress(
    checkpoint_dir: Path,
    genotypes: list[Genotype],
    macro: MacroConfig,
    config: TrainConfig,
    train_set: ImageDataset,
    val_set: ImageDataset,
    stop_epoch: int,
) -> tuple[int, dict | None]:
    """Epochs a candidate's checkpoint holds (0 without one) and, when it holds ``stop_epoch`` or more,
    the rung's answer read from its history."""
    ckpt = checkpoint_dir / CHECKPOINT_NAME
    if not ckpt.exists():
        return 0, None
    n_train = len(train_set) if config.max_train_samples is None else min(config.max_train_samples, len(train_set))
    n_val = len(val_set) if config.max_test_samples is None else min(config.max_test_samples, len(val_set))
    data_id = f"{train_set.name}:train={n_train}:test={n_val}"
    state = load_checkpoint(ckpt, train_fingerprint(genotypes, macro, config, data_id))
    done = int(state["epoch"])
    if done < stop_epoch:
        return done, None
    history = state["history"][:stop_epoch]
    return done, {"val_accuracy": [h["test_accuracy"] for h in history], "history": history, "epochs_trained": 0}


def rerank_stacked_task(
    *,
    cells: list[list[str]],
    macro: dict,
    train: dict,
    dataset: str,
    data_dir: str | None,
    val_fraction: float,
    stop_epoch: int,
    checkpoint_dirs: list[str],
    seed: int = 0,
) -> dict:
    """:func:`rerank_task` for several candidates of one macro at once, trained together on the same batches
    (:func:`spikenas.train.stacked_training.train_stacked`); each keeps its own checkpoint directory, in
    the format :func:`rerank_task` reads and writes, so either task continues the other's runs.

    :param cells: per candidate, NAS-Bench-201 strings, one per cell.
    :returns: ``candidates``: per candidate, in order, what :func:`rerank_task` returns.
    """
    genotypes = [[Genotype.from_nb201(c) for c in cand] for cand in cells]
    if len(checkpoint_dirs) != len(genotypes):
        raise SpikeNASError(f"got {len(checkpoint_dirs)} checkpoint directories for {len(genotypes)} candidates")
    config = TrainConfig(**{**train, "seed": seed})
    if not 1 <= stop_epoch <= config.epochs:
        raise SpikeNASError(f"stop_epoch must be in 1..{config.epochs}, got {stop_epoch}")
    train_set, val_set = _rerank_sets(dataset, data_dir, val_fraction, seed)
    macro_cfg = MacroConfig.from_dict(macro)
    answers: list[dict | None] = []
    done: list[int] = []
    for g, directory in zip(genotypes, checkpoint_dirs, strict=True):
        epochs, answer = _rerank_progress(Path(directory), g, macro_cfg, config, train_set, val_set, stop_epoch)
        done.append(epochs)
        answers.append(answer)
    todo = [k for k, a in enumerate(answers) if a is None]

    def stop(candidate: int, epoch: int, row: dict) -> None:
        if epoch >= stop_epoch:
            raise StopTraining

    if todo:
        results = train_stacked(
            [genotypes[k] for k in todo], macro_cfg, train_set, val_set, config=config,
            checkpoint_dirs=[checkpoint_dirs[k] for k in todo], resume=[done[k] > 0 for k in todo],
            progress=False, count_test_spikes=False, on_epoch_end=stop,
        )
        for k, result in zip(todo, results, strict=True):
            history = result.history[:stop_epoch]
            answers[k] = {"val_accuracy": [h["test_accuracy"] for h in history], "history": history,
                          "epochs_trained": stop_epoch - done[k]}
    return {"candidates": answers}


@dataclass
class LiveRerank:
    """Runs the rungs of a schedule as sweeps of :func:`rerank_task` (one task per candidate and rung)."""

    candidates: list[CandidateRecord]  # training-free ranking, best first
    macro: dict  # MacroConfig fields of the trained networks
    train: dict  # TrainConfig fields; epochs is the schedule's last rung
    dataset: str
    data_dir: str | None
    val_fraction: float
    seed: int
    directory: Path  # result files and checkpoints
    executor: Executor = field(default_factory=LocalExecutor)
    progress: bool = True
    trained: int = 0  # epochs trained in this call (less than the schedule's when resumed)
    stacked: bool = False  # train a rung's candidates together in one task (rerank_stacked_task)

    def rung(self, indices: list[int], epochs: int) -> list[list[float]]:
        """Validation accuracies of each candidate in ``indices`` after epochs ``1..epochs``, in that order."""
        if self.stacked:
            return self._stacked_rung(indices, epochs)
        tasks = []
        for i in indices:
            name = f"rank{i:04d}"
            tasks.append(SweepTask(
                id=f"{name}-epoch{epochs:03d}",
                fn=rerank_task,
                kwargs={
                    "cells": [g.to_nb201() for g in self.candidates[i].cells], "macro": self.macro,
                    "train": self.train, "dataset": self.dataset, "data_dir": self.data_dir,
                    "val_fraction": self.val_fraction, "stop_epoch": epochs,
                    "checkpoint_dir": str(self.directory / name), "seed": self.seed,
                },
            ))
        sweep = run_sweep(tasks, output_dir=self.directory / "runs", executor=self.executor, progress=self.progress)
        self.trained += sum(sweep.payloads[t]["result"]["epochs_trained"] for t in sweep.ran)
        return [sweep.payloads[t.id]["result"]["val_accuracy"] for t in tasks]

    def _stacked_rung(self, indices: list[int], epochs: int) -> list[list[float]]:
        """:meth:`rung` as one task that trains the candidates together (they share the macro)."""
        names = [f"rank{i:04d}" for i in indices]
        task = SweepTask(
            id=f"stacked-epoch{epochs:03d}-" + ".".join(str(i) for i in indices),
            fn=rerank_stacked_task,
            kwargs={
                "cells": [[g.to_nb201() for g in self.candidates[i].cells] for i in indices], "macro": self.macro,
                "train": self.train, "dataset": self.dataset, "data_dir": self.data_dir,
                "val_fraction": self.val_fraction, "stop_epoch": epochs,
                "checkpoint_dirs": [str(self.directory / name) for name in names], "seed": self.seed,
            },
        )
        sweep = run_sweep([task], output_dir=self.directory / "runs", executor=self.executor, progress=self.progress)
        answers = sweep.payloads[task.id]["result"]["candidates"]
        if task.id in sweep.ran:
            self.trained += sum(a["epochs_trained"] for a in answers)
        return [a["val_accuracy"] for a in answers]


def progress_directory(directory: str | Path, *, resume: bool) -> Path:
    """``directory`` ready for a stage's progress: emptied first unless ``resume``, then created."""
    directory = Path(directory)
    if not resume and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def recipe_network(recipe: str, dataset: str, macro: dict, *, keep_size: bool) -> tuple[Recipe, dict]:
    """The training recipe ``recipe`` of ``dataset`` and the MacroConfig fields of the network a short training
    run trains: the recipe's macro fields over the search's ``macro``; with ``keep_size`` (the search had a memory
    budget) only dropout and T, so the candidates keep the size the budget admitted."""
    chosen = get_recipe(recipe, dataset)
    fields = chosen.macro_fields()
    if keep_size:
        fields = {k: v for k, v in fields.items() if k in ("dropout", "timesteps")}
    return chosen, {**macro, **fields}


def live_rerank(
    ranking: list[CandidateRecord],
    config: RerankConfig,
    *,
    macro: dict,
    dataset: str,
    data_dir: str | None,
    seed: int,
    directory: str | Path,
    resume: bool = False,
    executor: Executor | None = None,
    progress: bool = True,
    keep_size: bool = False,
    stacked: bool = False,
    margin_source: str | None = None,
) -> tuple[CandidateRecord, dict]:
    """Run the multi-fidelity stage on the search's ranking; the chosen record and a JSON-ready report.

    The candidates are trained as the train command trains a searched network: with the training recipe
    (``config.recipe``) around their cells and its optimisation, for the rung's epochs.

    :param ranking: training-free ranking, best first (:func:`training_free_ranking`).
    :param macro: :class:`~spikenas.network.MacroConfig` fields of the searched network.
    :param keep_size: the search had a memory budget: the recipe sets only the fields that leave the network's
        size unchanged (dropout, T), so the trained candidates are the ones the budget admitted.
    :param directory: progress of the stage (checkpoints, one result file per finished rung run); without
        ``resume`` it is emptied first.
    :param stacked: train each rung's candidates together in one process
        (:func:`spikenas.train.stacked_training.train_stacked`; the same results up to float rounding) instead
        of one sweep task per candidate.
    :param margin_source: where a numeric ``config.margin`` was measured, for the report's ``guard``; None:
        as :func:`margin_origin` describes the config's margin.
    :raises SpikeNASError: empty ranking, bad options, or a training run that failed (after every
        other run of its rung finished and was written; rerun with ``resume`` to retry it).
    """
    start = time.perf_counter()
    schedule = config.schedule()
    if not ranking:
        raise SpikeNASError("rerank needs at least one candidate; the search produced none that scored within budget")
    directory = progress_directory(directory, resume=resume)
    rungs = len(schedule.rung_sizes(len(ranking)))
    recipe, macro = recipe_network(config.recipe, dataset, macro, keep_size=keep_size)
    changes = {"epochs": schedule.epochs[rungs - 1],  # the learning rate anneals over the last rung actually run
               "max_train_samples": config.train_samples, "seed": seed}
    if config.batch_size is not None:
        changes["batch_size"] = config.batch_size
    if config.lr is not None:
        changes.update(lr=config.lr, eta_min=min(recipe.train.eta_min, config.lr))
    train = replace(recipe.train, **changes).to_dict()
    live = LiveRerank(
        candidates=list(ranking), macro=macro, train=train, dataset=dataset, data_dir=data_dir,
        val_fraction=config.val_fraction, seed=seed, directory=directory, executor=executor or LocalExecutor(),
        progress=progress, stacked=stacked,
    )
    # The training runs report accuracy as a fraction; the guard's margin is in points of accuracy.
    in_fractions = schedule if schedule.margin is None else replace(schedule, margin=schedule.margin / 100.0)
    outcome = run_schedule(live.candidates, in_fractions, evaluate_rung=live.rung)
    chosen = live.candidates[outcome.chosen]
    tried = sorted({i for rung in outcome.rungs for i in rung["candidates"]})
    last: dict[int, tuple[int, float, float]] = {}  # candidate -> epochs, statistic, validation accuracy
    for rung in outcome.rungs:
        for i, stat, acc in zip(rung["candidates"], rung["statistic"], rung["accuracies"], strict=True):
            last[i] = (rung["epochs"], stat, acc)
    report = {
        "config": asdict(config),
        "schedule": schedule.describe(),
        "rung_sizes": [len(r["candidates"]) for r in outcome.rungs],
        "rungs": outcome.rungs,
        "epochs_spent": outcome.epochs_spent,
        "epochs_trained_this_run": live.trained,
        "validation": {"split": "train", "fraction": config.val_fraction, "seed": seed},
        "candidates": [
            {
                "rank": i, "cells": [g.to_nb201() for g in live.candidates[i].cells],
                "params": live.candidates[i].params, "score": live.candidates[i].score,
                "epochs": last[i][0], "statistic": last[i][1], "val_accuracy": last[i][2],
                "chosen": i == outcome.chosen,
            }
            for i in tried
        ],
        "chosen_rank": outcome.chosen,
        "guard": {"margin": schedule.margin, "source": margin_source or margin_origin(config, schedule),
                  "kept_training_free": outcome.kept_training_free},
        "training_free_pick": [g.to_nb201() for g in live.candidates[0].cells],
        "directory": str(directory),
        "rerank_s": time.perf_counter() - start,
    }
    return chosen, report


def rerank_search(
    evaluator: Evaluator,
    config: RerankConfig,
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
    stacked: bool = False,
    margin_source: str | None = None,
) -> tuple[CandidateRecord, dict]:
    """The multi-fidelity stage of a finished search: rank the evaluator's records as the search orders
    them (:func:`training_free_ranking`) and rerank the top by short training (:func:`live_rerank`).

    :returns: the chosen record and the report for results.json.
    """
    schedule = config.schedule()
    ranking = training_free_ranking(
        evaluator.records, tie_break=evaluator.score_config.tie_break, tie_value=evaluator.tie_score,
        fits=None if budget is None else (lambda r: budget.fits_network(r.cells, macro)), limit=schedule.top,
        seed=evaluator.seed,
    )
    return live_rerank(
        ranking[: schedule.top], config, macro=macro.to_dict(), dataset=dataset, data_dir=data_dir, seed=seed,
        directory=directory, resume=resume, executor=executor, progress=progress, keep_size=budget is not None,
        stacked=stacked, margin_source=margin_source,
    )
