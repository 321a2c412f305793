"""``python -m spikenas search``: memory-aware SNN architecture search from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

from spikenas.argparsing import (
    SIZE_LIMIT,
    Parser,
    bit_width,
    integer,
    kernel_backend,
    kernel_batch,
    main_guard,
    non_negative_float,
    non_negative_int,
    open_fraction,
    output_file,
    positive_float,
    positive_int,
    quantity,
    random_seed,
    share,
)
from spikenas.data import DATASETS
from spikenas.deployment import BUFFER_SCOPES, deployment_summary
from spikenas.errors import SpikeNASError
from spikenas.executor import add_executor_arguments, executor_from_args
from spikenas.hardware.target import fit_summary, target_names
from spikenas.memory import BUDGET_KINDS
from spikenas.nas import ALGORITHMS, PRESETS, SearchRequest, evaluate_architecture, run_search
from spikenas.nas.calibrate import DEFAULT_EPOCHS as CALIBRATE_EPOCHS
from spikenas.nas.calibrate import DEFAULT_VAL_SAMPLES as CALIBRATE_VAL
from spikenas.nas.calibrate import MIN_CANDIDATES, CalibrateConfig
from spikenas.nas.calibrate import summary as calibrate_summary
from spikenas.nas.evaluators import MODES
from spikenas.nas.evolution_run import print_summary
from spikenas.nas.rerank import AUTO_MARGIN, DEFAULT_EPOCHS, DEFAULT_ETA, DEFAULT_WINDOW, RerankConfig, parse_epochs
from spikenas.network import WEIGHT_SEEDINGS
from spikenas.ops import list_op_sets
from spikenas.output_lock import OutputLock
from spikenas.results import write_json
from spikenas.scoring import get_score
from spikenas.space import Genotype
from spikenas.train.recipes import AUTO, RECIPES


def build_parser() -> Parser:
    p = Parser(prog="python -m spikenas search", description=__doc__)
    p.add_argument("--fast", action="store_true", help="preset: narrow proxy on digits, ~1 minute on 2 cores")
    p.add_argument("--algorithm", choices=ALGORITHMS,
                   help="spikenas (Alg. 1, default), random (SNASNet) or evolution (AutoSNN); an option another "
                   "algorithm reads is refused")
    p.add_argument("--dataset", choices=DATASETS, help="default: digits (embedded)")
    p.add_argument("--data-dir", help="directory of a local dataset (not needed for digits)")
    p.add_argument("--cells", type=int, choices=(1, 2, 3), help="cells in the network (default 2)")
    p.add_argument("--ops", help=f"op set: {', '.join(list_op_sets())} (default 3O)")
    p.add_argument("--budget", type=quantity, help="memory budget: parameters, or bytes with --bits (1.2M ok)")
    p.add_argument("--bits", type=bit_width, help="bits per parameter: makes --budget a byte budget")
    p.add_argument(
        "--budget-kind", choices=BUDGET_KINDS,
        help="what --budget counts: params, weight_bytes (weights at --bits) or onchip_bytes (weights at --bits + "
        "neuron state at --state-bits + peak buffer); default params, weight_bytes with --bits",
    )
    p.add_argument("--state-bits", type=bit_width,
                   help="bits per membrane potential / PLIF time constant (default --bits)")
    p.add_argument("--activation-bits", type=bit_width,
                   help="bits per non-spike activation in buffers (default --bits)")
    p.add_argument("--buffer-scope", choices=BUFFER_SCOPES, help="peak buffer of one timestep (default) or all T")
    p.add_argument("--target", choices=target_names(),
                   help="hardware target whose limits candidates must meet (default generic: the budget only); "
                        "speck needs --ops speck")
    p.add_argument("--samples", type=positive_int, help="random search: cells to sample (default 5000)")
    p.add_argument("--timesteps", type=positive_int, help="T (default 5; 8 with --space autosnn)")
    p.add_argument("--width", type=positive_int, help="channels of the first cell (default 16)")
    p.add_argument("--hidden", type=positive_int, help="units of the head's first Linear (default 256)")
    p.add_argument("--input-size", type=positive_int, help="resize images to this size")
    p.add_argument("--batch-size", type=kernel_batch, help="samples per scoring batch (default 64)")
    p.add_argument("--num-batches", type=positive_int, help="scoring batches averaged (default 1)")
    p.add_argument("--score", help="registered score (spikenas.list_scores(); default conv_depth, sahd for evolution's "
                   "score fitness)")
    p.add_argument("--alpha", type=positive_float,
                   help="spike-kernel scores: weight on the normalised Hamming distance (0.5)")
    p.add_argument("--reduce", choices=("mean", "sum"), help="spike-kernel scores: combine layer calls by mean or sum")
    p.add_argument("--bn-mode", choices=("train", "eval"), help="scores that run the network: BatchNorm statistics")
    p.add_argument(
        "--tie-break", help="comma-separated scores ordering candidates tied at the top (default threshold_rise; "
        "'none': no tie-break); the final rule then takes the fewest parameters, then a draw seeded by --seed",
    )
    p.add_argument("--backend", type=kernel_backend, choices=("auto", "torch", "cpp", "triton"), help="kernel backend")
    p.add_argument("--seed", type=random_seed, help="seed of data, weights and sampling (default 0)")
    p.add_argument("--mode", choices=MODES, help="exact: a fresh network per candidate (default); fast: shared work")
    p.add_argument("--weight-seeding", choices=WEIGHT_SEEDINGS, help="network (exact default) or per_edge (fast)")
    p.add_argument("--proxy-batch", type=kernel_batch,
                   help="fast: rank each pass on this many samples, re-score the best")
    p.add_argument("--rescore-fraction", type=share, help="fast with --proxy-batch: a round of re-scoring (0.05)")
    p.add_argument(
        "--race-top", type=non_negative_int,
        help="fast with --proxy-batch: re-score rounds until one leaves the best K unchanged "
        "(default 10; 0: one round)",
    )
    p.add_argument(
        "--evaluate", nargs="+", metavar="GENOTYPE",
        help="score these cells instead of searching (NAS-Bench-201 strings or indices in --ops; one per cell, or one)",
    )
    p.add_argument("--space", choices=("cell", "autosnn"), help="evolution: search space (default cell)")
    p.add_argument("--fitness", choices=("autosnn", "score"), help="evolution: super-network accuracy or score")
    p.add_argument("--population", type=positive_int, help="evolution: architectures per iteration (default 20)")
    p.add_argument("--iterations", type=positive_int, help="evolution: iterations (default 20)")
    p.add_argument("--supernet-epochs", type=positive_int,
                   help="evolution --fitness autosnn: training epochs (default 10)")
    p.add_argument("--spike-target", type=quantity, help="evolution: spike target of the fitness (default 110k)")
    p.add_argument("--train-images", type=positive_int, help="evolution --fitness autosnn: training images used")
    add_rerank_arguments(p)
    add_calibrate_arguments(p)
    p.add_argument(
        "--output", type=output_file, default="results.json",
        help="result file (default results.json); checked writable before the search starts",
    )
    p.add_argument("--resume", action="store_true", help="continue from the journal beside --output")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_executor_arguments(p)
    return p


def _margin(text: str) -> float | str:
    """``--rerank-margin``: points of validation accuracy (a finite number >= 0), ``auto`` or ``off``."""
    word = text.strip().lower()
    return word if word in (AUTO_MARGIN, "off") else non_negative_float(text)


def add_rerank_arguments(p: Parser) -> None:
    """Flags of the multi-fidelity stage (spikenas.nas.rerank); it runs when --rerank-top or --rerank-budget is
    set."""
    default = ",".join(map(str, DEFAULT_EPOCHS))
    p.add_argument("--rerank-top", type=positive_int,
                   help="briefly train the best K of the ranking; choose by validation")
    p.add_argument("--rerank-budget", type=positive_int, metavar="EPOCHS",
                   help="successive halving spending at most this many training epochs in total")
    p.add_argument("--rerank-epochs", metavar="E[,E...]",
                   help=f"epoch each rung trains to; one value: a plain top-K rerank (default {default})")
    p.add_argument("--rerank-eta", type=integer(2, SIZE_LIMIT),
                   help=f"each later rung keeps 1/eta of its candidates (default {DEFAULT_ETA})")
    p.add_argument("--rerank-window", type=positive_int,
                   help=f"rank a rung by mean validation accuracy of its last N epochs (default {DEFAULT_WINDOW})")
    p.add_argument("--rerank-margin", type=_margin, metavar="POINTS",
                   help="guard: replace the training-free pick only with a candidate whose validation accuracy beats "
                   "it by more than POINTS after the last epoch (default auto: the median seed difference --calibrate "
                   "measures on your data when it runs, else the seed noise of the accuracy after that epoch on "
                   "SpikeNAS-Bench, spikenas/nas/seed_noise.py; off: no guard)")
    p.add_argument("--rerank-val-fraction", type=open_fraction,
                   help="part of the training split held out (default 0.2)")
    p.add_argument("--rerank-train-samples", type=positive_int, help="seeded subset of the training part (default all)")
    p.add_argument("--rerank-recipe", choices=(AUTO, *RECIPES),
                   help="training recipe of the short runs (spikenas.train.recipes; default auto: the dataset's)")


def add_calibrate_arguments(p: Parser) -> None:
    """Flags of the calibration (spikenas.nas.calibrate); it runs when --calibrate is set."""
    p.add_argument("--calibrate", type=integer(MIN_CANDIDATES, SIZE_LIMIT), metavar="N",
                   help="short-train a stratified sample of N searched candidates with 2 seeds and report how well "
                   "the training-free order ranks them (Kendall tau-b, noise floor) and whether to add --rerank-*")
    p.add_argument("--calibrate-epochs", type=positive_int,
                   help=f"epochs of each calibration run (default {CALIBRATE_EPOCHS})")
    p.add_argument("--calibrate-train-samples", type=integer(2, SIZE_LIMIT),
                   help="seeded subset of the training part for calibration (default all)")
    p.add_argument("--calibrate-val-samples", type=positive_int,
                   help=f"validation images each calibration accuracy is measured on (default {CALIBRATE_VAL})")


def calibrate_from_args(args) -> CalibrateConfig | None:
    """The CalibrateConfig the --calibrate* flags ask for; None when calibration is off.

    :raises SpikeNASError: another --calibrate-* flag without --calibrate.
    """
    if args.calibrate is None:
        for flag, value in (("--calibrate-epochs", args.calibrate_epochs),
                            ("--calibrate-train-samples", args.calibrate_train_samples),
                            ("--calibrate-val-samples", args.calibrate_val_samples)):
            if value is not None:
                raise SpikeNASError(f"{flag} {value} needs --calibrate N")
        return None
    values = {"epochs": args.calibrate_epochs, "train_samples": args.calibrate_train_samples,
              "val_samples": args.calibrate_val_samples}
    return CalibrateConfig(n=args.calibrate, **{k: v for k, v in values.items() if v is not None})


def rerank_from_args(args) -> RerankConfig | None:
    """The RerankConfig the --rerank-* flags ask for; None when the stage is off."""
    values = {
        "top": args.rerank_top, "budget": args.rerank_budget, "eta": args.rerank_eta, "window": args.rerank_window,
        "val_fraction": args.rerank_val_fraction, "train_samples": args.rerank_train_samples,
        "recipe": args.rerank_recipe,
        "epochs": None if args.rerank_epochs is None else parse_epochs(args.rerank_epochs),
    }
    values = {k: v for k, v in values.items() if v is not None}
    if args.rerank_margin is not None:
        if not values:
            raise SpikeNASError(f"--rerank-margin {args.rerank_margin} needs --rerank-top or --rerank-budget")
        values["margin"] = None if args.rerank_margin == "off" else args.rerank_margin
    return RerankConfig(**values) if values else None


def request_from_args(args) -> SearchRequest:
    """The search request the flags ask for: the flags given, on top of ``--fast``'s preset
    (:data:`spikenas.nas.PRESETS`); everything else takes the library's defaults
    (:meth:`~spikenas.nas.request.SearchRequest.from_fields`), as ``spikenas.search(...)`` does."""
    values = dict(PRESETS["fast"]) if args.fast else {}
    mapping = {
        "algorithm": "algorithm", "dataset": "dataset", "data_dir": "data_dir", "cells": "num_cells",
        "ops": "op_set", "budget": "budget", "bits": "bits", "samples": "samples", "timesteps": "timesteps",
        "budget_kind": "budget_kind", "state_bits": "state_bits", "activation_bits": "activation_bits",
        "buffer_scope": "buffer_scope", "target": "target",
        "width": "width", "hidden": "hidden", "input_size": "input_size", "batch_size": "batch_size",
        "num_batches": "num_batches", "seed": "seed",
        "mode": "mode", "weight_seeding": "weight_seeding", "proxy_batch": "proxy_batch",
        "rescore_fraction": "rescore_fraction", "race_top": "race_top",
        "space": "space", "fitness": "fitness", "population": "population", "iterations": "iterations",
        "supernet_epochs": "supernet_epochs", "spike_target": "spike_target", "train_images": "train_images",
    }
    for arg, key in mapping.items():
        if getattr(args, arg) is not None:
            values[key] = getattr(args, arg)
    options = (("alpha", args.alpha), ("reduce", args.reduce), ("bn_mode", args.bn_mode), ("backend", args.backend))
    score = {k: v for k, v in options if v is not None}  # without a name: on top of the algorithm's default score
    if args.score is not None:
        score["name"] = get_score(args.score).name
    if args.tie_break is not None:
        names = [] if args.tie_break.strip() == "none" else [n.strip() for n in args.tie_break.split(",") if n.strip()]
        score["tie_break"] = tuple(get_score(n).name for n in names)
    if score:
        values["score"] = score
    rerank = rerank_from_args(args)
    if rerank is not None:
        values["rerank"] = rerank
    calibrate = calibrate_from_args(args)
    if calibrate is not None:
        values["calibrate"] = calibrate
    return SearchRequest.from_fields(**values)


def print_network(payload: dict, request: SearchRequest) -> None:
    res = payload["result"]
    op_set = request.macro.op_set
    for cell in res["cells"]:
        index = f"  (index {cell['index']} in {op_set})" if "index" in cell else ""
        print(f"cell {cell['position']}: {cell['nb201']}{index}")
    budget = ""
    if res["budget"]:
        budget = f"  budget {res['budget']}: {'met' if res['meets_budget'] else 'NOT met'}"
    print(f"parameters {res['params']:,}  bytes {res['bytes']:,} at {res['bits']} bits{budget}")
    if "deployment" in res:
        print(deployment_summary(res["deployment"]))
    if "target" in res:
        print(fit_summary(res["target"]))
    name, backend = request.score.name, payload["backend"]
    print(f"score {res['score']:.4f} ({res['status']}, {name}, backend {backend})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        request = request_from_args(args)
        output = Path(args.output)
        with OutputLock(output):  # one run at a time on this output, its journal, state, rerank and calibrate dirs
            return search_or_evaluate(request, output)

    def search_or_evaluate(request: SearchRequest, output: Path) -> int:
        if args.evaluate:
            if request.calibrate is not None:
                raise SpikeNASError("--calibrate calibrates a search's ordering; --evaluate scores one network")
            cells = [Genotype.parse(text, request.macro.op_set) for text in args.evaluate]
            _, payload = evaluate_architecture(request, cells)
            write_json(output, payload)
            print_network(payload, request)
            print(f"score time {payload['timings']['score_s']:.2f} s; wrote {output}")
            return 0
        journal = output.with_name(output.stem + ".journal.jsonl")
        with executor_from_args(args) as executor:
            _, payload = run_search(
                request, journal=journal, resume=args.resume, progress=not args.quiet, executor=executor,
                rerank_dir=output.with_name(output.stem + ".rerank"),
                calibrate_dir=output.with_name(output.stem + ".calibrate"),
            )
        write_json(output, payload)
        if request.algorithm.name == "evolution":
            print_summary(payload)
            print(f"wrote {output}")
            return 0
        print_network(payload, request)
        c = payload["counters"]
        pruned_by = f" or target {request.budget.target}" if request.budget.hardware() is not None else ""
        print(
            f"candidates: {c['scored']} scored, {c['pruned']} pruned by memory{pruned_by}, {c['disconnected']} "
            f"disconnected, {c['memo_hits']} repeats, {c['resumed']} resumed, {c['failed']} failed"
        )
        worth = payload["selection"].get("worth")
        if worth is not None and "rerank" not in payload:
            print(worth["line"])
        if "rerank" in payload:
            rr = payload["rerank"]
            print(f"rerank {rr['schedule']['text']}: {rr['epochs_spent']} epochs, chose rank {rr['chosen_rank']} by "
                  f"validation accuracy ({rr['rerank_s']:.1f} s)")
            guard = rr["guard"]
            if guard["margin"] is not None:
                kept = "; it kept the training-free pick" if guard["kept_training_free"] else ""
                print(f"guard margin {guard['margin']:.2f} points ({guard['source']}){kept}")
        if "calibration" in payload:
            for line in calibrate_summary(payload["calibration"]):
                print(line)
        print(f"search time {payload['timings']['search_s']:.1f} s; wrote {output}")
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
