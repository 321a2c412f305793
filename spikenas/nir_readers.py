"""What each NIR reader runs exactly, and the rewrites of an exported graph that make a file run in it.

:func:`spikenas.export.export_nir` builds a graph in NIR's own semantics (reader ``"nir"``; the file the
reference interpreter and any complete NIR reader runs). For a named reader, :func:`adapt` rewrites that graph
into the nodes the reader's importer maps to what NIR means, or refuses it with one line naming the first node
the reader cannot run (a :class:`~spikenas.errors.SpikeNASError`); nothing is written then. What the installed
readers do (snnTorch 1.0.0 ``snntorch.import_nir``, Norse 1.1.0 ``norse.torch.utils.import_nir``, both on
nirtorch 2.6), and the rewrite or refusal each needs:

* Flatten: both map ``nir.Flatten(start_dim, end_dim)`` to ``torch.nn.Flatten(start_dim, end_dim)`` verbatim,
  so NIR's ``start_dim=0`` (the first non-batch dimension) flattens the batch dimension of a ``[B, C, H, W]``
  input. Written as ``start_dim=-3`` (the same dimensions in NIR's unbatched types) the batch is kept.
* dt: snnTorch's LIF mapping hard-codes ``dt = 1e-4`` s; Norse's ``from_nir`` integrates with ``dt = 1e-3`` s
  unless called with another. Neither reads the graph's metadata, so the export must use that dt (another is
  refused: the LIF decays would change).
* Reset: both reset a spiking neuron to 0 (snnTorch ``reset_mechanism="zero"`` and asserting ``v_leak == 0``;
  Norse's default ``v_reset``), so a LIF with another ``v_reset`` is refused.
* AvgPool2d: snnTorch maps it (``count_include_pad`` as NIR). Norse has no mapping (the node is dropped
  silently): a 2x2 pool is written as ``nir.SumPool2d`` (Norse's ``LPPool2d(1)``, no padding) with the ``1/k^2``
  folded into the convolution that alone feeds it (its weight and bias) or else into the weights (not the
  biases) of the affine maps it alone feeds, through a Flatten; exact because pooling is linear and ``1/4`` is a
  power of two. A pool with padding (a cell's avgpool3x3 edge) or with nothing to fold into is refused.
* nir.Scale ``m`` (one term reaching a cell node along ``m`` paths): neither maps it (snnTorch fails, Norse
  drops it silently). It is written as a copy of the convolution computing the term, weight and bias times
  ``m``, followed by copies of the poolings between them (pooling is linear); refused where no convolution
  computes the term. For Norse the copies sit beside the terms they are summed with, which the execution order
  below refuses.
* Execution order: snnTorch's importer (``nirtorch.nir_to_torch``) runs nodes after their inputs. Norse's
  (``nirtorch.load``) runs them in depth-first order from the input, children in the file's edge order, and a
  node whose input has not run yet reads that input's value of the previous timestep (zero at the first); its
  module returns the value of the last node run. Edges are written so that the depth-first order follows the
  data flow where one exists; it exists only where every node's inputs lie on one path (the inputs of a node
  are all on the depth-first stack when it runs), so a node summing two terms of which neither is computed from
  the other (two convolution edges into one cell node) is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikenas.errors import SpikeNASError

try:
    import nir
except ImportError:  # spikenas.export names the missing extra before anything here runs
    nir = None


@dataclass(frozen=True)
class Reader:
    """One NIR reader's rules (see the module docstring)."""

    name: str  # as --for names it
    label: str  # as users name the reader, in messages
    dt: float | None  # seconds per timestep the importer integrates with; None: the graph's dt (NIR's semantics)
    dt_source: str  # where that dt comes from, in messages
    batch_flatten: bool  # write Flatten with a negative start_dim so that a leading batch dimension is kept
    sum_pools: bool  # AvgPool2d written as SumPool2d with 1/k^2 folded into a neighbouring weight
    scale: bool  # nir.Scale is mapped
    zero_reset: bool  # neurons reset to 0 whatever v_reset says
    depth_first: bool  # nodes run in depth-first order from the input (nirtorch.load)
    run: str  # how to import and run the file, recorded in its metadata


READERS: dict[str, Reader] = {
    "nir": Reader(name="nir", label="NIR", dt=None, dt_source="the graph's metadata", batch_flatten=False,
                  sum_pools=False, scale=True, zero_reset=False, depth_first=False,
                  run="any NIR reader: forward Euler at the metadata's dt, one call per timestep"),
    "snntorch": Reader(name="snntorch", label="snnTorch", dt=1e-4,
                       dt_source="snntorch.import_nir hard-codes it whatever the file says", batch_flatten=True,
                       sum_pools=False, scale=False, zero_reset=True, depth_first=False,
                       run="net = snntorch.import_nir.import_from_nir(nir.read(path)); out, state = net(x, state) "
                       "with x [B, C, H, W] once per timestep (state None at the first); the readout is the mean "
                       "of out over the timesteps; snntorch.utils.reset(net) before another input"),
    "norse": Reader(name="norse", label="Norse", dt=1e-3,
                    dt_source="from_nir's default; it does not read the file's", batch_flatten=True,
                    sum_pools=True, scale=False, zero_reset=True, depth_first=True,
                    run="net = norse.torch.utils.import_nir.from_nir(nir.read(path)); out, state = net(x, state) "
                    "with x [B, C, H, W] once per timestep (state None at the first); the readout is the mean of "
                    "out over the timesteps"),
}


def get_reader(name: str | None) -> Reader:
    """The rules of reader ``name`` (one of :data:`READERS`; None is ``"nir"``)."""
    if name is None:
        return READERS["nir"]
    if name not in READERS:
        raise SpikeNASError(f"reader must be one of {', '.join(READERS)}, got {name!r}")
    return READERS[name]


def reader_dt(reader: Reader, dt: float | None, default: float) -> float:
    """The seconds per timestep to export for ``reader``: ``dt``, or when None the reader's (``default`` for NIR).

    :raises SpikeNASError: a dt the reader's importer does not use.
    """
    if dt is None:
        return default if reader.dt is None else reader.dt
    if reader.dt is not None and not math.isclose(dt, reader.dt, rel_tol=1e-9):
        raise SpikeNASError(f"{reader.name} cannot run dt {dt!r}: {reader.label} integrates with dt {reader.dt!r} s "
                            f"({reader.dt_source}), so every LIF decay would change; leave --dt out (it is "
                            f"{reader.dt!r} for --for {reader.name}) or use --for nir")
    return dt


def _refuse(reader: Reader, name: str, what: str, why: str, fits: str) -> SpikeNASError:
    return SpikeNASError(f"{reader.name} cannot run node {name} ({what}): {why}; {fits}")


def _pool_text(node: object) -> str:
    k, s, p = (tuple(int(v) for v in np.atleast_1d(a)) for a in (node.kernel_size, node.stride, node.padding))
    return f"AvgPool2d {k[0]}x{k[-1]} stride {s[0]} padding {p[0]}"


def _scaled(node: object, factor: np.float32, *, bias: bool) -> object:
    """A copy of an affine node (Conv2d, Affine, Linear) with its weight, and its bias when ``bias``, times
    ``factor``."""
    if isinstance(node, nir.Conv2d):
        return nir.Conv2d(input_shape=node.input_shape, weight=node.weight * factor, stride=node.stride,
                          padding=node.padding, dilation=node.dilation, groups=node.groups,
                          bias=node.bias * factor if bias else node.bias)
    if isinstance(node, nir.Affine):
        return nir.Affine(weight=node.weight * factor, bias=node.bias * factor if bias else node.bias)
    return nir.Linear(weight=node.weight * factor)


def _fold_pool(name: str, nodes: dict[str, object], edges: list[tuple[str, str]], reader: Reader) -> None:
    """Replace the AvgPool2d ``name`` in ``nodes`` by a SumPool2d, its 1/k^2 folded into a neighbour."""
    node = nodes[name]
    kernel = np.atleast_1d(node.kernel_size).astype(int)
    if np.any(np.atleast_1d(node.padding) != 0):
        raise _refuse(reader, name, f"{_pool_text(node)}{' inside a cell' if name.startswith('c') else ''}",
                      f"{reader.label} has no average pooling and its sum pooling has no padding",
                      "use cells without an avg_pool_3x3 edge (op set 2O), or --for nir or --for snntorch")
    area = int(np.prod(kernel)) if kernel.size > 1 else int(kernel[0]) ** 2
    factor = np.float32(1.0 / area)
    affine = (nir.Conv2d, nir.Affine, nir.Linear)

    def sources(n: str) -> list[str]:
        return [s for s, d in edges if d == n]

    def sinks(n: str) -> list[str]:
        return [d for s, d in edges if s == n]

    before = sources(name)
    if len(before) == 1 and isinstance(nodes[before[0]], nir.Conv2d) and sinks(before[0]) == [name]:
        nodes[before[0]] = _scaled(nodes[before[0]], factor, bias=True)  # pool(conv(x)) / k^2 = pool(conv(x) / k^2)
    else:
        after: list[str] = []  # the affine maps that read the pool alone, directly or through a Flatten
        for n in sinks(name):
            chain = sinks(n) if isinstance(nodes[n], nir.Flatten) and sources(n) == [name] else [n]
            via = n if chain != [n] else name
            if not chain or not all(isinstance(nodes[m], affine) and sources(m) == [via] for m in chain):
                raise _refuse(reader, name, _pool_text(node), f"{reader.label} has no average pooling, and the 1/k^2 "
                              "of a sum pooling has no convolution or affine map of its own to fold into",
                              "use --for nir or --for snntorch")
            after += chain
        for n in after:  # W (pool(x) / k^2) = (W / k^2) pool(x); the bias is added after, unscaled
            nodes[n] = _scaled(nodes[n], factor, bias=False)
    nodes[name] = nir.SumPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding)


def _depth_first(nodes: dict[str, object], edges: list[tuple[str, str]]) -> list[str]:
    """The order in which nirtorch.load's GraphExecutor runs ``nodes``: depth-first from ``input``, each node's
    children in the order of their first edge, a node run when first reached."""
    children: dict[str, list[str]] = {name: [] for name in nodes}
    for src, dst in edges:
        if dst not in children[src]:
            children[src].append(dst)
    order: list[str] = []
    seen: set[str] = set()
    stack = ["input"]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        order.append(name)
        stack += reversed([c for c in children[name] if c not in seen])
    return order


def _check_depth_first(nodes: dict[str, object], edges: list[tuple[str, str]], reader: Reader) -> None:
    order = _depth_first(nodes, edges)
    position = {name: i for i, name in enumerate(order)}
    for name in order:
        inputs = [s for s, d in edges if d == name]
        late = [s for s in inputs if position.get(s, len(order)) > position[name]]
        if late:
            early = [s for s in inputs if s not in late]
            raise _refuse(reader, name, f"the sum of {', '.join(early)} and {', '.join(late)}",
                          f"{reader.label}'s loader (nirtorch.load) runs nodes depth-first, so {name} would run "
                          f"before {late[0]} and read its value of the previous timestep (no order runs every input "
                          "first: they do not lie on one path)",
                          "use cells in which each node sums terms on one path (such as the cell input and one "
                          "convolution path), or --for snntorch or --for nir")
    if order[-1] != "output" or len(order) != len(nodes):
        raise SpikeNASError(f"{reader.name}: the depth-first order ends at {order[-1]!r}, not at the output node "
                            f"(reached {len(order)} of {len(nodes)} nodes)")


def _unscale(nodes: dict[str, object], edges: list[tuple[str, str]],
             reader: Reader) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """Every nir.Scale ``m`` of a term rewritten, under the Scale's name, as a copy of the convolution that
    computes the term with its weight and bias times ``m``, followed by copies of the poolings between that
    convolution and the term (a downconv's pooling, a cell's pool edges): pooling is linear, so
    ``m pool(conv(x)) = pool((m conv)(x))``; exact for ``m`` a power of two, within rounding otherwise."""
    out: dict[str, object] = {}
    edges = list(edges)
    for name, node in nodes.items():
        if not isinstance(node, nir.Scale):
            out[name] = node
            continue
        factor = np.unique(node.scale)
        (term,) = [s for s, d in edges if d == name]
        chain = [term]  # the term, then back through single-input poolings to the convolution computing it
        while isinstance(nodes[chain[-1]], nir.AvgPool2d):
            inputs = [s for s, d in edges if d == chain[-1]]
            if len(inputs) != 1:
                break
            chain.append(inputs[0])
        if factor.size != 1 or not isinstance(nodes[chain[-1]], nir.Conv2d):
            raise _refuse(reader, name, f"nir.Scale x{float(factor[0]):g}: one term reaching a cell node along "
                          "several paths", f"{reader.label}'s importer has no mapping for nir.Scale, and {term} is "
                          "not computed by a convolution that could be scaled instead",
                          "use cells in which no node is reached twice by the same skip path, or --for nir")
        copies = [f"{name}_{c}" for c in chain[1:]][::-1] + [name]  # the convolution's copy first, the term's last
        out[copies[0]] = _scaled(nodes[chain[-1]], np.float32(factor[0]), bias=True)
        edges = [e for e in edges if e != (term, name)] + [(s, copies[0]) for s, d in edges if d == chain[-1]]
        for src, dst, pool in zip(copies[:-1], copies[1:], chain[-2::-1], strict=True):
            p = nodes[pool]
            out[dst] = nir.AvgPool2d(kernel_size=p.kernel_size, stride=p.stride, padding=p.padding)
            edges.append((src, dst))
    while True:  # a term read only through Scale nodes is no longer read: drop it (and what only it read)
        unread = [n for n in out if n != "output" and not any(s == n for s, _ in edges)]
        if not unread:
            return out, edges
        out = {n: v for n, v in out.items() if n not in unread}
        edges = [(s, d) for s, d in edges if d not in unread]


def adapt(nodes: dict[str, object], edges: list[tuple[str, str]],
          reader: Reader) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """The nodes and edges of an exported NIR graph (NIR's semantics, data-flow order) rewritten for ``reader``.

    :param nodes: name -> NIR node, in data-flow order (an input before its readers); not modified.
    :param edges: ``(source, destination)`` pairs.
    :returns: new nodes and edges; for reader ``"nir"`` the same objects.
    :raises SpikeNASError: one line naming the first node ``reader`` cannot run exactly, why and what would fit.
    """
    if reader.name == "nir":
        return nodes, edges
    nodes, edges = (dict(nodes), list(edges)) if reader.scale else _unscale(nodes, edges, reader)
    for name, node in list(nodes.items()):
        if isinstance(node, nir.LIF) and reader.zero_reset and np.any(node.v_reset != 0):
            raise _refuse(reader, name, f"LIF v_reset {float(np.unique(node.v_reset)[0]):g}",
                          f"{reader.label}'s importer resets a neuron to 0", "train with v_reset 0, or --for nir")
        if isinstance(node, nir.AvgPool2d) and reader.sum_pools:
            _fold_pool(name, nodes, edges, reader)
        if isinstance(node, nir.Flatten) and reader.batch_flatten:
            shape = node.input_type["input"]
            start = node.start_dim - len(shape) if node.start_dim >= 0 else node.start_dim
            end = node.end_dim - len(shape) if node.end_dim >= 0 else node.end_dim
            nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start, end_dim=end)
    if reader.depth_first:
        position = {name: i for i, name in enumerate(nodes)}
        edges = sorted(edges, key=lambda e: (position[e[0]], position[e[1]]))
        _check_depth_first(nodes, edges, reader)
    return nodes, list(edges)
