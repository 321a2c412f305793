"""The library's front door: score cells, score any spiking model, run a search.

Everything here is re-exported by :mod:`spikenas`; see the README's "Python API" section.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Iterable, Sequence

import torch

from spikenas.argparsing import SEED_LIMIT
from spikenas.errors import SpikeNASError
from spikenas.nas import SearchConfig, SearchResult, run_search
from spikenas.network import WEIGHT_SEEDINGS, MacroConfig, build_network
from spikenas.resources import SIZE_FIELDS
from spikenas.scoring import ScoreConfig, ScoreResult, get_score, score_candidate
from spikenas.scoring.evaluate import check_images
from spikenas.space import Genotype

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


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` if it is an integer in ``0..2**32 - 1`` (what numpy and torch both accept).

    :raises SpikeNASError: naming ``name``, the value and the range.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < SEED_LIMIT:
        raise SpikeNASError(f"{name} must be an integer in 0..{SEED_LIMIT - 1}, got {seed!r} ({type(seed).__name__})")
    return int(seed)


def _accepts(value: object, hint: object) -> bool:
    """Whether ``value`` is of the annotated type ``hint`` (int, float, str, bool, a class, or a union of them);
    bools are not numbers here, and floats must be finite."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_accepts(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a generic alias (tuple[str, ...]): left to the config's own checks


def _type_name(hint: object) -> str:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    names = {type(None): "None", float: "a finite number", int: "an integer"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def search_config(fields: dict[str, object]) -> SearchConfig:
    """A :class:`SearchConfig` from keyword ``fields``, each checked against its annotated type first.

    :raises SpikeNASError: naming an unknown field, or a field, its value and the type it must have.
    """
    known = {f.name: f for f in dataclasses.fields(SearchConfig)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise SpikeNASError(f"unknown search fields {unknown}; SearchConfig has {sorted(known)}")
    hints = typing.get_type_hints(SearchConfig)
    for name, value in fields.items():
        if not _accepts(value, hints[name]):
            raise SpikeNASError(
                f"{name} must be {_type_name(hints[name])}, got {value!r} ({type(value).__name__})"
            )
    if "seed" in fields:
        check_seed(fields["seed"])
    for name in SIZE_FIELDS:  # at least 1: MacroConfig checks them only once the data is loaded (0: never)
        value = fields.get(name)
        if value is not None and value < 1:
            raise SpikeNASError(f"{name} must be an integer >= 1, got {value!r}")
    return SearchConfig(**fields)


def search(config: SearchConfig | None = None, *, progress: bool = False, **fields: object) -> SearchResult:
    """Run a search and return its :class:`~spikenas.nas.SearchResult`; the JSON payload that the command
    line writes is its ``payload`` attribute.

    :param config: a :class:`~spikenas.nas.SearchConfig`; or give its fields as keywords
        (``spikenas.search(op_set="2O", budget=1.2e6, bits=8)``).
    """
    if config is not None and fields:
        raise SpikeNASError(f"give a SearchConfig or its fields, not both (got fields {sorted(fields)})")
    if config is not None and not isinstance(config, SearchConfig):
        raise SpikeNASError(f"config must be a SearchConfig or None, got {type(config).__name__}")
    if config is not None:  # one built directly: the same checks as fields given here
        search_config({f.name: getattr(config, f.name) for f in dataclasses.fields(SearchConfig)})
    config = config or search_config(fields)
    result, payload = run_search(config, progress=progress)
    result.payload = payload
    return result
