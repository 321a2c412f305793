"""Training throughput: our training step against the plain spikingjelly reference path, in samples/s.

Run (about a minute on 2 cores; other load on the machine shows up directly, so the table reports
the best round, the two paths timed in turn, and the load average)::

    python -m pytest bench/bench_training.py --benchmark-enable
    python bench/bench_training.py            # the same

"ours" is :func:`spikenas.train.trainer.train_step` on :func:`spikenas.network.build_network`'s
network: multi-step spikingjelly neurons on ``[T, B, ...]`` tensors (spikingjelly 2.0 dispatches them
to its ``sj_lif`` CPU operator, or its CUDA/Triton kernels on a GPU), the stem computed once and
repeated over T. "reference" is the same network, with the same weights, run the plain way
SNASNet's code does: every spikingjelly layer in single-step mode, the whole network called once per
timestep in a Python loop (the stem recomputed each time) and the outputs averaged. Both take one
AdamW step on the same batch; the forward outputs of the two are checked equal first.

Sizes: the Fashion-MNIST recipe's network (width 16, hidden 256, 14x14 inputs, T = 2, batch 128;
:data:`spikenas.train.recipes.RECIPES`) with the cell the README's search finds there, and the same
at T = 4.
"""

from __future__ import annotations

import copy
import os
import sys

import pytest
import torch
import torch.nn.functional as F
from interleaved_timing import min_interleaved
from spikingjelly.activation_based import functional
from torch import nn

from spikenas.network import MacroConfig, SNASNetwork, build_network
from spikenas.space import Genotype
from spikenas.train.trainer import train_step

CELL = Genotype.from_nb201(
    "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|"
)
BATCH = 128
SIZES = {  # name -> MacroConfig of the timed network
    "T2": MacroConfig(num_cells=2, width=16, hidden=256, timesteps=2, in_channels=1, input_size=14, dropout=0.0),
    "T4": MacroConfig(num_cells=2, width=16, hidden=256, timesteps=4, in_channels=1, input_size=14, dropout=0.0),
}
ROUNDS, WARMUP = 8, 2

#: (path, size) -> best seconds per training step, filled as benchmarks run.
RESULTS: dict[tuple[str, str], float] = {}


class SingleStepReference(nn.Module):
    """``network`` run the plain spikingjelly way: single-step layers, one call per timestep.

    Input float32 ``[B, C, H, W]``, output float32 ``[B, classes]`` (class scores averaged over T),
    the same function as ``network.forward``.
    """

    def __init__(self, network: SNASNetwork) -> None:
        super().__init__()
        self.net = copy.deepcopy(network)
        functional.set_step_mode(self.net, "s")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self.net)
        total = 0.0
        for _ in range(self.net.config.timesteps):
            x = self.net.head(self.net.cells(self.net.stem(images)))  # [B, vote * classes]
            total = total + self.net.vote(x.unsqueeze(1)).squeeze(1)
        return total / self.net.config.timesteps


def _models(size: str) -> tuple[nn.Module, nn.Module]:
    macro = SIZES[size]
    ours = build_network([CELL] * macro.num_cells, macro, seed=0)
    return ours, SingleStepReference(ours)


def _batch(macro: MacroConfig) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, macro.in_channels, macro.input_size, macro.input_size, generator=g)
    return x, torch.randint(0, macro.num_classes, (BATCH,), generator=g)


def _reference_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    functional.reset_net(model)


def _steps(size: str) -> dict[str, object]:
    """A training-step closure per path, on the same network, weights and batch."""
    ours, reference = _models(size)
    x, y = _batch(SIZES[size])
    with torch.no_grad():  # the same function before any step (eval: BN running statistics)
        ours.eval(), reference.eval()
        torch.testing.assert_close(reference(x), ours(x), rtol=1e-4, atol=1e-5)
        ours.train(), reference.train()
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-3)
    opt_ref = torch.optim.AdamW(reference.parameters(), lr=1e-3)
    return {
        "ours": lambda: train_step(ours, opt_ours, x, y),
        "reference": lambda: _reference_step(reference, opt_ref, x, y),
    }


@pytest.mark.parametrize("size", list(SIZES))
def test_training_step(benchmark, size: str) -> None:
    """Our step through pytest-benchmark; then both paths interleaved for the ratio."""
    steps = _steps(size)
    benchmark.pedantic(steps["ours"], rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    if benchmark.stats is None:  # --benchmark-disable: one step of each is the smoke test
        steps["reference"]()
        return
    for path, seconds in min_interleaved(steps, ROUNDS, WARMUP).items():
        RESULTS[(path, size)] = seconds
    benchmark.extra_info["samples_per_s"] = {p: BATCH / RESULTS[(p, size)] for p in steps}
    benchmark.extra_info["speedup"] = RESULTS[("reference", size)] / RESULTS[("ours", size)]


def markdown() -> str:
    """The table of RESULTS (empty when nothing was timed)."""
    if not RESULTS:
        return ""
    lines = [
        f"Training step, batch {BATCH}, AdamW; {torch.get_num_threads()} threads; best of {ROUNDS} rounds, "
        f"paths in turn; 1-min load average {os.getloadavg()[0]:.2f} at the end",
        "",
        "| network | reference (samples/s) | ours (samples/s) | speed-up |",
        "|---|---|---|---|",
    ]
    for size, macro in SIZES.items():
        if ("ours", size) not in RESULTS:
            continue
        ref, ours = RESULTS[("reference", size)], RESULTS[("ours", size)]
        lines.append(
            f"| width {macro.width}, {macro.input_size}x{macro.input_size}, T {macro.timesteps} "
            f"| {BATCH / ref:.0f} | {BATCH / ours:.0f} | {ref / ours:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "--benchmark-enable", "-q", "-p", "no:cacheprovider"]))
