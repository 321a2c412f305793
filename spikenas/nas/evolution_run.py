"""A whole evolutionary search: its part of a search request (:class:`EvolutionOptions`), the space (SpikeNAS's
cells or AutoSNN's blocks), the fitness source (training-free score, or AutoSNN's super-network trained first) and
:func:`~spikenas.nas.evolution.evolution_search`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from spikenas.autosnn.deployment import deployment_report as autosnn_deployment_report
from spikenas.autosnn.fitness import ScoreFitness, SupernetFitness
from spikenas.autosnn.network import AutoSNNConfig
from spikenas.autosnn.space import AutoSNNSpace
from spikenas.autosnn.supernet import SupernetConfig, prepare_supernet, train_supernet
from spikenas.data import default_input_size, load_dataset
from spikenas.deployment import deployment_report, deployment_summary
from spikenas.errors import SpikeNASError
from spikenas.nas.evolution import EvolutionResult, describe_record, evolution_search
from spikenas.nas.macro import MacroOptions, macro_for
from spikenas.nas.space_api import CellSpace, SearchSpace
from spikenas.resources import check_autosnn_memory, check_memory, check_memory_before_data
from spikenas.results import versions
from spikenas.scoring import ScoreConfig
from spikenas.typecheck import check_fields

if TYPE_CHECKING:
    from spikenas.nas.request import BudgetOptions, DataOptions


SPACES = ("cell", "autosnn")
FITNESS_SOURCES = ("autosnn", "score")


@dataclass(frozen=True, kw_only=True)
class EvolutionOptions:
    """The options of algorithm ``evolution`` (AutoSNN's evolutionary search) in a search request."""

    name: ClassVar[str] = "evolution"
    space: str = "cell"  # cell (SpikeNAS's cell space) or autosnn (AutoSNN's block space)
    fitness: str = "score"  # score (training-free) or autosnn (super-network accuracy)
    population: int = 20  # architectures per iteration (AutoSNN: 20)
    iterations: int = 20  # populations evaluated, the first random (AutoSNN: 20)
    supernet_epochs: int = 10  # fitness autosnn: super-network training epochs
    spike_target: float = 110_000.0  # spikes in the fitness's spike term (AutoSNN: 110,000)
    train_images: int | None = None  # fitness autosnn: training images used (None: all)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.space not in SPACES:
            raise SpikeNASError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.fitness not in FITNESS_SOURCES:
            raise SpikeNASError(f"fitness must be one of {FITNESS_SOURCES}, got {self.fitness!r}")
        if self.fitness == "autosnn" and self.space != "autosnn":
            raise SpikeNASError(
                "fitness autosnn needs --space autosnn (the super-network is AutoSNN's); use --fitness score"
            )
        for name in ("population", "iterations", "supernet_epochs", "train_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SpikeNASError(f"{name} must be an integer >= 1, got {value!r}")
        if self.spike_target <= 0:
            raise SpikeNASError(f"spike_target must be > 0, got {self.spike_target!r}")


def run_evolution(
    options: EvolutionOptions,
    *,
    macro: MacroOptions,
    data: DataOptions,
    budget: BudgetOptions,
    score: ScoreConfig,
    seed: int,
    described: dict,
    state: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[EvolutionResult, dict]:
    """Run an evolutionary search: build the space, the fitness source (training the super-network first for
    ``fitness="autosnn"``, checkpointed beside ``state``) and evolve.

    Mutations, crossovers and top-k are each half the population (AutoSNN: 20 -> 10, 10, 10).
    :param macro: the networks (AutoSNN's space reads its width as base channels, its T and input size).
    :param data: the dataset and the scoring batches (score fitness).
    :param score: the training-free score of ``fitness="score"``.
    :param seed: seed of data, weights, super-network training and the evolution's draws.
    :param described: the whole request's JSON-ready form (:meth:`spikenas.nas.request.SearchRequest.to_dict`):
        the payload's ``config`` and, with the network, what the state file is checked against on resume.
    :returns: the result and a JSON-ready payload (config, seed, versions, timings, best, Pareto front,
        per-iteration history, counters).
    """
    t0 = time.perf_counter()
    if options.space == "cell":
        check_memory_before_data(macro.sizes(), batch_size=data.batch_size, num_batches=data.num_batches)
    dataset = load_dataset(data.dataset, data_dir=data.data_dir, split="train")
    size = macro.input_size or default_input_size(data.dataset, dataset.size)
    if options.space == "cell":
        net_config = macro_for(macro, data.dataset, in_channels=dataset.in_channels, num_classes=dataset.num_classes,
                               native_size=dataset.size)
        check_memory(net_config, batch_size=data.batch_size, num_batches=data.num_batches)
        space: SearchSpace = CellSpace(net_config, op_set=macro.op_set)
    else:
        net_config = AutoSNNConfig(base_channels=macro.width, timesteps=macro.timesteps,
                                   in_channels=dataset.in_channels, input_size=size, num_classes=dataset.num_classes)
        check_autosnn_memory(net_config, batch_size=data.batch_size, num_batches=data.num_batches)
        space = AutoSNNSpace(net_config)
    limit = budget.build()
    infeasible = space.infeasible(limit)
    if infeasible is not None:  # before the super-network trains or any fitness is computed
        raise SpikeNASError(infeasible)
    payload: dict = {
        "config": described, "space": space.name, "network": net_config.to_dict(), "seed": seed,
        "versions": versions(), "timings": {},
    }
    fingerprint = {"config": described, "network": net_config.to_dict()}
    state_path = Path(state) if state else None
    if options.fitness == "score":
        batches = dataset.batches(data.batch_size, data.num_batches, seed=seed, input_size=size)
        payload["timings"]["data_s"] = time.perf_counter() - t0
        evaluate = ScoreFitness(space, batches, score_config=score, seed=seed, target=options.spike_target)
        payload["fitness"] = {"source": "score", "target": options.spike_target, "lambda": evaluate.lam,
                              "scale": evaluate.scale, "form": "score + scale * lambda * log(max(spikes, 1) / target)"}
    else:
        setup = prepare_supernet(dataset, net_config, SupernetConfig(epochs=options.supernet_epochs, seed=seed),
                                 train_images=options.train_images, seed=seed)
        payload["timings"]["data_s"] = time.perf_counter() - t0
        checkpoint = None if state_path is None else state_path.with_name(state_path.stem + ".supernet.pt")
        t1 = time.perf_counter()
        train_log = train_supernet(setup.supernet, setup.train_images, setup.train_labels,
                                   config=setup.train_config, checkpoint=checkpoint, resume=resume, progress=progress)
        payload["timings"]["supernet_s"] = time.perf_counter() - t1
        payload["supernet"] = {"train": setup.train_config.to_dict(), "log": train_log.to_dict(),
                               "train_images": len(setup.train_labels), "val_images": len(setup.val_labels),
                               "checkpoint": str(checkpoint) if checkpoint else None}
        calibration = setup.calibration
        evaluate = SupernetFitness(setup.supernet, setup.val_images, setup.val_labels, target=options.spike_target,
                                   calibration=calibration)
        payload["fitness"] = {"source": "autosnn", "target": options.spike_target, "lambda": evaluate.lam,
                              "form": "accuracy * (max(spikes, 1) / target) ** lambda",
                              "calibration_images": len(calibration)}
    half = max(options.population // 2, 1)
    # The final choice orders the records tied at the top fitness by the score's tie-breaks (training-free only).
    ties = {}
    if isinstance(evaluate, ScoreFitness):
        ties = {"tie_break": evaluate.tie_break, "tie_value": evaluate.tie_score}
    result = evolution_search(
        space, evaluate, population=options.population, iterations=options.iterations, top_k=half, mutations=half,
        crossovers=min(half, options.population - half), budget=limit, seed=seed,
        metric=evaluate.metric, state=state_path, resume=resume, fingerprint=fingerprint, progress=progress, **ties,
    )
    bits = budget.bits or 32
    payload["result"] = describe_record(space, result.best, bits=bits, budget=limit)
    payload["result"]["deployment"] = deployment_figures(budget, space, space.decode(result.best.key))
    payload["meets_budget"] = result.meets_budget
    payload["selection"] = result.selection(bits=bits)
    payload["budget"] = None if limit is None else limit.describe()
    payload["pareto"] = {
        "objectives": [f"{evaluate.metric} (max)", "spikes (min)", "params (min)"],
        "front": [describe_record(space, r, bits=bits, budget=limit) for r in result.pareto],
    }
    payload["history"] = result.history
    payload["counters"] = result.counters.to_dict()
    payload["timings"].update(search_s=result.seconds, total_s=time.perf_counter() - t0)
    return result, payload


def deployment_figures(budget: BudgetOptions, space: SearchSpace, arch: object) -> dict:
    """The deployment report of ``arch`` (:mod:`spikenas.deployment`) at the bit widths of ``budget``
    (:meth:`~spikenas.nas.request.BudgetOptions.deployment_target`), synops at the assumed firing rate."""
    if isinstance(space, AutoSNNSpace):
        return autosnn_deployment_report(arch, space.config, budget.deployment_target()).to_dict()
    return deployment_report(list(arch), space.macro, budget.deployment_target()).to_dict()


def print_summary(payload: dict) -> None:
    """Human-readable lines about an evolution payload (the CLI's output)."""
    res, c = payload["result"], payload["counters"]
    arch = res["arch"]
    if arch["space"] == "autosnn":
        print(f"blocks: {', '.join(arch['blocks'])}  (index {arch['index']})")
    else:
        for cell in arch["cells"]:
            print(f"cell {cell['position']}: {cell['nb201']}")
    extra = "".join(f"  {k} {res[k]:.4f}" for k in ("accuracy", "score") if k in res)
    print(f"fitness {res['fitness']:.4f}{extra}  spikes {res['spikes']:,.0f}")
    budget = ""
    if payload["budget"] is not None:
        budget = f"  budget {payload['budget']}: {'met' if res['meets_budget'] else 'NOT met'}"
    print(f"parameters {res['params']:,}  bytes {res['bytes']:,} at {res['bits']} bits{budget}")
    if "deployment" in res:
        print(deployment_summary(res["deployment"]))
    print(f"Pareto front: {len(payload['pareto']['front'])} of {c['evaluated'] + c['resumed']} evaluated")
    print(
        f"candidates: {c['evaluated']} evaluated, {c['resumed']} resumed, {c['pruned']} pruned by memory, "
        f"{c['invalid']} invalid, {c['duplicates']} duplicates redrawn, {c['failed']} failed"
    )
    t = payload["timings"]
    train = f"super-network {t['supernet_s']:.1f} s, " if "supernet_s" in t else ""
    print(f"{train}search {t['search_s']:.1f} s")
