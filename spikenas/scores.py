"""Registry of training-free scores, and the spike statistics they are computed from.

A score maps one candidate (its cells, macro configuration and what one forward pass per batch
recorded) to a float, higher meaning "predicted to train better". Spike-kernel scores need a
:class:`Probe` per batch: for every LIF call (layer x timestep) the ``[B, B]`` Hamming matrix of
the B samples' binary patterns, the spikes per sample and N, tagged with where the LIF sits (on a
cell edge that lies on an input-to-output path, on a cell edge that does not, or in the macro).
Every kernel variant is then a cheap function of the probe, so one forward pass serves them all and
probes can be cached (:func:`save_probe`, :func:`load_probe`). Gradient scores need
:func:`gradient_stats`; structural scores need neither.

Register new scores with :func:`register_score`; look them up with :func:`get_score` and
:func:`list_scores`. :func:`score_candidate` is what a search calls. Rationale and dev-split figures of
every score: docs/fidelity.md.
"""

from __future__ import annotations

import fnmatch
import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.neuron import BaseNode
from torch import nn

import kernels
from spikenas.errors import SpikeNASError
from spikenas.memory import network_params
from spikenas.network import Cell, MacroConfig
from spikenas.ops import get_op
from spikenas.score import ScoreConfig, ScoreResult, hooked_forward, score_network, set_bn_mode
from spikenas.space import EDGES, Genotype

KINDS = ("live", "dead", "macro")  # LIF on a live cell edge, on a dead cell edge, outside the cells
NEEDS = ("spikes", "gradients")
EPS = 1e-3  # SNASNet's guard in the expected-distance denominator
ALPHA = 0.5  # SNASNet's weight on the normalised Hamming distance


@dataclass(frozen=True)
class Probe:
    """What one forward pass on one batch recorded, for G LIF calls over L LIF modules."""

    modules: tuple[str, ...]  # [L] qualified LIF module names
    kinds: tuple[str, ...]  # [L] one of KINDS per module
    call_module: np.ndarray  # int64 [G] module index of each call
    call_step: np.ndarray  # int64 [G] timestep of each call
    sizes: np.ndarray  # int64 [G] N, neurons per sample of each call
    hamming: np.ndarray  # int32 [G, B, B] pairwise Hamming distances of each call's patterns
    counts: np.ndarray  # int32 [G, B] spikes per sample of each call
    seconds: float = 0.0  # wall time of the forward pass and the Hamming matrices

    @property
    def batch_size(self) -> int:
        return int(self.hamming.shape[-1])

    def call_kinds(self) -> np.ndarray:
        """str ``[G]``: the kind of each call's module."""
        return np.array(self.kinds, dtype=object)[self.call_module] if len(self.call_module) else np.array([])


@dataclass
class Candidate:
    """Everything a score may look at."""

    cells: tuple[Genotype, ...]  # genotype per cell position
    macro: MacroConfig  # the proxy network's configuration
    probes: list[Probe] = field(default_factory=list)  # one per batch, when a score needs spikes
    gradients: list[dict[str, float]] = field(default_factory=list)  # one per batch, when it needs gradients


ScoreFn = Callable[[Candidate], float]


@dataclass(frozen=True)
class ScoreSpec:
    """A registered score."""

    name: str  # registry key (ScoreConfig.name, --score, --scores)
    fn: ScoreFn  # candidate -> float, higher is better; -inf when undefined (e.g. singular kernel)
    doc: str  # one-paragraph rationale
    needs: frozenset[str]  # subset of NEEDS: what must be recorded before fn runs


_SCORES: dict[str, ScoreSpec] = {}


def register_score(name: str, *, doc: str, needs: Iterable[str] = ()) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator registering ``fn(candidate) -> float`` as score ``name``; re-registering warns."""
    needs = frozenset(needs)
    if not needs <= set(NEEDS):
        raise SpikeNASError(f"score {name!r}: needs must be a subset of {NEEDS}, got {sorted(needs)}")

    def decorator(fn: ScoreFn) -> ScoreFn:
        if name in _SCORES:
            warnings.warn(f"score {name!r} is already registered; replacing it", stacklevel=2)
        _SCORES[name] = ScoreSpec(name, fn, " ".join(doc.split()), needs)
        return fn

    return decorator


def get_score(name: str) -> ScoreSpec:
    """The score registered as ``name``."""
    if name not in _SCORES:
        raise SpikeNASError(f"unknown score {name!r}; registered scores: {', '.join(list_scores())}")
    return _SCORES[name]


def list_scores(pattern: str = "*") -> list[str]:
    """Registered score names matching a shell-style ``pattern``, in registration order."""
    return [n for n in _SCORES if fnmatch.fnmatch(n, pattern)]


# --------------------------------------------------------------------------------------------------
# Recording


def _module_kinds(network: nn.Module) -> dict[int, str]:
    """id(module) -> kind for every LIF inside a cell; LIFs not listed are macro LIFs."""
    kinds = {}
    for cell in network.modules():
        if not isinstance(cell, Cell):
            continue
        live = dict(zip((f"{s}{d}" for s, d in EDGES), cell.genotype.live_edges(), strict=True))
        for key, op in cell.edges.items():
            for m in op.modules():
                kinds[id(m)] = "live" if live[key] else "dead"
    return kinds


def record_probe(network: nn.Module, batch: torch.Tensor, *, bn_mode: str = "train") -> Probe:
    """One forward pass of ``network`` on ``batch`` (float ``[B, C, H, W]``), recording every LIF call.

    BatchNorm uses batch statistics (``train``) or its running ones (``eval``); no gradients; the
    network's modes and BN running statistics are left as they were.
    """
    if bn_mode not in ("train", "eval"):
        raise SpikeNASError(f"bn_mode must be train or eval, got {bn_mode!r}")
    names = [(n, m) for n, m in network.named_modules() if isinstance(m, BaseNode)]
    if not names:
        raise SpikeNASError(f"{type(network).__name__} has no spikingjelly neurons to record")
    kinds_by_id = _module_kinds(network)
    index = {id(m): i for i, (_, m) in enumerate(names)}
    calls: list[tuple[int, int, int, torch.Tensor, torch.Tensor]] = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(output, tuple):
            output = output[0]
        spikes = output.reshape(output.shape[0], output.shape[1], -1) if output.dim() > 2 else output[None]
        counts = (spikes != 0).sum(dim=-1, dtype=torch.int32)
        hamming = kernels.hamming_gram(kernels.pack_bits(spikes), spikes.shape[-1])  # int32 [T, B, B]
        for t in range(spikes.shape[0]):
            calls.append((index[id(module)], t, spikes.shape[-1], hamming[t], counts[t]))

    start = time.perf_counter()
    hooked_forward(network, batch, [m for _, m in names], hook, bn_mode=bn_mode)
    if not calls:
        raise SpikeNASError(f"no neuron of {type(network).__name__} was called during the forward pass")
    return Probe(
        modules=tuple(n for n, _ in names),
        kinds=tuple(kinds_by_id.get(id(m), "macro") for _, m in names),
        call_module=np.array([c[0] for c in calls], dtype=np.int64),
        call_step=np.array([c[1] for c in calls], dtype=np.int64),
        sizes=np.array([c[2] for c in calls], dtype=np.int64),
        hamming=torch.stack([c[3] for c in calls]).numpy(),
        counts=torch.stack([c[4] for c in calls]).numpy(),
        seconds=time.perf_counter() - start,
    )


def gradient_stats(network: nn.Module, batch: torch.Tensor) -> dict[str, float]:
    """Label-free gradient statistics through the LIFs' surrogate gradient, on a copy of ``network``.

    ``grad_norm``: ``log ||d/dθ CE(f(x), y)||`` on the real batch with fixed class-balanced labels
    ``y_i = i mod classes`` (no data labels needed; at initialisation the logits barely depend on them),
    BN in train mode.
    ``synflow``: ``log Σ |θ ⊙ dR/dθ|`` with ``R = Σ f(1)`` for |θ| weights, an all-ones input and BN in
    eval mode (SynFlow, Tanaka et al. 2020). ``seconds``: wall time of both. Non-finite -> -inf.
    """
    import copy

    start = time.perf_counter()
    out: dict[str, float] = {}
    model = copy.deepcopy(network)
    params = [p for p in model.parameters() if p.requires_grad]
    set_bn_mode(model, "train")
    model.zero_grad(set_to_none=True)
    logits = model(batch)
    labels = torch.arange(len(batch)) % logits.shape[-1]
    nn.functional.cross_entropy(logits, labels).backward()
    norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None))
    out["grad_norm"] = math.log(norm) if norm > 0 and math.isfinite(norm) else float("-inf")

    model = copy.deepcopy(network)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in params:
            p.abs_()
    model.eval()
    model.zero_grad(set_to_none=True)
    functional.reset_net(model)
    model(torch.ones_like(batch[:1])).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in params if p.grad is not None)
    out["synflow"] = math.log(total) if total > 0 and math.isfinite(total) else float("-inf")
    functional.reset_net(model)
    out["seconds"] = time.perf_counter() - start
    return out


def prepare_candidate(
    cells: tuple[Genotype, ...],
    macro: MacroConfig,
    network: nn.Module,
    batches: list[torch.Tensor],
    *,
    needs: Iterable[str],
    bn_mode: str = "train",
) -> Candidate:
    """A :class:`Candidate` with what ``needs`` asks for recorded on every batch."""
    needs = set(needs)
    candidate = Candidate(tuple(cells), macro)
    if "spikes" in needs:
        candidate.probes = [record_probe(network, b, bn_mode=bn_mode) for b in batches]
    if "gradients" in needs:
        candidate.gradients = [gradient_stats(network, b) for b in batches]
    return candidate


def save_probe(path: str | Path, probe: Probe) -> None:
    """Write ``probe`` to a compressed .npz (the upper triangles of the Hamming matrices only)."""
    b = probe.batch_size
    rows, cols = np.triu_indices(b, 1)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        modules=np.array(probe.modules),
        kinds=np.array(probe.kinds),
        call_module=probe.call_module,
        call_step=probe.call_step,
        sizes=probe.sizes,
        upper=probe.hamming[:, rows, cols],
        counts=probe.counts,
        batch_size=np.int64(b),
        seconds=np.float64(probe.seconds),
    )
    tmp.replace(path)


def load_probe(path: str | Path) -> Probe:
    """Read a probe written by :func:`save_probe`."""
    with np.load(path) as data:
        b = int(data["batch_size"])
        upper = data["upper"]
        hamming = np.zeros((upper.shape[0], b, b), dtype=np.int32)
        rows, cols = np.triu_indices(b, 1)
        hamming[:, rows, cols] = upper
        hamming[:, cols, rows] = upper
        return Probe(
            modules=tuple(str(s) for s in data["modules"]),
            kinds=tuple(str(s) for s in data["kinds"]),
            call_module=data["call_module"].astype(np.int64),
            call_step=data["call_step"].astype(np.int64),
            sizes=data["sizes"].astype(np.int64),
            hamming=hamming,
            counts=data["counts"].astype(np.int32),
            seconds=float(data["seconds"]),
        )


# --------------------------------------------------------------------------------------------------
# Kernel scores computed from probes


def call_kernels(
    hamming: np.ndarray, counts: np.ndarray, sizes: np.ndarray, *, kind: str, alpha: float = ALPHA
) -> np.ndarray:
    """Per-call kernels, float64 ``[G, B, B]`` from ``hamming`` ``[G, B, B]``, ``counts`` ``[G, B]``, ``sizes`` ``[G]``.

    ``hamming``: ``N - H`` (NASWOT); ``sahd``: ``N - alpha H / (N (r_i (1 - r_j) + (1 - r_i) r_j) + eps)``
    (SNASNet); ``sahd_rate``: the same without the factor N in the expected distance.
    """
    n = sizes.astype(np.float64)[:, None, None]
    h = hamming.astype(np.float64)
    if kind == "hamming":
        return n - h
    rate = counts.astype(np.float64) / n[:, :, 0]
    ri, rj = rate[:, :, None], rate[:, None, :]
    expected = ri * (1 - rj) + (1 - ri) * rj
    if kind == "sahd":
        expected = expected * n
    elif kind != "sahd_rate":
        raise SpikeNASError(f"kernel kind must be hamming, sahd or sahd_rate, got {kind!r}")
    return n - alpha * h / (expected + EPS)


def logabsdet(matrix: np.ndarray) -> float:
    """``log|det matrix|`` (SNASNet ignores the sign); -inf when singular or not finite."""
    sign, value = np.linalg.slogdet(matrix)
    return float(value) if sign != 0 and np.isfinite(value) else float("-inf")


def probe_kernel_score(
    probe: Probe,
    *,
    kind: str = "sahd",
    kinds: Iterable[str] = KINDS,
    reduce: str = "mean",
    per_layer: bool = False,
    over_time: bool = False,
    alpha: float = ALPHA,
) -> float:
    """``log|det K|`` of one batch, K combined over the LIF calls whose module kind is in ``kinds``.

    :param reduce: ``mean`` (SNASNet's code) or ``sum`` (its paper, NASWOT) over the calls.
    :param per_layer: divide each call's kernel by its N first, so every layer weighs the same.
    :param over_time: one kernel per LIF module from its spikes concatenated over the T timesteps
        (Hamming distances and counts add up, N becomes T N), instead of one per timestep.
    :returns: -inf when no call is selected or K is singular.
    """
    kinds = set(kinds)
    keep = np.array([probe.kinds[m] in kinds for m in probe.call_module], dtype=bool)
    if not keep.any():
        return float("-inf")
    hamming, counts, sizes = probe.hamming[keep], probe.counts[keep], probe.sizes[keep]
    if over_time:
        modules = probe.call_module[keep]
        order = np.unique(modules)
        hamming = np.stack([hamming[modules == m].astype(np.int64).sum(axis=0) for m in order])
        counts = np.stack([counts[modules == m].astype(np.int64).sum(axis=0) for m in order])
        sizes = np.array([sizes[modules == m].sum() for m in order])
    per_call = call_kernels(hamming, counts, sizes, kind=kind, alpha=alpha)
    if per_layer:
        per_call = per_call / sizes.astype(np.float64)[:, None, None]
    total = per_call.sum(axis=0)
    if reduce == "mean":
        total = total / len(per_call)
    elif reduce != "sum":
        raise SpikeNASError(f"reduce must be mean or sum, got {reduce!r}")
    return logabsdet(total)


def _over_batches(candidate: Candidate, **options: object) -> float:
    if not candidate.probes:
        raise SpikeNASError("this score needs spike probes: record them with prepare_candidate(needs=['spikes'])")
    values = [probe_kernel_score(p, **options) for p in candidate.probes]
    return float(np.mean(values)) if all(math.isfinite(v) for v in values) else float("-inf")


def _kernel_score(name: str, doc: str, **options: object) -> None:
    register_score(name, doc=doc, needs=("spikes",))(lambda c: _over_batches(c, **options))


# --------------------------------------------------------------------------------------------------
# Structural quantities


def _parametric(op_name: str) -> bool:
    return get_op(op_name).params(1) > 0


def live_parametric_edges(genotype: Genotype) -> int:
    """Edges of ``genotype`` holding weights (convolutions) that lie on an input-to-output path."""
    return sum(live and _parametric(o) for o, live in zip(genotype.ops, genotype.live_edges(), strict=True))


def conv_depth(genotype: Genotype) -> int:
    """Most weight-holding edges on any input-to-output path of live edges (0 if disconnected)."""
    live = genotype.live_edges()
    depth = [0, -1, -1, -1]  # -1: node not reached
    for (src, dst), op, ok in zip(EDGES, genotype.ops, live, strict=True):
        if ok and depth[src] >= 0:
            depth[dst] = max(depth[dst], depth[src] + int(_parametric(op)))
    return max(depth[3], 0)


# --------------------------------------------------------------------------------------------------
# Registered scores (figures in the docs are Kendall tau vs test accuracy on a 300-record sample of the
# SpikeNAS-Bench dev split, all / connected; see docs/fidelity.md)

_kernel_score(
    "sahd",
    """SNASNet's reference: sparsity-aware Hamming kernel over every LIF call (cells, downconv, head),
    averaged over calls, log|det K|. Rewards networks whose spike patterns separate the samples more than
    their firing rates alone would; in practice it mostly counts spiking layers.""",
    kind="sahd",
)
_kernel_score(
    "sahd_sum",
    """SAHD with per-call kernels summed rather than averaged (SNASNet's paper): adds B log(calls), a bonus
    for networks with more LIF calls.""",
    kind="sahd",
    reduce="sum",
)
_kernel_score(
    "hamming",
    """NASWOT's plain Hamming kernel N - H over every LIF call, summed over calls as NASWOT does: large when
    patterns differ and layers are wide.""",
    kind="hamming",
    reduce="sum",
)
_kernel_score(
    "hamming_mean",
    """Plain Hamming kernel averaged over calls (ScoreConfig(kernel='hamming') in spikenas.score).""",
    kind="hamming",
)
_kernel_score(
    "sahd_rate",
    """SAHD without the factor N in the expected distance, over every LIF call, averaged: the normalised
    distance term then dominates N, so the kernel measures pattern decorrelation rather than layer size.""",
    kind="sahd_rate",
)
_kernel_score(
    "sahd_live",
    """SAHD over the LIFs on cell edges that lie on an input-to-output path only: LIFs of dead edges and of
    the macro (the same in every candidate) no longer dilute the cell's contribution.""",
    kind="sahd",
    kinds=("live",),
)
_kernel_score(
    "sahd_live_rate",
    """SAHD on live cell LIFs without the factor N in the normaliser, averaged over calls (the issue's
    best spike score, 0.48 / 0.46).""",
    kind="sahd_rate",
    kinds=("live",),
)
_kernel_score(
    "sahd_live_rate_sum",
    """As sahd_live_rate with kernels summed over calls: more live spiking layers, larger score.""",
    kind="sahd_rate",
    kinds=("live",),
    reduce="sum",
)
_kernel_score(
    "sahd_layernorm",
    """SAHD with each call's kernel divided by its N before averaging, so wide and narrow layers (cell LIFs
    versus the 1024-unit head) weigh the same.""",
    kind="sahd",
    per_layer=True,
)
_kernel_score(
    "sahd_time",
    """SAHD with each LIF's spikes concatenated over the T timesteps (one kernel per layer, N -> T N), so
    temporal codes count and static repeats do not multiply a layer's weight.""",
    kind="sahd",
    over_time=True,
)
_kernel_score(
    "sahd_live_time",
    """sahd_time restricted to live cell LIFs, with the rate normaliser.""",
    kind="sahd_rate",
    kinds=("live",),
    over_time=True,
)


@register_score(
    "params",
    doc="""Parameter count of the network from the memory model: the baseline every score must beat. At a
    fixed macro it counts conv edges, alive or not.""",
)
def _params(candidate: Candidate) -> float:
    return float(network_params(list(candidate.cells), candidate.macro))


@register_score(
    "live_convs",
    doc="""Weight-holding edges on input-to-output paths, summed over cells: the parameter count with dead
    convolutions removed.""",
)
def _live_convs(candidate: Candidate) -> float:
    return float(sum(live_parametric_edges(g) for g in candidate.cells))


@register_score(
    "conv_depth",
    doc="""Longest input-to-output path in weight-holding edges, summed over cells: the number of conv
    layers stacked in series, which is what a spiking network's accuracy in this space grows with.""",
)
def _conv_depth(candidate: Candidate) -> float:
    return float(sum(conv_depth(g) for g in candidate.cells))


def live_skips(genotype: Genotype) -> int:
    """Weight-free, non-zero edges (skips, pools) of ``genotype`` on input-to-output paths."""
    return sum(
        live and not _parametric(o) for o, live in zip(genotype.ops, genotype.live_edges(), strict=True)
    )


@register_score(
    "depth_skip",
    doc="""conv_depth + 0.1 x live weight-free edges (residual shortcuts), summed over cells: conv_depth's order
    between depths is kept (at most 0.6 is added) and its many ties are broken in favour of cells with
    shortcuts, which train slightly better among equally deep cells on the dev split.""",
)
def _depth_skip(candidate: Candidate) -> float:
    return float(sum(conv_depth(g) + 0.1 * live_skips(g) for g in candidate.cells))


@register_score(
    "grad_norm",
    doc="""log of the norm of the cross-entropy gradient with respect to every weight, through the ATan
    surrogate, on the real batch with fixed labels: how much signal trains the network at initialisation.""",
    needs=("gradients",),
)
def _grad_norm(candidate: Candidate) -> float:
    return _mean_gradient(candidate, "grad_norm")


@register_score(
    "synflow",
    doc="""SynFlow (Tanaka et al. 2020) through the surrogate gradient: log Σ|θ ⊙ dR/dθ| with |θ| weights and
    an all-ones input; data-free, measures the synaptic flow of every path.""",
    needs=("gradients",),
)
def _synflow(candidate: Candidate) -> float:
    return _mean_gradient(candidate, "synflow")


def _mean_gradient(candidate: Candidate, key: str) -> float:
    if not candidate.gradients:
        raise SpikeNASError("this score needs gradients: record them with prepare_candidate(needs=['gradients'])")
    values = [g[key] for g in candidate.gradients]
    return float(np.mean(values)) if all(math.isfinite(v) for v in values) else float("-inf")


# --------------------------------------------------------------------------------------------------
# Search entry point


def needs_network(name: str) -> bool:
    """Whether score ``name`` runs the network (structural scores only read the cells)."""
    spec = get_score(name)
    return spec.name == "sahd" or bool(spec.needs)


def score_candidate(
    cells: tuple[Genotype, ...] | list[Genotype],
    network: nn.Module | None,
    batches: list[torch.Tensor],
    config: ScoreConfig,
    *,
    macro: MacroConfig | None = None,
) -> ScoreResult:
    """Score one candidate with the score ``config.name`` (what the search engine calls).

    ``sahd`` runs :func:`spikenas.score.score_network` with every kernel option of ``config``, so
    SNASNet's reference is reproduced exactly; other names record what they need and evaluate the
    registered function. A non-finite score gives status ``singular``.

    :param network: the built network; may be None for scores that do not run it
        (:func:`needs_network`), which then need ``macro``.
    """
    spec = get_score(config.name)
    if needs_network(spec.name) and network is None:
        raise SpikeNASError(f"score {spec.name!r} runs the network: pass the built network")
    if spec.name == "sahd":
        return score_network(network, batches, config=config)
    start = time.perf_counter()
    macro = macro if macro is not None else getattr(network, "config", None)
    if not isinstance(macro, MacroConfig):
        raise SpikeNASError(f"score {spec.name!r} needs the MacroConfig of the network, got {macro!r}")
    candidate = prepare_candidate(tuple(cells), macro, network, batches, needs=spec.needs, bn_mode=config.bn_mode)
    value = float(spec.fn(candidate))
    result = ScoreResult(score=value, seconds=time.perf_counter() - start)
    result.num_calls = len(candidate.probes[0].sizes) if candidate.probes else 0
    if not math.isfinite(value):
        result.score, result.status = float("-inf"), "singular"
    return result
