"""Multi-objective architecture search with Optuna, SpikeNAS as the scoring backend.

Each trial picks one op per edge of a NAS-Bench-201 cell (the same cell in both positions); the objectives are
the training-free score of the network (``spikenas.score``, maximised) and its weight memory in bytes at 8 bits
(``spikenas.memory.bytes``, minimised). The study's Pareto front is the set of cells no other trial beats on both.

    pip install -e ".[optuna]"
    python examples/optuna_search.py --trials 24 --score sahd
"""

from __future__ import annotations

import argparse
import json

import optuna

import spikenas
from spikenas.data import load_dataset
from spikenas.ops import get_op_set
from spikenas.space import EDGES


def make_objective(score: str, op_set: str, seed: int):
    """The trial objective: (score, bytes) of the cell the trial suggests, on a fixed digits batch."""
    digits = load_dataset("digits", split="train")
    images = digits.batches(32, 1, seed=seed, input_size=16)[0]  # float [32, 1, 16, 16]
    macro = spikenas.MacroConfig(num_cells=2, width=8, hidden=64, timesteps=4, in_channels=1, input_size=16,
                                 num_classes=10)
    ops = list(get_op_set(op_set))

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        cell = spikenas.Genotype(tuple(trial.suggest_categorical(f"edge_{s}{d}", ops) for s, d in EDGES))
        trial.set_user_attr("cell", cell.to_nb201())
        weight_bytes = spikenas.memory.bytes(cell, macro, bits=8)
        if not cell.is_connected():
            return float("-1e9"), float(weight_bytes)  # input cut off from output: never worth training
        result = spikenas.score(cell, macro=macro, images=images, name=score, seed=seed)
        return (result.score if result.status in ("ok", "indefinite") else float("-1e9")), float(weight_bytes)

    return objective


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--score", default="sahd", help=f"a registered score: {', '.join(spikenas.list_scores())}")
    parser.add_argument("--ops", default="3O", help="op set (3O, 5O, 2O)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write the Pareto front here (JSON)")
    args = parser.parse_args(argv)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=args.seed))
    study.optimize(make_objective(args.score, args.ops, args.seed), n_trials=args.trials)
    front = sorted(
        ({"cell": t.user_attrs["cell"], "score": t.values[0], "bytes": int(t.values[1])} for t in study.best_trials),
        key=lambda row: row["bytes"],
    )
    for row in front:
        print(f"{row['bytes']:>8,} bytes  score {row['score']:9.3f}  {row['cell']}")
    report = {"score": args.score, "ops": args.ops, "trials": args.trials, "seed": args.seed, "pareto": front}
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
