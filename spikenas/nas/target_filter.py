"""Which candidate networks a hardware target runs, decided before any network is built.

A search with ``--target NAME`` (:mod:`spikenas.hardware.target`) scores only the candidates the target runs:
:func:`target_mask` asks the target for all of a pass's candidates at once (a target with a vectorised
``mask``, as Speck's, answers in one call; any other is asked network by network from the cached layer graphs),
and :func:`no_candidate_message` is the one line a search raises when none is left.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np

from spikenas.errors import SpikeNASError
from spikenas.layer_graph import cell_network_graph
from spikenas.network import MacroConfig
from spikenas.ops import op_set_family
from spikenas.space import Genotype


def target_mask(target: object, candidates: Sequence[Sequence[Genotype]],
                macro: MacroConfig) -> tuple[np.ndarray, list[str | None]]:
    """bool ``[N]``: which of the ``candidates`` (genotypes, one per cell of ``macro``) ``target`` runs, and
    for each other the reason (one line)."""
    if hasattr(target, "mask"):
        return target.mask(candidates, macro)
    reasons: list[str | None] = []
    for cells in candidates:
        fit = target.fit(cell_network_graph(list(cells), macro), timesteps=macro.timesteps)
        reasons.append(None if fit.fits else fit.reason)
    return np.array([r is None for r in reasons], dtype=bool), reasons


def check_target_space(target: object, op_set: str, macro: MacroConfig) -> None:
    """Refuse, up front and in one line, a search whose networks ``target`` cannot run at all: an op set of a
    network family the target does not run (``target.families``), or a target that refuses the space's networks
    (e.g. Xylo and any convolution network), judged on the network whose cells are all skip connections.

    :raises SpikeNASError: naming the target, the op set and what would fit.
    """
    family = op_set_family(op_set)
    if family not in target.families:
        if family == "snasnet":
            raise SpikeNASError(f"target {target.name} runs the {', '.join(target.families)} space only (IAF cells "
                                f"whose nodes merge spike streams): use op set speck (--ops speck), got {op_set}")
        raise SpikeNASError(f"op set {op_set} builds {family} networks; target {target.name} does not run them "
                            "(use --target speck or generic)")
    probe = cell_network_graph([Genotype(("skip",) * 6)] * macro.num_cells, macro)
    refused = target.refusal(probe)
    if refused is not None:
        raise SpikeNASError(refused)


def no_candidate_message(target: object, reasons: Sequence[str | None], *, what: str) -> str:
    """One line for a search left with no candidate ``target`` runs: the commonest reasons with counts."""
    counts = collections.Counter(_kind(r) for r in reasons if r is not None)
    top = counts.most_common(1)[0][0] if counts else ""
    example = next((r for r in reasons if r is not None and _kind(r) == top), "")
    kinds = ", ".join(f"{n} {'candidate' if n == 1 else 'candidates'}: {kind}" for kind, n in counts.most_common(3))
    return f"no candidate of {what} runs on target {target.name} ({kinds}); for example, {example}"


def _kind(reason: str) -> str:
    """The limit a reason names, without its layers and figures: the clause after its last ``;`` (the plans
    phrase their reasons as ``<what this network needs>; <the limit>``), digits blanked."""
    kind = reason.rsplit(";", 1)[-1].split("(")[0].strip()
    return "".join("N" if c.isdigit() else c for c in kind)
