"""An NNI-style evaluator: a function that takes one sampled architecture and reports its training-free score.

NNI's ``FunctionalEvaluator`` (and any tool built the same way) calls such a function once per sampled
architecture; the architecture here is a dict of choices, one op name per cell edge, as an NNI search space of
``nni.choice`` per edge produces. The function scores it with SpikeNAS and reports the value with
``nni.report_final_result`` when NNI is installed; it returns the value either way, so the same function serves
a plain loop (``main`` below samples a few architectures with a seeded generator).

    python examples/nni_evaluator.py --samples 8
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np

import spikenas
from spikenas.data import load_dataset
from spikenas.ops import get_op_set
from spikenas.space import EDGES

EDGE_KEYS = tuple(f"edge_{s}{d}" for s, d in EDGES)
MACRO = spikenas.MacroConfig(num_cells=2, width=8, hidden=64, timesteps=4, in_channels=1, input_size=16, num_classes=10)
_IMAGES = load_dataset("digits", split="train").batches(32, 1, seed=0, input_size=16)[0]  # float [32, 1, 16, 16]


def search_space(op_set: str = "3O") -> dict[str, list[str]]:
    """The choices of every edge, in the form of an NNI search-space dict (``{"_type": "choice"}`` values)."""
    ops = list(get_op_set(op_set))
    return {key: {"_type": "choice", "_value": ops} for key in EDGE_KEYS}


def evaluate_architecture(arch: dict[str, str], *, score: str = "conv_depth") -> float:
    """Score the cell ``arch`` (edge key -> op name) used in both cell positions; report it to NNI if present."""
    cell = spikenas.Genotype(tuple(arch[key] for key in EDGE_KEYS))
    result = spikenas.score(cell, macro=MACRO, images=_IMAGES, name=score)
    value = result.score if result.status in ("ok", "indefinite") else float("-inf")
    if importlib.util.find_spec("nni") is not None:
        import nni  # optional: reports to the running NNI experiment

        nni.report_final_result(value)
    return value


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--score", default="conv_depth")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    space = search_space()
    rows = []
    for _ in range(args.samples):
        arch = {key: str(rng.choice(spec["_value"])) for key, spec in space.items()}
        value = evaluate_architecture(arch, score=args.score)
        rows.append({"arch": arch, "score": value})
        print(f"score {value:8.3f}  " + " ".join(arch[k] for k in EDGE_KEYS))
    return rows


if __name__ == "__main__":
    main()
