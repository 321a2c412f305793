"""The library's front door: score cells, score any spiking model, run a search.

Everything here is re-exported by :mod:`spikenas`; see the README's "Python API" section.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import torch

from spikenas.errors import SpikeNASError
from spikenas.nas import SearchRequest, SearchResult, run_search
from spikenas.network import WEIGHT_SEEDINGS, MacroConfig, build_network
from spikenas.scoring import ScoreConfig, ScoreResult, get_score, score_candidate
from spikenas.scoring.evaluate import check_images
from spikenas.space import Genotype
from spikenas.typecheck import check_seed

__all__ = ["as_cells", "check_seed", "score", "search"]

CellsLike = Genotype | str | Sequence[Genotype | str]


def as_cells(cells: CellsLike, *, num_cells: int, op_set: str | None = None) -> tuple[Genotype, ...]:
    """Genotypes for every cell position from one genotype (or NAS-Bench-201 string / index in ``op_set``) used
    at every position, or one per position."""
    if isinstance(cells, Genotype | str):
        items = [cells]
    elif isinstance(cells, Sequence):
        items = list(cells)
    else:
        raise SpikeNASError(
            f"cells must be a Genotype, a NAS-Bench-201 string, or a list of them (one per cell), "
            f"got {type(cells).__name__}"
        )
    if not items:
        raise SpikeNASError(f"cells is empty: give 1 or {num_cells} genotypes")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, Genotype | str | numbers.Integral):
            raise SpikeNASError(
                f"each of cells must be a Genotype, a NAS-Bench-201 string or an index in an op set, "
                f"got {item!r} ({type(item).__name__})"
            )
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
    :returns: the :class:`~spikenas.scoring.ScoreResult` (``score``, ``status``, ...); images holding NaN or an
        infinity give the status ``invalid_input`` (score -inf) whatever the score.
    :raises SpikeNASError: a wrong type, dtype, shape or channel count, named with what is allowed.
    """
    if not isinstance(macro, MacroConfig):
        raise SpikeNASError(f"macro must be a MacroConfig, got {type(macro).__name__}")
    if config is not None and not isinstance(config, ScoreConfig):
        raise SpikeNASError(f"config must be a ScoreConfig or None, got {type(config).__name__}")
    if not isinstance(name, str):
        raise SpikeNASError(f"name must be a registered score's name (str), got {name!r} ({type(name).__name__})")
    check_seed(seed)
    if weight_seeding not in WEIGHT_SEEDINGS:
        raise SpikeNASError(f"weight_seeding must be one of {WEIGHT_SEEDINGS}, got {weight_seeding!r}")
    config = config or ScoreConfig(name=name, tie_break=())
    genotypes = as_cells(cells, num_cells=macro.num_cells)
    batches = check_images(images, macro)
    network = None
    if get_score(config.name).runs_network:
        network = build_network(list(genotypes), macro, seed=seed, weight_seeding=weight_seeding)
    return score_candidate(genotypes, network, batches, config=config, macro=macro, seed=seed)


def search(request: SearchRequest | None = None, *, progress: bool = False, **fields: object) -> SearchResult:
    """Run a search and return its :class:`~spikenas.nas.SearchResult`; the JSON payload that the command
    line writes is its ``payload`` attribute.

    :param request: a :class:`~spikenas.nas.request.SearchRequest` (``spikenas.SearchConfig`` is the same class),
        made of parts; or give its flat fields as keywords (``spikenas.search(op_set="2O", budget=1.2e6, bits=8)``,
        :meth:`~spikenas.nas.request.SearchRequest.from_fields`): the command line builds the same request from
        its flags, and the library fills in the same defaults, so both give the same result.
    :raises SpikeNASError: an unknown field, a value of the wrong type, an option the algorithm does not read,
        or any error of the search itself.
    """
    if request is not None and fields:
        raise SpikeNASError(f"give a SearchRequest or its fields, not both (got fields {sorted(fields)})")
    if request is not None and not isinstance(request, SearchRequest):
        raise SpikeNASError(f"request must be a SearchRequest (spikenas.SearchConfig) or None, "
                            f"got {type(request).__name__}")
    request = request or SearchRequest.from_fields(**fields)
    result, payload = run_search(request, progress=progress)
    result.payload = payload
    return result
