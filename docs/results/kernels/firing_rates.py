"""Firing rate of every LIF call while scoring 8 random 5O/3O cells at initialization.

The kernel benchmark's spikes fire at 0.1; this measures what scored networks emit: 2-cell networks
of width 64 (hidden 256), 64 CIFAR-10 sample images, BatchNorm on batch statistics (the score's
default), one forward pass as the score runs it. Run from the repository root::

    python docs/results/kernels/firing_rates.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch

from spikenas.data import load_dataset
from spikenas.network import MacroConfig, build_network
from spikenas.scoring.recorder import hooked_forward, spiking_neurons
from spikenas.space import Genotype, num_genotypes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    args = parser.parse_args()
    images = load_dataset("cifar10-sample", data_dir=args.data).images[:64]
    x = torch.tensor(images).float() / 255.0
    rng = random.Random(0)
    rates: list[float] = []
    for op_set in ("5O", "3O"):
        for _ in range(4):
            genotype = Genotype.from_index(rng.randrange(num_genotypes(op_set)), op_set)
            net = build_network(genotype, MacroConfig(num_cells=2, width=64, hidden=256), seed=1)
            calls: list[float] = []

            def hook(module, spikes, calls=calls) -> None:
                calls.append(float((spikes != 0).float().mean()))

            hooked_forward(net, x, [m for _, m in spiking_neurons(net)], hook, bn_mode="train")
            rates += calls
            print(op_set, genotype, " ".join(f"{r:.3f}" for r in calls))
    q = np.percentile(rates, [10, 50, 90])
    print(
        f"{len(rates)} calls: median {q[1]:.3f}, 10th percentile {q[0]:.3f}, 90th {q[2]:.3f}, "
        f"mean {np.mean(rates):.3f}"
    )


if __name__ == "__main__":
    main()
