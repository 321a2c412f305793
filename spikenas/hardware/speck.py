"""SynSense Speck (DYNAP-CNN): its cores, the memory a layer takes on one, and the assignment of layers to cores.

A Speck layer is one convolution (a Linear is a convolution whose kernel covers its input map) followed by
integrate-and-fire neurons and, optionally, sum pooling per destination. Each layer runs on one of nine cores,
and a core holds one layer. Memory is counted in words and rounded up to powers of two (sinabs 3.1.3,
``sinabs.backend.dynapcnn.dynapcnn_layer.DynapcnnLayer.memory_summary``)::

    kernel memory = c_in * 2 ** (ceil(log2(k * k)) + ceil(log2(c_out)))
    neuron memory = c_out * 2 ** (ceil(log2(H_out)) + ceil(log2(W_out)))
    bias memory   = c_out if the convolution has a bias, else 0

The cores' memories (``sinabs.backend.dynapcnn.chips.dynapcnn.DynapcnnConfigBuilder.get_constraints``), in Ki
words, kernel / neuron: 16/64 (cores 0-2), 32/32 (3-4), 64/16 (5-6), 16/16 (7-8); 1,024 bias words each.
Layers are assigned to cores as a bipartite matching (:func:`assign_cores`: the same augmenting-path search on
the same flow network as sinabs' ``mapping.get_valid_mapping``, so both give the same assignment);
:func:`mappable` decides feasibility for many networks at once by Hall's condition over the four core kinds.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np

KI = 1024


@dataclass(frozen=True)
class Core:
    """Memory of one Speck core, in words."""

    kernel: int
    neuron: int
    bias: int = KI


#: Speck's nine cores in sinabs' order.
CORES: tuple[Core, ...] = (
    *(Core(16 * KI, 64 * KI) for _ in range(3)),
    *(Core(32 * KI, 32 * KI) for _ in range(2)),
    *(Core(64 * KI, 16 * KI) for _ in range(2)),
    *(Core(16 * KI, 16 * KI) for _ in range(2)),
)


def _pow2_exponent(x: np.ndarray) -> np.ndarray:
    """int64 ``ceil(log2(x))`` for integers ``x >= 1`` (exact, unlike a float log near powers of two)."""
    x = np.asarray(x, dtype=np.int64)
    if (x < 1).any():
        raise ValueError(f"sizes must be >= 1, got {x[x < 1][:3].tolist()}")
    if (x > 2**53).any():
        raise ValueError(f"sizes must be <= 2**53, got {x[x > 2**53][:3].tolist()}")
    # frexp(v) = (m, e) with v = m * 2**e and 0.5 <= m < 1, so e is the bit length of the integer v (0 for v = 0),
    # and the bit length of x - 1 is ceil(log2(x)); exact for integers up to 2**53
    return np.frexp((x - 1).astype(np.float64))[1].astype(np.int64)


def kernel_memory(c_in: np.ndarray | int, c_out: np.ndarray | int, kernel: np.ndarray | int) -> np.ndarray:
    """int64 kernel memory in words of ``kernel x kernel`` convolutions from ``c_in`` to ``c_out`` channels
    (elementwise over broadcast arrays)."""
    c_in, c_out, kernel = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in (c_in, c_out, kernel)))
    return c_in * (np.int64(1) << (_pow2_exponent(kernel * kernel) + _pow2_exponent(c_out)))


def neuron_memory(c_out: np.ndarray | int, height: np.ndarray | int, width: np.ndarray | int) -> np.ndarray:
    """int64 neuron memory in words of ``c_out`` maps of ``height x width`` neurons (elementwise)."""
    c_out, height, width = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in (c_out, height, width)))
    return c_out * (np.int64(1) << (_pow2_exponent(height) + _pow2_exponent(width)))


def fit_matrix(kernel: np.ndarray, neuron: np.ndarray, bias: np.ndarray,
               cores: tuple[Core, ...] = CORES) -> np.ndarray:
    """bool ``[..., L, len(cores)]``: layer ``l`` (memories ``[..., L]`` in words) fits core ``j``."""
    kernel, neuron, bias = (np.asarray(v, dtype=np.int64)[..., None] for v in (kernel, neuron, bias))
    limits = np.array([[c.kernel, c.neuron, c.bias] for c in cores], dtype=np.int64)
    return (kernel <= limits[:, 0]) & (neuron <= limits[:, 1]) & (bias <= limits[:, 2])


def assign_cores(fits: np.ndarray) -> list[int] | None:
    """A core for every layer, each core used at most once, or None when there is no such assignment.

    :param fits: bool ``[L, cores]`` (:func:`fit_matrix`).
    :returns: the core index of each layer, in layer order. The search is Edmonds-Karp on the flow network
        source -> layers -> cores -> sink with unit capacities, with edges in the order sinabs 3.1.3 creates
        them, so a feasible network gets sinabs' own assignment.
    """
    fits = np.asarray(fits, dtype=bool)
    layers, cores = fits.shape
    source, sink = 0, layers + cores + 1
    # Each edge is [target, capacity, flow, index of its reverse edge in adjacency[target]].
    adjacency: list[list[list[int]]] = [[] for _ in range(sink + 1)]

    def connect(s: int, t: int) -> None:
        adjacency[s].append([t, 1, 0, len(adjacency[t])])
        adjacency[t].append([s, 0, 0, len(adjacency[s]) - 1])

    for i in range(layers):
        connect(source, i + 1)
    for i in range(layers):
        for j in np.flatnonzero(fits[i]):
            connect(i + 1, layers + 1 + int(j))
    for j in range(cores):
        connect(layers + 1 + j, sink)
    while True:
        pred: list[tuple[int, int] | None] = [None] * (sink + 1)  # (node, edge index) that reached each node
        queue = deque([source])
        while queue:
            node = queue.popleft()
            for k, (t, cap, flow, _) in enumerate(adjacency[node]):
                if pred[t] is None and t != source and cap > flow:
                    pred[t] = (node, k)
                    queue.append(t)
        if pred[sink] is None:
            break
        node = sink
        while node != source:
            prev, k = pred[node]
            edge = adjacency[prev][k]
            edge[2] += 1
            adjacency[node][edge[3]][2] -= 1
            node = prev
    assignment = []
    for i in range(layers):
        used = [t - layers - 1 for t, cap, flow, _ in adjacency[i + 1] if flow == 1 and t > layers]
        if not used:
            return None
        assignment.append(used[0])
    return assignment


def core_kinds(cores: tuple[Core, ...] = CORES) -> tuple[list[Core], np.ndarray]:
    """The distinct cores and how many of each (int64 ``[kinds]``), in first-seen order."""
    kinds: list[Core] = []
    for core in cores:
        if core not in kinds:
            kinds.append(core)
    return kinds, np.array([sum(c == k for c in cores) for k in kinds], dtype=np.int64)


def mappable(kernel: np.ndarray, neuron: np.ndarray, bias: np.ndarray, present: np.ndarray | None = None,
             cores: tuple[Core, ...] = CORES) -> np.ndarray:
    """bool ``[N]``: whether each of N networks can place its layers on distinct cores.

    :param kernel, neuron, bias: int64 ``[N, L]`` memories in words of each network's layers (padded).
    :param present: bool ``[N, L]``, which of the L slots are layers (default: all).

    Exact for any core set: by Hall's theorem a matching exists iff, for every set S of core kinds, the layers
    that fit only cores of kinds in S number at most the cores of those kinds; with the four kinds of Speck that
    is 16 comparisons per network.
    """
    kernel = np.atleast_2d(np.asarray(kernel, dtype=np.int64))
    present = np.ones(kernel.shape, dtype=bool) if present is None else np.asarray(present, dtype=bool)
    kinds, counts = core_kinds(cores)
    fits = fit_matrix(kernel, neuron, bias, tuple(kinds))  # [N, L, kinds]
    masks = (fits * (1 << np.arange(len(kinds)))).sum(axis=-1)  # [N, L] bit set of the kinds a layer fits
    ok = ~((masks == 0) & present).any(axis=1)
    for size in range(1, len(kinds) + 1):
        for subset in itertools.combinations(range(len(kinds)), size):
            bits = sum(1 << k for k in subset)
            inside = present & (masks != 0) & ((masks & ~bits) == 0)
            ok &= inside.sum(axis=1) <= counts[list(subset)].sum()
    return ok
