"""``python -m spikenas.train``: train a searched network, count its spikes, quantize its weights.

The cells come from ``--genotype`` (NAS-Bench-201 strings, or indices in ``--ops``; one per cell, or
one for all) or from a search's ``results.json`` (``--from-results``), whose cells, cell count and
dataset are kept. The network around the cells and the optimisation come from a training recipe
(``--recipe``, default ``auto``: the dataset's recipe in :mod:`spikenas.train.recipes`; ``snasnet``
keeps the search's network and uses SNASNet's SGD recipe); any flag given here overrides it. Writes
``<output-dir>/results.json`` and a checkpoint after every epoch; ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from spikenas.argparsing import (
    Parser,
    integer,
    main_guard,
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
    random_seed,
    unit_fraction,
)
from spikenas.data import DATASETS, default_input_size, default_stem_stride, load_dataset
from spikenas.deployment import deployment_summary, deployment_table
from spikenas.errors import SpikeNASError
from spikenas.fingerprint import check_cell, check_macro, field, network_digest, network_fingerprint
from spikenas.hardware.target import fit_summary, get_target, target_names
from spikenas.layer_graph import cell_network_graph
from spikenas.memory import network_params
from spikenas.network import MacroConfig
from spikenas.ops import op_set_family
from spikenas.quantization import GRANULARITIES, MAX_BITS, MIN_BITS, quantization_table
from spikenas.resources import check_memory, check_memory_before_data
from spikenas.results import read_results_json, versions, write_json
from spikenas.space import Genotype
from spikenas.train.recipes import AUTO, RECIPES, get_recipe, recipe_name
from spikenas.train.trainer import (
    CHECKPOINT_NAME,
    HEAD_INITS,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    TrainResult,
    evaluate,
    train,
)


@dataclass(frozen=True)
class NetworkSpec:
    """Which network to train and on what data."""

    cells: tuple[Genotype, ...]  # one genotype per cell position
    macro_fields: dict  # MacroConfig fields; channels, classes and a missing input size come from the data
    dataset: str  # see spikenas.data.DATASETS
    data_dir: str | None = None  # where a non-embedded dataset is read from
    source: str = "command line"  # where the cells came from
    recipe: str = "snasnet"  # the training recipe whose macro fields were applied (spikenas.train.recipes)
    op_set: str = "3O"  # the op set the cells' indices refer to (the search's, or --ops)


def read_search_results(path: str | Path) -> dict:
    """The payload of a search's results.json, checked for every field training reads (none defaults).

    Required: ``config`` with ``dataset``, ``data_dir``, ``op_set`` and ``budget`` (``budget_kind`` too when a
    budget is set), every :class:`~spikenas.network.MacroConfig` field in ``macro``, and ``result.cells``, whose
    ``nb201`` strings must agree with their ``ops`` and their ``index`` in the op set.
    :raises SpikeNASError: one line naming the file, the field and, for a disagreement, both values.
    """
    path = Path(path)
    payload = read_results_json(path, what="search results", checkpoint_hint="a search's results.json",
                                json_hint="; expected the results.json of python -m spikenas search")
    if isinstance(payload, dict) and "result" not in payload and "train" in (payload.get("config") or {}):
        raise SpikeNASError(f"{path} is a train command's results.json, not a search's: pass the search's")
    config = field(payload, "config", path, dict)
    for name, kind in (("dataset", str), ("data_dir", (str, type(None))), ("op_set", (str, type(None))),
                       ("budget", (int, float, type(None)))):
        field(payload, f"config.{name}", path, kind)
    if config["budget"] is not None:
        field(payload, "config.budget_kind", path, (str, type(None)))
    check_macro(field(payload, "macro", path, dict), path)
    records = field(payload, "result.cells", path, list)
    if not records:
        raise SpikeNASError(f"search results {path} hold no cells")
    for i, record in enumerate(records):
        check_cell(record, path, f"result.cells.{i}", config["op_set"])
    digest = (payload.get("fingerprint") or {}).get("network", {}).get("digest")
    if digest is not None:  # written by every search since results.json carried fingerprints
        ours = network_digest([r["nb201"] for r in records], payload["macro"])
        if digest != ours:
            raise SpikeNASError(f"search results {path}: fingerprint.network.digest is {digest}, but its result.cells "
                                f"and macro give {ours}: the file was changed after the search wrote it")
    return payload


def network_spec(
    *,
    genotypes: list[str] | None,
    from_results: str | Path | None,
    op_set: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    overrides: dict | None = None,
    recipe: str = "snasnet",
) -> NetworkSpec:
    """Resolve the cells, macro configuration and dataset of a training request.

    The macro fields are the search's (from ``from_results``), then the recipe's, then ``overrides``. When the
    search had a memory budget, the recipe keeps the searched network's size (only its dropout, and its T unless the
    budget counts on-chip bytes, apply), so the trained network meets the budget the search met. A Speck network
    (op set ``speck``) keeps the search's network whole and takes only the recipe's training settings.
    :param overrides: MacroConfig fields given explicitly (``None`` values are ignored).
    :param recipe: a name in :data:`~spikenas.train.recipes.RECIPES` or ``auto`` (the dataset's).
    """
    if (genotypes is None) == (from_results is None):
        raise SpikeNASError("give exactly one of --genotype and --from-results")
    macro_fields: dict = {}
    source = "command line"
    budget = None
    if from_results is not None:
        payload = read_search_results(from_results)
        search = payload["config"]
        macro_fields = dict(payload["macro"])
        cells = [Genotype.from_nb201(c["nb201"]) for c in payload["result"]["cells"]]
        budget = search["budget"]
        dataset = dataset or search["dataset"]
        data_dir = data_dir if data_dir is not None else search["data_dir"]
        op_set = op_set or search["op_set"]
        source = str(from_results)
    else:
        cells = [Genotype.parse(text, op_set or "3O") for text in genotypes]
    dataset = dataset or "digits"
    if dataset not in DATASETS:
        raise SpikeNASError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    recipe = recipe_name(recipe, dataset)
    recipe_fields = get_recipe(recipe).macro_fields()
    if op_set_family(op_set or "3O") == "speck":
        # A Speck network's size is what its chip holds: a searched one keeps the search's network (the search
        # placed it on the cores), a given one takes the recipe's T only; the training settings apply.
        macro_fields.update(family="speck", vote=1)
        recipe_fields = {} if from_results is not None else {"timesteps": recipe_fields.get("timesteps")}
    elif budget is not None:
        # The search guaranteed its budget for its own network: the recipe may not widen it. Only the fields that
        # change neither parameters nor neuron counts apply (explicit flags below still override anything).
        kept = {"dropout"} | ({"timesteps"} if search["budget_kind"] != "onchip_bytes" else set())
        recipe_fields = {k: v for k, v in recipe_fields.items() if k in kept}
    macro_fields.update(recipe_fields)
    macro_fields.update({k: v for k, v in (overrides or {}).items() if v is not None})
    num_cells = macro_fields.get("num_cells", len(cells) if len(cells) > 1 else 2)
    macro_fields["num_cells"] = num_cells
    if len(cells) == 1:
        cells = cells * num_cells
    if len(cells) != num_cells:
        raise SpikeNASError(f"got {len(cells)} genotypes for --cells {num_cells}: give 1 or {num_cells}")
    try:  # validate early; the data fills in channels and classes later
        MacroConfig.from_dict(macro_fields)
    except TypeError as err:
        raise SpikeNASError(f"network fields from {source}: {err}") from err
    return NetworkSpec(tuple(cells), macro_fields, dataset, data_dir, source, recipe, op_set or "3O")


def fit_macro(macro_fields: dict, dataset_name: str, in_channels: int, num_classes: int, native_size: int) -> dict:
    """Fill in the dataset-dependent fields (channels, classes, default input size and stem stride) of a macro
    config."""
    fields = dict(macro_fields)
    fields["in_channels"], fields["num_classes"] = in_channels, num_classes
    fields.setdefault("stem_stride", default_stem_stride(dataset_name))
    if fields.get("input_size") is None:
        fields["input_size"] = default_input_size(dataset_name, native_size)
    return fields


def run_training(
    spec: NetworkSpec,
    config: TrainConfig,
    *,
    quantize_bits: tuple[int, ...] = (8, 4),
    granularity: str = "per_channel",
    output_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str = "cpu",
    target: str = "generic",
) -> tuple[TrainResult, dict]:
    """Load the data, train, count spikes, quantize; return the result and a JSON-ready payload.

    Every argument is checked before the data is read or a checkpoint is written; with a hardware ``target``
    other than ``generic`` the network must fit it (checked once the data fixes its shapes, before training), and
    its fit (per core or unit) is in the payload.
    """
    hardware = get_target(target)
    for bits in quantize_bits:
        if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
            raise SpikeNASError(f"--quantize-bits must be integers in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    if granularity not in GRANULARITIES:
        raise SpikeNASError(f"--quant-granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    t0 = time.perf_counter()
    check_memory_before_data(spec.macro_fields, batch_size=config.batch_size, training=True, device=device)
    train_set = load_dataset(spec.dataset, data_dir=spec.data_dir, split="train")
    test_set = load_dataset(spec.dataset, data_dir=spec.data_dir, split="test")
    macro = MacroConfig.from_dict(
        fit_macro(spec.macro_fields, spec.dataset, train_set.in_channels, train_set.num_classes, train_set.size)
    )
    check_memory(macro, batch_size=config.batch_size, training=True, device=device)
    check_memory(macro, batch_size=config.eval_batch_size, device=device)  # evaluation batches
    placed = None
    if target != "generic":
        placed = hardware.fit(cell_network_graph(list(spec.cells), macro), timesteps=macro.timesteps)
        if not placed.fits:
            raise SpikeNASError(f"the network does not fit target {target}: {placed.reason}")
    t_data = time.perf_counter() - t0
    result = train(
        list(spec.cells), macro, train_set, test_set, config=config, checkpoint_dir=output_dir,
        resume=resume, progress=progress, device=device,
    )
    t1 = time.perf_counter()
    n_test = len(test_set) if config.max_test_samples is None else min(config.max_test_samples, len(test_set))
    x_test, y_test = test_set.tensors(list(range(n_test)), input_size=macro.input_size)
    table = quantization_table(
        result.model,
        lambda m: evaluate(m, x_test, y_test, batch_size=config.eval_batch_size)[0],
        bits=tuple(quantize_bits),
        granularity=granularity,
    )
    params = network_params(list(spec.cells), macro)
    deployment = deployment_table(  # on-chip memory and energy at 32 bits and at each quantization width
        list(spec.cells), macro, [32, *quantize_bits], model=result.model,
        images=x_test[: min(len(x_test), config.eval_batch_size)],
    )
    payload = {
        "config": {
            "train": config.to_dict(),
            "macro": macro.to_dict(),
            "cells": [g.to_nb201() for g in spec.cells],
            "op_set": spec.op_set,
            "dataset": spec.dataset,
            "data_dir": spec.data_dir,
            "source": spec.source,
            "recipe": spec.recipe,
            "quantize_bits": list(quantize_bits),
            "granularity": granularity,
            "threads": torch.get_num_threads(),
            "device": device,
            "target": target,
        },
        "seed": config.seed,
        "versions": versions(),
        "params": params,
        "fingerprint": {  # what export checks the checkpoint beside this file against
            "network": network_fingerprint(
                spec.cells, macro.to_dict(), op_set=spec.op_set,
                quantization={"bits": list(quantize_bits), "granularity": granularity},
            ),
            "data": result.fingerprint["data"],
            "epochs_finished": result.epochs_finished,
            "epochs_asked": result.epochs_asked,
            "checkpoint": None if output_dir is None else CHECKPOINT_NAME,
        },
        **result.to_dict(),
        "quantization": table,
        "deployment": deployment,
        **({} if placed is None else {"target": placed.to_dict()}),
        "timings": {
            "data_s": t_data,
            "train_s": result.train_seconds,
            "quantize_s": time.perf_counter() - t1,
            "total_s": time.perf_counter() - t0,
        },
    }
    return result, payload


def build_parser() -> Parser:
    p = Parser(prog="python -m spikenas.train", description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--genotype", nargs="+", metavar="GENOTYPE", help="NAS-Bench-201 strings or indices in --ops")
    src.add_argument("--from-results", metavar="JSON", help="results.json written by python -m spikenas search")
    p.add_argument("--ops", help="op set for genotype indices (default 3O)")
    p.add_argument("--recipe", choices=(AUTO, *RECIPES), default=AUTO,
                   help="training recipe (spikenas.train.recipes); auto: the dataset's, else snasnet. "
                        "The flags below override it")
    p.add_argument("--dataset", choices=DATASETS, help="default: the search's dataset, else digits")
    p.add_argument("--data-dir", help="directory of a local dataset")
    p.add_argument("--cells", type=int, choices=(1, 2, 3), help="cells in the network")
    p.add_argument("--target", choices=target_names(), default="generic",
                   help="hardware target the network must fit (checked before training; default generic)")
    p.add_argument("--width", type=positive_int, help="channels of the first cell")
    p.add_argument("--hidden", type=positive_int, help="units of the head's first Linear")
    p.add_argument("--timesteps", type=positive_int, help="T")
    p.add_argument("--input-size", type=positive_int, help="resize images to this size")
    p.add_argument("--stem-stride", type=int, choices=(1, 2), help="stride of the stem convolution")
    p.add_argument("--dropout", type=unit_fraction, help="dropout before the head's first Linear")
    p.add_argument("--epochs", type=int, help="passes over the training set")
    p.add_argument("--batch-size", type=positive_int, help="samples per optimizer step")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="sgd (momentum) or adamw")
    p.add_argument("--lr", type=positive_float, help="peak learning rate")
    p.add_argument("--momentum", type=unit_fraction, help="SGD momentum")
    p.add_argument("--weight-decay", type=non_negative_float, help="SGD's L2 penalty or AdamW's decoupled decay")
    p.add_argument("--eta-min", type=non_negative_float, help="final cosine learning rate")
    p.add_argument("--schedule", choices=SCHEDULES, help="epoch: cosine per epoch; step: warm-up, cosine per batch")
    p.add_argument("--warmup-steps", type=non_negative_int, help="batches of linear warm-up (schedule step)")
    p.add_argument("--label-smoothing", type=unit_fraction, help="cross-entropy label smoothing")
    p.add_argument("--crop-padding", type=non_negative_int, help="random-crop padding, 0: none")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, help="random horizontal flip")
    p.add_argument("--head-init", choices=HEAD_INITS, help="see spikenas.train.trainer.head_init")
    p.add_argument("--max-train-samples", type=positive_int, help="train on a seeded subset of this many images")
    p.add_argument("--max-test-samples", type=positive_int, help="evaluate on the first this many test images")
    p.add_argument("--quantize-bits", type=integer(MIN_BITS, MAX_BITS), nargs="*", default=[8, 4],
                   help="bit widths to report (default 8 4)")
    p.add_argument("--quant-granularity", choices=GRANULARITIES, default="per_channel", help="default per_channel")
    p.add_argument("--seed", type=random_seed, help="seed of weights, subset, order, augmentation (default 0)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="where the network trains: cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument(
        "--output-dir", type=output_dir, default="train_out",
        help="results.json and checkpoint.pt go here (checked writable before training)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output-dir")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


TRAIN_FLAGS = (
    "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "eta_min", "schedule", "warmup_steps",
    "label_smoothing", "crop_padding", "flip", "head_init", "max_train_samples", "max_test_samples", "seed",
)


def config_from_args(args, recipe: str) -> TrainConfig:
    """The recipe's TrainConfig with every training flag that was given on the command line."""
    given = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    base = get_recipe(recipe).train
    if "lr" in given and "eta_min" not in given:
        given["eta_min"] = min(base.eta_min, given["lr"])
    if given.get("schedule") == "epoch" and "warmup_steps" not in given:
        given["warmup_steps"] = 0
    return base.replace(**given)


def check_device(name: str) -> None:
    """Raise :class:`SpikeNASError` naming ``--device`` when torch cannot parse or reach it."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise SpikeNASError(f"--device {name!r} is not a torch device: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpikeNASError(f"--device {name!r}: torch sees no CUDA device here")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        if args.threads is not None:
            if args.threads < 1:
                raise SpikeNASError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        check_device(args.device)
        overrides = {
            "num_cells": args.cells, "width": args.width, "hidden": args.hidden, "timesteps": args.timesteps,
            "input_size": args.input_size, "stem_stride": args.stem_stride, "dropout": args.dropout,
        }
        spec = network_spec(
            genotypes=args.genotype, from_results=args.from_results, op_set=args.ops, dataset=args.dataset,
            data_dir=args.data_dir, overrides=overrides, recipe=args.recipe,
        )
        config = config_from_args(args, spec.recipe)
        output = Path(args.output_dir)
        _, payload = run_training(
            spec, config, quantize_bits=tuple(args.quantize_bits), granularity=args.quant_granularity,
            output_dir=output, resume=args.resume, progress=not args.quiet, device=args.device, target=args.target,
        )
        write_json(output / "results.json", payload)
        print_report(payload)
        print(f"wrote {output / 'results.json'}")
        return 0

    return main_guard(run)


def print_report(payload: dict) -> None:
    config = payload["config"]
    for i, cell in enumerate(config["cells"], start=1):
        print(f"cell {i}: {cell}")
    macro, train_cfg = config["macro"], config["train"]
    print(
        f"recipe {config['recipe']}: width {macro['width']}, hidden {macro['hidden']}, T {macro['timesteps']}, "
        f"input {macro['input_size']}, stem stride {macro['stem_stride']}; {train_cfg['optimizer']} lr "
        f"{train_cfg['lr']}, batch {train_cfg['batch_size']}, {train_cfg['epochs']} epochs"
    )
    for row in payload["history"]:
        print(
            f"epoch {row['epoch']}: lr {row['lr']:.4f}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_accuracy']:.4f}  test acc {row['test_accuracy']:.4f}  ({row['seconds']:.1f} s)"
        )
    spikes = payload["spikes"]
    if spikes:
        print(f"spikes per sample {spikes['total']:.1f} over {len(spikes['per_layer'])} spiking layers")
    print(f"parameters {payload['params']:,}")
    for row in payload["quantization"]:
        print(f"{row['bits']:>2} bits ({row['granularity']}): {row['bytes']:,} bytes  accuracy {row['accuracy']:.4f}")
    for figures in payload.get("deployment", []):
        print(deployment_summary(figures))
    if "target" in payload:
        print(fit_summary(payload["target"]))


if __name__ == "__main__":
    sys.exit(main())
