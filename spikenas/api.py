"""The library's front door: score cells, score any spiking model, run a search.

Everything here is re-exported by :mod:`spikenas`; see the README's "Python API" section.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig, build_network
from spikenas.scoring import ScoreConfig, ScoreResult, get_score, score_candidate
from spikenas.search import SearchConfig, SearchResult, run_search
from spikenas.space import Genotype

CellsLike = Genotype | str | Sequence[Genotype | str]


def as_cells(cells: CellsLike, *, num_cells: int, op_set: str | None = None) -> tuple[Genotype, ...]:
    """Genotypes for every cell position from one genotype (or NAS-Bench-201 string / index in ``op_set``) used
    at every position, or one per position."""
    items = [cells] if isinstance(cells, Genotype | str) else list(cells)
    parsed = tuple(g if isinstance(g, Genotype) else Genotype.parse(str(g), op_set) for g in items)
    if len(parsed) == 1:
        parsed = parsed * num_cells
    if len(parsed) != num_cells:
        raise SpikeNASError(f"got {len(parsed)} genotypes for a macro with {num_cells} cells: give 1 or {num_cells}")
    return parsed


def score(
    cells: CellsLike,
    *,
    macro: MacroConfig,
    images: torch.Tensor | Iterable[torch.Tensor],
    name: str = "conv_depth",
    seed: int = 0,
    config: ScoreConfig | None = None,
    weight_seeding: str = "network",
) -> ScoreResult:
    """Score one architecture of the cell space, as the search does.

    :param cells: a genotype (or NAS-Bench-201 string) for every cell, or one per cell position.
    :param macro: the proxy network's configuration; its ``in_channels`` and ``input_size`` must match ``images``.
    :param images: float ``[B, C, H, W]`` scoring batch (B >= 2), or several.
    :param name: a registered score (:func:`spikenas.list_scores`); ignored when ``config`` is given.
    :param seed: weight-initialisation seed of the network (for scores that run it).
    :param config: a full :class:`~spikenas.scoring.ScoreConfig` (name and options) instead of ``name``.
    :returns: the :class:`~spikenas.scoring.ScoreResult` (``score``, ``status``, ...).
    """
    config = config or ScoreConfig(name=name, tie_break=())
    genotypes = as_cells(cells, num_cells=macro.num_cells)
    batches = [images] if isinstance(images, torch.Tensor) else list(images)
    if not batches:
        raise SpikeNASError("images is empty: give a [B, C, H, W] batch")
    for batch in batches:
        expected = (macro.in_channels, macro.input_size, macro.input_size)
        if batch.dim() != 4 or tuple(batch.shape[1:]) != expected or batch.shape[0] < 2:
            raise SpikeNASError(
                f"images must be [B, {expected[0]}, {expected[1]}, {expected[2]}] with B >= 2 for this macro, "
                f"got {tuple(batch.shape)}"
            )
    network = None
    if get_score(config.name).runs_network:
        network = build_network(list(genotypes), macro, seed=seed, weight_seeding=weight_seeding)
    return score_candidate(genotypes, network, batches, config=config, macro=macro, seed=seed)


def search(config: SearchConfig | None = None, *, progress: bool = False, **fields: object) -> SearchResult:
    """Run a search and return its :class:`~spikenas.search.SearchResult`; the JSON payload that the command
    line writes is its ``payload`` attribute.

    :param config: a :class:`~spikenas.search.SearchConfig`; or give its fields as keywords
        (``spikenas.search(op_set="2O", budget=1.2e6, bits=8)``).
    """
    if config is not None and fields:
        raise SpikeNASError(f"give a SearchConfig or its fields, not both (got fields {sorted(fields)})")
    config = config or SearchConfig(**fields)
    result, payload = run_search(config, progress=progress)
    result.payload = payload
    return result
