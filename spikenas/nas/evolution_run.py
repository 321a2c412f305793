"""A whole evolutionary search request: the space (SpikeNAS's cells or AutoSNN's blocks), the fitness source
(training-free score, or AutoSNN's super-network trained first) and :func:`~spikenas.nas.evolution.evolution_search`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from spikenas.autosnn.deployment import deployment_report as autosnn_deployment_report
from spikenas.autosnn.fitness import ScoreFitness, SupernetFitness
from spikenas.autosnn.network import AutoSNNConfig
from spikenas.autosnn.space import AutoSNNSpace
from spikenas.autosnn.supernet import SupernetConfig, prepare_supernet, train_supernet
from spikenas.data import default_input_size, load_dataset
from spikenas.deployment import deployment_report, deployment_summary
from spikenas.errors import SpikeNASError
from spikenas.nas.evolution import EvolutionResult, describe_record, evolution_search
from spikenas.nas.macro import macro_for
from spikenas.nas.space_api import CellSpace, SearchSpace
from spikenas.resources import SIZE_FIELDS, check_autosnn_memory, check_memory, check_memory_before_data
from spikenas.results import versions

if TYPE_CHECKING:
    from spikenas.nas import SearchConfig


SPACES = ("cell", "autosnn")
FITNESS_SOURCES = ("autosnn", "score")


def run_evolution(
    config: SearchConfig, *, state: str | Path | None = None, resume: bool = False, progress: bool = True
) -> tuple[EvolutionResult, dict]:
    """Run ``SearchConfig(algorithm="evolution", ...)``: build the space, the fitness source (training the
    super-network first for ``fitness="autosnn"``, checkpointed beside ``state``) and evolve.

    Mutations, crossovers and top-k are each half the population (AutoSNN: 20 -> 10, 10, 10).
    :returns: the result and a JSON-ready payload (config, seed, versions, timings, best, Pareto front,
        per-iteration history, counters).
    """
    if config.space not in SPACES:
        raise SpikeNASError(f"space must be one of {SPACES}, got {config.space!r}")
    if config.fitness not in FITNESS_SOURCES:
        raise SpikeNASError(f"fitness must be one of {FITNESS_SOURCES}, got {config.fitness!r}")
    if config.fitness == "autosnn" and config.space != "autosnn":
        raise SpikeNASError(
            "fitness autosnn needs --space autosnn (the super-network is AutoSNN's); use --fitness score"
        )
    t0 = time.perf_counter()
    if config.space == "cell":
        sizes = {k: getattr(config, k) for k in SIZE_FIELDS}
        check_memory_before_data(sizes, batch_size=config.batch_size, num_batches=config.num_batches)
    dataset = load_dataset(config.dataset, data_dir=config.data_dir, split="train")
    size = config.input_size or default_input_size(config.dataset, dataset.size)
    if config.space == "cell":
        net_config = macro_for(config, in_channels=dataset.in_channels, num_classes=dataset.num_classes,
                               native_size=dataset.size)
        check_memory(net_config, batch_size=config.batch_size, num_batches=config.num_batches)
        space: SearchSpace = CellSpace(net_config, op_set=config.op_set)
    else:
        net_config = AutoSNNConfig(base_channels=config.width, timesteps=config.timesteps,
                                   in_channels=dataset.in_channels, input_size=size, num_classes=dataset.num_classes)
        check_autosnn_memory(net_config, batch_size=config.batch_size, num_batches=config.num_batches)
        space = AutoSNNSpace(net_config)
    infeasible = space.infeasible(config.budget_obj())
    if infeasible is not None:  # before the super-network trains or any fitness is computed
        raise SpikeNASError(infeasible)
    payload: dict = {
        "config": config.to_dict(), "space": space.name, "network": net_config.to_dict(), "seed": config.seed,
        "versions": versions(), "timings": {},
    }
    fingerprint = {"config": config.to_dict(), "network": net_config.to_dict()}
    state_path = Path(state) if state else None
    if config.fitness == "score":
        batches = dataset.batches(config.batch_size, config.num_batches, seed=config.seed, input_size=size)
        payload["timings"]["data_s"] = time.perf_counter() - t0
        evaluate = ScoreFitness(space, batches, score_config=config.score, seed=config.seed,
                                target=config.spike_target)
        payload["fitness"] = {"source": "score", "target": config.spike_target, "lambda": evaluate.lam,
                              "scale": evaluate.scale, "form": "score + scale * lambda * log(max(spikes, 1) / target)"}
    else:
        setup = prepare_supernet(dataset, net_config, SupernetConfig(epochs=config.supernet_epochs, seed=config.seed),
                                 train_images=config.train_images, seed=config.seed)
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
        evaluate = SupernetFitness(setup.supernet, setup.val_images, setup.val_labels, target=config.spike_target,
                                   calibration=calibration)
        payload["fitness"] = {"source": "autosnn", "target": config.spike_target, "lambda": evaluate.lam,
                              "form": "accuracy * (max(spikes, 1) / target) ** lambda",
                              "calibration_images": len(calibration)}
    half = max(config.population // 2, 1)
    result = evolution_search(
        space, evaluate, population=config.population, iterations=config.iterations, top_k=half, mutations=half,
        crossovers=min(half, config.population - half), budget=config.budget_obj(), seed=config.seed,
        metric=evaluate.metric, state=state_path, resume=resume, fingerprint=fingerprint, progress=progress,
    )
    bits, budget = config.bits or 32, config.budget_obj()
    payload["result"] = describe_record(space, result.best, bits=bits, budget=budget)
    payload["result"]["deployment"] = deployment_figures(config, space, space.decode(result.best.key))
    payload["meets_budget"] = result.meets_budget
    payload["budget"] = None if budget is None else budget.describe()
    payload["pareto"] = {
        "objectives": [f"{evaluate.metric} (max)", "spikes (min)", "params (min)"],
        "front": [describe_record(space, r, bits=bits, budget=budget) for r in result.pareto],
    }
    payload["history"] = result.history
    payload["counters"] = result.counters.to_dict()
    payload["timings"].update(search_s=result.seconds, total_s=time.perf_counter() - t0)
    return result, payload


def deployment_figures(config: SearchConfig, space: SearchSpace, arch: object) -> dict:
    """The deployment report of ``arch`` (:mod:`spikenas.deployment`), synops at the assumed firing rate."""
    if isinstance(space, AutoSNNSpace):
        return autosnn_deployment_report(arch, space.config, config.deployment_target()).to_dict()
    return deployment_report(list(arch), space.macro, config.deployment_target()).to_dict()


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
