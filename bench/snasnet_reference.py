"""A frozen reference of SNASNet's search procedure (Kim et al., ECCV 2022), written against torch and
spikingjelly only: nothing here imports spikenas, so the project's changes cannot move it.

It is the denominator of the search-time ratios in bench/search_time.py. What it does, as SNASNet does:

* Network (per timestep, single-step modules; the stem runs once and feeds every timestep)::

      stem      Conv3x3(in -> C, no bias) + BN
      cell1     (C)
      downconv  BN -> LIF -> Conv3x3(C -> 2C, no bias) -> BN, AvgPool2d(2)
      cell2     (2C)
      last_act  BN -> LIF, AvgPool2d(2), flatten
      head      Dropout -> Linear(-> hidden, no bias) -> LIF -> Linear(hidden -> 10 * classes) -> AvgPool1d(10)

  output averaged over T. BatchNorm takes the statistics of each timestep's batch (train mode).
* Cell: 4 nodes, edges (0,1),(0,2),(0,3),(1,2),(1,3),(2,3); node 3 is the output; nodes are analog.
  Ops (NAS-Bench-201 order): 0 zero, 1 skip, 2 LIF -> Conv1x1 -> BN, 3 LIF -> Conv3x3 -> BN,
  4 AvgPool2d(3, 1, 1, count_include_pad=True). Edges off every input-to-output path are pruned.
* Init: conv kaiming_uniform_(a=2), BN weight 1 bias 0, Linear N(0, 0.01) bias 0.
* LIF: tau 4/3, v_th 1, hard reset to 0, detach_reset, ATan surrogate; neuron states reset before each batch.
* Score (SAHD): a forward hook on every LIF takes each call's spikes of the B samples as x, float ``[B, N]``;
  r = firing rate per sample, E = N (r (1-r)^T + (1-r) r^T), H = N - (x x^T + (1-x)(1-x)^T) by float
  matmuls, K = N - alpha H / (E + 1e-3) with alpha 0.5; K averaged over calls; score = log|det K|
  (slogdet; -inf when singular), averaged over the batches. Random init, train mode, no grad.
* Random search: draw 6 ops uniformly, redraw while edge (0,3) is zero, the same cell in both positions,
  every draw built and scored (no memo), the best score kept (the first one on ties).

    python bench/snasnet_reference.py --samples 20 --width 8 --hidden 64 --input-size 8 --batch-size 256
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, neuron, surrogate
from torch import nn

EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
OP_NAMES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # NAS-Bench-201 order
ZERO, SKIP, CONV1X1, CONV3X3, AVGPOOL = range(5)
ALPHA = 0.5  # weight of the normalised Hamming distance
EPS = 1e-3  # guard of the expected distance
VOTE = 10  # outputs per class pooled by the voting layer
TAU = 4.0 / 3.0
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_sample.npz"


def lif() -> neuron.LIFNode:
    """SNASNet's single-step LIF."""
    return neuron.LIFNode(tau=TAU, decay_input=True, v_threshold=1.0, v_reset=0.0,
                          surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=True, step_mode="s")


def live_edges(ops: Sequence[int]) -> tuple[bool, ...]:
    """Per edge: non-zero and on some path from node 0 to node 3."""
    reach_in = [True, False, False, False]
    for (src, dst), op in zip(EDGES, ops, strict=True):
        reach_in[dst] |= op != ZERO and reach_in[src]
    reach_out = [False, False, False, True]
    for (src, dst), op in reversed(list(zip(EDGES, ops, strict=True))):
        reach_out[src] |= op != ZERO and reach_out[dst]
    return tuple(op != ZERO and reach_in[s] and reach_out[d] for (s, d), op in zip(EDGES, ops, strict=True))


def nb201(ops: Sequence[int]) -> str:
    """The NAS-Bench-201 string of a cell given as 6 op codes."""
    names = dict(zip(EDGES, (OP_NAMES[o] for o in ops), strict=True))
    return "+".join("|" + "|".join(f"{names[(s, d)]}~{s}" for s in range(d)) + "|" for d in range(1, 4))


def make_op(op: int, channels: int) -> nn.Module:
    """The module of op code ``op`` on ``[B, C, H, W]`` (zero is never built: pruned edges)."""
    if op == SKIP:
        return nn.Identity()
    if op in (CONV1X1, CONV3X3):
        k = 1 if op == CONV1X1 else 3
        return nn.Sequential(lif(), nn.Conv2d(channels, channels, k, padding=k // 2, bias=False),
                             nn.BatchNorm2d(channels))
    if op == AVGPOOL:
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
    raise ValueError(f"op code must be one of 1..4 for a built edge, got {op}")


class ReferenceCell(nn.Module):
    """A 4-node cell; only edges on an input-to-output path hold a module (keyed ``"01"`` ... ``"23"``)."""

    def __init__(self, ops: Sequence[int], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict()
        for (src, dst), op, live in zip(EDGES, ops, live_edges(ops), strict=True):
            if live:
                self.edges[f"{src}{dst}"] = make_op(op, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H, W]`` (node 3)."""
        nodes = [x]
        for dst in range(1, 4):
            parts = [self.edges[f"{s}{dst}"](nodes[s]) for s in range(dst) if f"{s}{dst}" in self.edges]
            nodes.append(sum(parts[1:], parts[0]) if parts else torch.zeros_like(x))
        return nodes[3]


class ReferenceNet(nn.Module):
    """SNASNet's two-cell network with the same cell in both positions; ``[B, C_in, S, S]`` float images ->
    ``[B, classes]`` float scores averaged over T."""

    def __init__(self, ops: Sequence[int], *, width: int, hidden: int, input_size: int, in_channels: int = 3,
                 num_classes: int = 10, timesteps: int = 5, dropout: float = 0.5) -> None:
        super().__init__()
        if len(ops) != len(EDGES) or not all(0 <= o < len(OP_NAMES) for o in ops):
            raise ValueError(f"ops must be 6 op codes in 0..4, got {tuple(ops)}")
        if input_size < 4 or width < 1 or hidden < 1 or timesteps < 1:
            raise ValueError(f"need input_size >= 4, width, hidden, timesteps >= 1; got {input_size}, {width}, "
                             f"{hidden}, {timesteps}")
        c = width
        self.timesteps = timesteps
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.cell1 = ReferenceCell(ops, c)
        self.downconv = nn.Sequential(nn.BatchNorm2d(c), lif(), nn.Conv2d(c, 2 * c, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(2 * c), nn.AvgPool2d(2))
        self.cell2 = ReferenceCell(ops, 2 * c)
        self.last_act = nn.Sequential(nn.BatchNorm2d(2 * c), lif(), nn.AvgPool2d(2), nn.Flatten())
        final = input_size // 2 // 2
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c * final * final, hidden, bias=False),
                                        lif(), nn.Linear(hidden, VOTE * num_classes))
        self.vote = nn.AvgPool1d(VOTE, VOTE)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        static = self.stem(images)
        total = 0.0
        for _ in range(self.timesteps):
            x = self.last_act(self.cell2(self.downconv(self.cell1(static))))
            x = self.classifier(x)
            total = total + self.vote(x.unsqueeze(1)).squeeze(1)
        return total / self.timesteps


def hamming_float(x: torch.Tensor) -> torch.Tensor:
    """Pairwise Hamming distances of binary rows by float matmuls: ``N - (x x^T + (1-x)(1-x)^T)``.

    :param x: float ``[B, N]`` of 0/1. Exact for N < 2**24 in float32.
    :returns: float ``[B, B]`` (x's dtype).
    """
    return x.shape[1] - (x @ x.T + (1 - x) @ (1 - x).T)


def sahd_call_kernel(x: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """SAHD kernel of one LIF call: float ``[B, N]`` spikes -> float ``[B, B]``, K = N - alpha H / (E + eps)."""
    n = x.shape[1]
    rate = (x.sum(dim=1) / n).unsqueeze(1)
    expected = (rate @ (1 - rate).T + (1 - rate) @ rate.T) * n
    return n - alpha * hamming_float(x) / (expected + EPS)


class KernelHooks:
    """Forward hooks on every LIF of a network accumulating the SAHD kernel of each call (float64 sum)."""

    def __init__(self, network: nn.Module, batch_size: int, alpha: float = ALPHA) -> None:
        self.alpha = alpha
        self.kernel = torch.zeros(batch_size, batch_size, dtype=torch.float64)
        self.calls = 0
        self._handles = [m.register_forward_hook(self._hook) for m in network.modules()
                         if isinstance(m, neuron.LIFNode)]

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        x = (output.reshape(output.shape[0], -1) > 0).float()
        self.kernel += sahd_call_kernel(x, self.alpha).double()
        self.calls += 1

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def score_network(network: nn.Module, batches: Sequence[torch.Tensor], alpha: float = ALPHA) -> float:
    """SAHD score of ``network`` (as it is: the caller sets train mode) averaged over ``batches`` of float
    ``[B, C, H, W]`` images; -inf when a batch's kernel is singular."""
    scores = []
    with torch.no_grad():
        for batch in batches:
            hooks = KernelHooks(network, batch.shape[0], alpha)
            try:
                functional.reset_net(network)
                network(batch)
                functional.reset_net(network)
            finally:
                hooks.remove()
            sign, logdet = torch.linalg.slogdet(hooks.kernel / hooks.calls)
            scores.append(float(logdet) if float(sign) != 0 and math.isfinite(float(logdet)) else -math.inf)
    return sum(scores) / len(scores) if all(math.isfinite(s) for s in scores) else -math.inf


def sample_ops(generator: torch.Generator) -> tuple[int, ...]:
    """Six uniform op codes, redrawn while edge (0,3) is the zero op."""
    while True:
        ops = tuple(int(o) for o in torch.randint(0, len(OP_NAMES), (len(EDGES),), generator=generator))
        if ops[EDGES.index((0, 3))] != ZERO:
            return ops


def run_random_search(batches: Sequence[torch.Tensor], *, samples: int, width: int, hidden: int, timesteps: int,
                      seed: int, num_classes: int = 10, dropout: float = 0.5) -> dict:
    """SNASNet's random search on float ``[B, C, S, S]`` image ``batches``: ``samples`` draws, each built at
    random init (train mode) and scored; the best kept.

    Draws come from a generator seeded with ``seed``; weights and dropout masks from torch's global
    generator seeded with ``seed`` inside a fork (the caller's generator state is left as it was).

    :returns: dict with ``best_ops`` (6 op codes), ``best_cell`` (NAS-Bench-201 string), ``best_score``,
        ``scored`` (networks built and scored), ``seconds`` (wall time of the whole search), ``scores``
        (per draw, in order) and ``draws``.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not batches:
        raise ValueError("batches must hold at least one [B, C, S, S] tensor")
    _, in_channels, size, _ = batches[0].shape
    generator = torch.Generator().manual_seed(seed)
    best_ops, best_score, scores, draws = None, -math.inf, [], []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(samples):
            ops = sample_ops(generator)
            network = ReferenceNet(ops, width=width, hidden=hidden, input_size=size, in_channels=in_channels,
                                   num_classes=num_classes, timesteps=timesteps, dropout=dropout).train()
            score = score_network(network, batches)
            draws.append(ops)
            scores.append(score)
            if best_ops is None or score > best_score:
                best_ops, best_score = ops, score
    return {"best_ops": best_ops, "best_cell": nb201(best_ops), "best_score": best_score, "scored": len(scores),
            "seconds": time.perf_counter() - start, "scores": scores, "draws": draws}


def load_batches(path: Path, *, batch_size: int, num_batches: int, input_size: int, seed: int) -> list[torch.Tensor]:
    """Disjoint random batches of an ``.npz`` of NHWC uint8 images ``x``: scaled to [0, 1], standardised per
    channel, resized bilinearly to ``input_size``; float32 ``[batch_size, C, S, S]`` each."""
    import numpy as np  # only the CLI reads files

    images = torch.from_numpy(np.load(path)["x"]).permute(0, 3, 1, 2).float() / 255.0
    if batch_size * num_batches > len(images):
        raise ValueError(f"{path} has {len(images)} images, fewer than {batch_size} x {num_batches}")
    images = (images - images.mean(dim=(0, 2, 3), keepdim=True)) / (images.std(dim=(0, 2, 3), keepdim=True) + 1e-6)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    out = []
    for i in range(num_batches):
        x = images[order[i * batch_size:(i + 1) * batch_size]]
        if input_size != x.shape[-1]:
            x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
        out.append(x.contiguous())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/snasnet_reference.py", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="npz with NHWC uint8 images 'x'")
    p.add_argument("--samples", type=int, default=20, help="random draws (default 20; SNASNet: 5000)")
    p.add_argument("--width", type=int, default=8, help="channels C of cell 1 (default 8)")
    p.add_argument("--hidden", type=int, default=64, help="units of the head's first Linear (default 64)")
    p.add_argument("--timesteps", type=int, default=5, help="T (default 5)")
    p.add_argument("--input-size", type=int, default=8, help="images resized to this (default 8)")
    p.add_argument("--batch-size", type=int, default=256, help="B (default 256)")
    p.add_argument("--num-batches", type=int, default=2, help="batches averaged (default 2)")
    p.add_argument("--seed", type=int, default=0, help="data, draw and weight seed (default 0)")
    args = p.parse_args(argv)
    try:
        batches = load_batches(args.data, batch_size=args.batch_size, num_batches=args.num_batches,
                               input_size=args.input_size, seed=args.seed)
        result = run_random_search(batches, samples=args.samples, width=args.width, hidden=args.hidden,
                                   timesteps=args.timesteps, seed=args.seed)
    except (ValueError, OSError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"best {result['best_cell']} score {result['best_score']:.4f}; {result['scored']} scored in "
          f"{result['seconds']:.1f} s ({result['seconds'] / result['scored']:.3f} s each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
