"""The search request: what one search is asked to do, as parts that each module reads on its own.

A :class:`SearchRequest` (also importable as ``SearchConfig``) is made of

* ``algorithm``: the algorithm and its own options, one dataclass per algorithm: :class:`SpikeNASOptions`
  (Alg. 1, consecutive), :class:`RandomOptions` (SNASNet's random sampling) or
  :class:`~spikenas.nas.evolution_run.EvolutionOptions` (AutoSNN's evolution);
* ``macro``: the networks (:class:`~spikenas.nas.macro.MacroOptions`: op set, cells, width, hidden, T, input size);
* ``data``: the dataset and the scoring batches (:class:`DataOptions`);
* ``budget``: the memory budget and the deployment report's bit widths (:class:`BudgetOptions`);
* ``score``: the training-free score (:class:`~spikenas.scoring.ScoreConfig`);
* ``mode``: exact or fast scoring (:class:`~spikenas.nas.evaluators.ModeOptions`);
* ``rerank``: the opt-in multi-fidelity stage (:class:`~spikenas.nas.rerank.RerankConfig`);
* ``calibrate``: the opt-in calibration of the ordering (:class:`~spikenas.nas.calibrate.CalibrateConfig`);
* ``seed``: the seed of data batches, weights and every random draw.

Construction is keyword-only. Unset defaults that depend on the algorithm are filled in here, for the command
line and the library alike: the score (``sahd`` with no tie-break for evolution's score fitness, the score
registry's default otherwise) and T (8 on AutoSNN's block space, 5 otherwise).

The flat form (:meth:`SearchRequest.to_dict`, :meth:`SearchRequest.from_fields`) names every option by one key
(``width``, ``budget``, ``population``...); it is the ``config`` block of results.json and what a journal's
fingerprint hashes. Giving an option that the chosen algorithm does not read is an error.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from spikenas.deployment import DeploymentConfig
from spikenas.errors import SpikeNASError
from spikenas.hardware import Target, get_target
from spikenas.memory import Budget
from spikenas.nas.calibrate import CalibrateConfig
from spikenas.nas.evaluators import ModeOptions
from spikenas.nas.evolution_run import EvolutionOptions
from spikenas.nas.fast import FastConfig
from spikenas.nas.macro import AUTOSNN_TIMESTEPS, DEFAULT_TIMESTEPS, MacroOptions
from spikenas.nas.random_search import DEFAULT_SAMPLES
from spikenas.nas.rerank import RerankConfig
from spikenas.scoring import ScoreConfig, get_score
from spikenas.typecheck import check_fields, check_seed, check_value

ALGORITHMS = ("spikenas", "random", "evolution")


@dataclass(frozen=True, kw_only=True)
class SpikeNASOptions:
    """The options of algorithm ``spikenas`` (Alg. 1: cell positions searched one after another); it has none."""

    name: ClassVar[str] = "spikenas"


@dataclass(frozen=True, kw_only=True)
class RandomOptions:
    """The options of algorithm ``random`` (SNASNet: the best of seeded random samples)."""

    name: ClassVar[str] = "random"
    samples: int = DEFAULT_SAMPLES  # networks drawn (with repeats; a repeat is not scored again)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.samples < 1:
            raise SpikeNASError(f"samples must be >= 1, got {self.samples}")


AlgorithmOptions = SpikeNASOptions | RandomOptions | EvolutionOptions
OPTIONS: dict[str, type] = {"spikenas": SpikeNASOptions, "random": RandomOptions, "evolution": EvolutionOptions}


@dataclass(frozen=True, kw_only=True)
class DataOptions:
    """The data a search scores with: ``num_batches`` seeded batches of ``batch_size`` training images."""

    dataset: str = "digits"  # see spikenas.data.DATASETS
    data_dir: str | None = None  # where non-embedded datasets are read from
    batch_size: int = 64  # samples per scoring batch (B)
    num_batches: int = 1  # batches averaged per score

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("batch_size", "num_batches"):
            if getattr(self, name) < 1:
                raise SpikeNASError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise SpikeNASError(f"batch_size must be >= 2 for a kernel matrix, got {self.batch_size}")


@dataclass(frozen=True, kw_only=True)
class BudgetOptions:
    """The memory budget (:class:`~spikenas.memory.Budget`, made by :meth:`build`) and the bit widths of the
    deployment report (:meth:`deployment_target`), which apply without a budget too."""

    limit: float | None = None  # parameters, or bytes when bits is set; None: no budget
    bits: int | None = None  # bits per parameter for a byte budget
    kind: str | None = None  # params, weight_bytes or onchip_bytes; None: params, weight_bytes with bits
    state_bits: int | None = None  # bits per neuron state (on-chip budget and deployment report); None: bits
    activation_bits: int | None = None  # bits per non-spike activation buffer (ditto); None: bits
    buffer_scope: str = "timestep"  # peak buffer of one timestep or of all T (ditto)
    target: str = "generic"  # hardware target (spikenas.hardware.target_names()); candidates it cannot run are pruned

    def __post_init__(self) -> None:
        check_fields(self)
        self.hardware()
        if self.bits is not None and self.limit is None:
            raise SpikeNASError("bits needs a budget: --bits sets the width of the byte budget given by --budget")
        if self.kind is not None and self.limit is None:
            raise SpikeNASError(f"budget_kind {self.kind!r} needs a budget (--budget)")
        self.build()
        self.deployment_target()

    def build(self) -> Budget | None:
        """The budget a search keeps to; None without a limit."""
        if self.limit is None:
            return None
        if self.kind != "onchip_bytes":
            return Budget(self.limit, self.bits, kind=self.kind)
        return Budget(self.limit, self.bits, kind=self.kind, state_bits=self.state_bits,
                      activation_bits=self.activation_bits, buffer_scope=self.buffer_scope)

    def hardware(self) -> Target | None:
        """The hardware target the search keeps to; None for ``generic``, whose on-chip bytes the budget prices.

        :raises SpikeNASError: an unknown target (the message lists the registered ones).
        """
        target = get_target(self.target)
        return None if self.target == "generic" else target

    def deployment_target(self) -> DeploymentConfig:
        """Bit widths of the deployment report: ``bits`` (32 without) for weights, state and activations
        unless ``state_bits`` / ``activation_bits`` say otherwise."""
        bits = self.bits or 32
        return DeploymentConfig(weight_bits=bits, state_bits=self.state_bits or bits,
                                activation_bits=self.activation_bits or bits, buffer_scope=self.buffer_scope)


#: The flat form: every key of ``to_dict()`` (in its order) -> (part, that part's field). Part ``fast`` is
#: ``mode.fast``; parts ``random`` and ``evolution`` are the algorithm's options, their defaults for the others.
FIELDS: dict[str, tuple[str, str]] = {
    "algorithm": ("algorithm", "name"),
    "op_set": ("macro", "op_set"),
    "dataset": ("data", "dataset"),
    "data_dir": ("data", "data_dir"),
    "num_cells": ("macro", "num_cells"),
    "width": ("macro", "width"),
    "hidden": ("macro", "hidden"),
    "timesteps": ("macro", "timesteps"),
    "input_size": ("macro", "input_size"),
    "batch_size": ("data", "batch_size"),
    "num_batches": ("data", "num_batches"),
    "samples": ("random", "samples"),
    "budget": ("budget", "limit"),
    "bits": ("budget", "bits"),
    "budget_kind": ("budget", "kind"),
    "state_bits": ("budget", "state_bits"),
    "activation_bits": ("budget", "activation_bits"),
    "buffer_scope": ("budget", "buffer_scope"),
    "score": ("score", ""),
    "mode": ("mode", "name"),
    "weight_seeding": ("mode", "weight_seeding"),
    "proxy_batch": ("fast", "proxy_batch"),
    "rescore_fraction": ("fast", "rescore_fraction"),
    "race_top": ("fast", "race_top"),
    "seed": ("seed", ""),
    "space": ("evolution", "space"),
    "fitness": ("evolution", "fitness"),
    "population": ("evolution", "population"),
    "iterations": ("evolution", "iterations"),
    "supernet_epochs": ("evolution", "supernet_epochs"),
    "spike_target": ("evolution", "spike_target"),
    "train_images": ("evolution", "train_images"),
    "rerank": ("rerank", ""),
}
#: Fast-mode options outside the historical flat form: ``to_dict()`` writes them only when not at their defaults.
EXTRA_FAST_FIELDS = ("rescore_min", "chunk", "stack_elements")
#: Budget options outside the historical flat form, written likewise only when not at their defaults.
EXTRA_BUDGET_FIELDS = ("target",)
#: The calibration (part ``calibrate``) is outside the historical flat form too: written only when it is set.
CALIBRATE_FIELD = "calibrate"
_PART_TYPES = {"macro": MacroOptions, "data": DataOptions, "budget": BudgetOptions, "mode": ModeOptions,
               "fast": FastConfig, "random": RandomOptions, "evolution": EvolutionOptions}
#: The algorithms that read each part; the others refuse its options.
_READERS = {"random": ("random",), "evolution": ("evolution",), "mode": ("spikenas", "random"),
            "fast": ("spikenas", "random"), "rerank": ("spikenas", "random"),
            CALIBRATE_FIELD: ("spikenas", "random")}


def _flat_hint(key: str) -> object:
    if key == CALIBRATE_FIELD:
        return CalibrateConfig | dict | None
    part, attr = FIELDS.get(key, ("budget" if key in EXTRA_BUDGET_FIELDS else "fast", key))
    special = {"algorithm": str, "score": ScoreConfig | dict | None, "rerank": RerankConfig | dict | None,
               "seed": int}
    return special[part] if part in special else typing.get_type_hints(_PART_TYPES[part])[attr]


def _readers(key: str) -> tuple[str, ...]:
    if key == CALIBRATE_FIELD:
        return _READERS[CALIBRATE_FIELD]
    return _READERS.get(FIELDS.get(key, ("fast", key))[0], ALGORITHMS)


def default_score(algorithm: AlgorithmOptions) -> ScoreConfig:
    """The score of a request that names none: ``sahd`` without tie-break for evolution's score fitness (it runs
    a spike-kernel score on every network), :class:`~spikenas.scoring.ScoreConfig`'s default otherwise."""
    if isinstance(algorithm, EvolutionOptions) and algorithm.fitness == "score":
        return ScoreConfig(name="sahd", tie_break=())
    return ScoreConfig()


def default_timesteps(algorithm: AlgorithmOptions) -> int:
    """T of a request that gives none: AutoSNN's on its block space, the cell space's otherwise."""
    if isinstance(algorithm, EvolutionOptions) and algorithm.space == "autosnn":
        return AUTOSNN_TIMESTEPS
    return DEFAULT_TIMESTEPS


@dataclass(frozen=True, kw_only=True)
class SearchRequest:
    """A complete, reproducible search request, made of parts (see the module's docstring).

    ``score=None`` and ``macro.timesteps=None`` take the algorithm's defaults (:func:`default_score`,
    :func:`default_timesteps`); the request holds the values they resolve to.

    :raises SpikeNASError: a part of the wrong type, a bad value, or an option the algorithm does not read
        (evolution reads no mode option and no rerank stage).
    """

    algorithm: AlgorithmOptions = field(default_factory=SpikeNASOptions)
    macro: MacroOptions = field(default_factory=MacroOptions)
    data: DataOptions = field(default_factory=DataOptions)
    budget: BudgetOptions = field(default_factory=BudgetOptions)
    score: ScoreConfig | None = None  # None: default_score(algorithm)
    mode: ModeOptions = field(default_factory=ModeOptions)
    rerank: RerankConfig | None = None  # opt-in multi-fidelity stage (spikenas.nas.rerank); None: off
    calibrate: CalibrateConfig | None = None  # opt-in calibration (spikenas.nas.calibrate); None: off
    seed: int = 0  # data batches, weight initialisation and random sampling

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, tuple(OPTIONS.values())):
            raise SpikeNASError(
                f"algorithm must be SpikeNASOptions, RandomOptions or EvolutionOptions, got {self.algorithm!r}"
            )
        check_fields(self)
        check_seed(self.seed)
        if self.score is None:
            object.__setattr__(self, "score", default_score(self.algorithm))
        if self.macro.timesteps is None:
            timesteps = default_timesteps(self.algorithm)
            object.__setattr__(self, "macro", dataclasses.replace(self.macro, timesteps=timesteps))
        name = self.algorithm.name
        if name == "evolution":
            flat, defaults = self.to_dict(), _DEFAULTS
            for key in FIELDS:
                if name not in _readers(key) and key != "rerank" and flat[key] != defaults[key]:
                    raise SpikeNASError(f"{_refusal(key, name)} (got {key}={flat[key]!r})")
            if self.algorithm.fitness == "score" and get_score(self.score.name).kernel is None:
                raise SpikeNASError(
                    f"evolution's score fitness needs a spike-kernel score (e.g. sahd), got score {self.score.name!r}"
                )
        if self.rerank is not None and name == "evolution":
            raise SpikeNASError("rerank needs algorithm spikenas or random, got algorithm 'evolution'")
        if self.calibrate is not None and name == "evolution":
            raise SpikeNASError("calibrate needs algorithm spikenas or random, got algorithm 'evolution'")

    @classmethod
    def from_fields(cls, **fields: object) -> SearchRequest:
        """The request the flat keys of :data:`FIELDS` describe (``width=4, budget=20e3, bits=8``...); an unset
        key keeps its part's default. ``score`` may be a ScoreConfig or a dict of its fields: a dict without a
        ``name`` adds its options to :func:`default_score`. ``rerank`` may be a RerankConfig, a dict or None;
        ``calibrate`` (not a key of :data:`FIELDS`) a CalibrateConfig, a dict or None.

        :raises SpikeNASError: an unknown key, a value of the wrong type (named by its key), or a key that the
            algorithm does not read (``population`` with ``algorithm="random"``).
        """
        unknown = sorted(set(fields) - set(FIELDS) - set(EXTRA_FAST_FIELDS) - set(EXTRA_BUDGET_FIELDS)
                         - {CALIBRATE_FIELD})
        if unknown:
            raise SpikeNASError(f"unknown search fields {unknown}; a search request has {sorted(FIELDS)}")
        for key, value in fields.items():
            check_value(key, value, _flat_hint(key))
        if "seed" in fields:
            check_seed(fields["seed"])
        algorithm = fields.get("algorithm", "spikenas")
        if algorithm not in ALGORITHMS:
            raise SpikeNASError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        for key, value in fields.items():
            if algorithm not in _readers(key) and not (value is None and _DEFAULTS.get(key) is None):
                raise SpikeNASError(_refusal(key, algorithm))

        def part(name: str) -> dict:
            keys = [k for k, (p, _) in FIELDS.items() if p == name]
            keys += list(EXTRA_FAST_FIELDS) if name == "fast" else []
            keys += list(EXTRA_BUDGET_FIELDS) if name == "budget" else []
            return {FIELDS.get(k, (name, k))[1]: fields[k] for k in keys if k in fields}

        options = OPTIONS[algorithm](**part(algorithm))
        score = fields.get("score")
        if isinstance(score, dict):
            given = {k: tuple(v) if k == "tie_break" else v for k, v in score.items()}
            score = ScoreConfig(**given) if "name" in given else ScoreConfig(**{**asdict(default_score(options)),
                                                                                  **given})
        rerank = fields.get("rerank")
        if isinstance(rerank, dict):
            rerank = RerankConfig(**{**rerank, "epochs": tuple(rerank.get("epochs", ()))})
        calibrate = fields.get(CALIBRATE_FIELD)
        if isinstance(calibrate, dict):
            calibrate = CalibrateConfig.from_dict(calibrate)
        return cls(
            algorithm=options, macro=MacroOptions(**part("macro")), data=DataOptions(**part("data")),
            budget=BudgetOptions(**part("budget")), score=score,
            mode=ModeOptions(**part("mode"), fast=FastConfig(**part("fast"))), rerank=rerank,
            calibrate=calibrate, seed=fields.get("seed", 0),
        )

    @classmethod
    def from_dict(cls, data: dict) -> SearchRequest:
        """The request that :meth:`to_dict` wrote ``data`` for: as :meth:`from_fields`, where the keys of options
        that the algorithm does not read must hold their defaults (to_dict writes them so)."""
        algorithm = data.get("algorithm", "spikenas")
        return cls.from_fields(**{
            k: v for k, v in data.items()
            if algorithm in _readers(k) or algorithm not in ALGORITHMS or k not in _DEFAULTS or v != _DEFAULTS[k]
        })

    def to_dict(self) -> dict:
        """The flat, JSON-ready form: every key of :data:`FIELDS`, in order (the options of the algorithms not
        chosen at their defaults), then any of :data:`EXTRA_FAST_FIELDS` and :data:`EXTRA_BUDGET_FIELDS` not at
        its default, then ``calibrate`` when it is set."""
        parts = {
            "macro": self.macro, "data": self.data, "budget": self.budget, "mode": self.mode, "fast": self.mode.fast,
            "random": self.algorithm if isinstance(self.algorithm, RandomOptions) else RandomOptions(),
            "evolution": self.algorithm if isinstance(self.algorithm, EvolutionOptions) else EvolutionOptions(),
        }
        whole = {"algorithm": self.algorithm.name, "score": asdict(self.score), "seed": self.seed,
                 "rerank": None if self.rerank is None else asdict(self.rerank)}
        out = {key: whole[part] if part in whole else getattr(parts[part], attr)
               for key, (part, attr) in FIELDS.items()}
        default_fast = FastConfig()
        out.update({k: getattr(self.mode.fast, k) for k in EXTRA_FAST_FIELDS
                    if getattr(self.mode.fast, k) != getattr(default_fast, k)})
        out.update({k: getattr(self.budget, k) for k in EXTRA_BUDGET_FIELDS
                    if getattr(self.budget, k) != getattr(BudgetOptions(), k)})
        if self.calibrate is not None:
            out[CALIBRATE_FIELD] = self.calibrate.to_dict()
        return out

    def with_fields(self, **changes: object) -> SearchRequest:
        """This request with flat keys changed (:meth:`from_dict` of :meth:`to_dict` updated by ``changes``)."""
        return type(self).from_dict({**self.to_dict(), **changes})


def _refusal(key: str, algorithm: str) -> str:
    readers = _readers(key)
    who = f"algorithm {readers[0]!r}" if len(readers) == 1 else "algorithms " + " and ".join(map(repr, readers))
    return f"{key} is an option of {who} only; algorithm {algorithm!r} does not read it"


SearchConfig = SearchRequest  # the request's earlier name; the same class
_DEFAULTS = SearchRequest().to_dict()  # every flat key at its default (spikenas's request)
