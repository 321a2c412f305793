"""Fingerprints that let results.json, checkpoints and exported files check each other.

A network's fingerprint is its cells (NAS-Bench-201 strings, with their op set and index in it where the cell
lies in the set), its macro configuration, how its weights were quantised, and a short digest of the cells and
macro. Training records it with the epochs asked and finished; export copies it into the graph and its report.
Readers check a file against itself (a cell string against its index and op set) and against its neighbours
(results.json against the checkpoint beside it) with the helpers here, and every disagreement is one
:class:`~spikenas.errors.SpikeNASError` line naming the file, the field and both values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig
from spikenas.neuron import NeuronConfig
from spikenas.ops import get_op_set
from spikenas.space import Genotype

_MISSING = object()


def _short(value: object, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def network_digest(cells: Sequence[str], macro: dict) -> str:
    """16 hex digits of SHA-256 over the cells' NAS-Bench-201 strings and the macro fields (canonical JSON)."""
    text = json.dumps({"cells": list(cells), "macro": macro}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_cell(genotype: Genotype, op_set: str | None) -> dict:
    """``{"nb201", "op_set", "index"}`` of one cell; ``index`` is None when an op is not in ``op_set``."""
    ops = get_op_set(op_set) if op_set is not None else ()
    inside = op_set is not None and all(o in ops for o in genotype.ops)
    return {"nb201": genotype.to_nb201(), "op_set": op_set, "index": genotype.index(op_set) if inside else None}


def network_fingerprint(
    cells: Sequence[Genotype], macro: dict, *, op_set: str | None = None, quantization: dict | None = None
) -> dict:
    """JSON-ready fingerprint of a network: digest, cells (:func:`describe_cell`), macro and quantisation."""
    return {
        "digest": network_digest([g.to_nb201() for g in cells], macro),
        "cells": [describe_cell(g, op_set) for g in cells],
        "macro": dict(macro),
        "quantization": quantization,
    }


def first_differing_field(theirs: object, ours: object, prefix: str = "") -> tuple[str, str, str] | None:
    """The first field (dotted path) where two JSON-like values differ, with both values shortened; or None."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        for key in sorted(set(theirs) | set(ours), key=str):
            a, b = theirs.get(key, _MISSING), ours.get(key, _MISSING)
            if a is _MISSING or b is _MISSING:
                return (f"{prefix}{key}", "missing" if a is _MISSING else _short(a),
                        "missing" if b is _MISSING else _short(b))
            found = first_differing_field(a, b, f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    if isinstance(theirs, (list, tuple)) and isinstance(ours, (list, tuple)) and len(theirs) == len(ours):
        for i, (a, b) in enumerate(zip(theirs, ours, strict=True)):
            found = first_differing_field(a, b, f"{prefix}{i}.")
            if found is not None:
                return found
        return None
    if theirs == ours and type(theirs) is type(ours):
        return None
    return prefix.rstrip(".") or "value", _short(theirs), _short(ours)


def field(payload: object, dotted: str, path: str | Path, kind: type | tuple[type, ...] = object) -> object:
    """``payload[a][b]...`` for ``dotted`` ``"a.b"``, required present and of type ``kind``.

    :raises SpikeNASError: naming the file and the field when it is missing or of another type.
    """
    value = payload
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise SpikeNASError(f"{path}: required field {dotted!r} is missing (no default is assumed)")
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds and object not in kinds):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise SpikeNASError(f"{path}: field {dotted!r} must be {names}, got {_short(value)}")
    return value


def check_macro(macro: object, path: str | Path, where: str = "macro") -> MacroConfig:
    """The :class:`~spikenas.network.MacroConfig` of a recorded macro dict, every field required (none defaults)
    except ``family``, which :meth:`~spikenas.network.MacroConfig.to_dict` writes only for the Speck family.

    :raises SpikeNASError: naming the file and the missing, unknown or invalid field.
    """
    if not isinstance(macro, dict):
        raise SpikeNASError(f"{path}: {where} must be an object of network fields, got {_short(macro)}")
    neuron = field(macro, "neuron", path, dict) if "neuron" in macro else None
    for kind, values, prefix in ((MacroConfig, macro, where), (NeuronConfig, neuron, f"{where}.neuron")):
        names = {f.name for f in dataclasses.fields(kind)}
        missing = sorted(names - set(values or {}) - ({"family"} if kind is MacroConfig else set()))
        unknown = sorted(set(values or {}) - names)
        if missing or unknown:
            problem = f"lacks {', '.join(missing)}" if missing else f"has unknown fields {', '.join(unknown)}"
            raise SpikeNASError(f"{path}: {prefix} {problem} (every field is required; no default is assumed)")
    try:
        return MacroConfig(**{**macro, "neuron": NeuronConfig(**neuron)})
    except (SpikeNASError, TypeError, ValueError) as err:
        raise SpikeNASError(f"{path}: {where}: {err}") from err


def check_cell(record: object, path: str | Path, where: str, op_set: str | None = None) -> Genotype:
    """The genotype of one cell record (``{"nb201", "ops"?, "op_set"?, "index"?}``), checked against itself.

    The string must parse; ``ops``, when present, must be its ops; ``index``, when present and not None, must
    be the string's index in the record's ``op_set`` (else ``op_set``).
    :raises SpikeNASError: naming the file, the field and both values.
    """
    if not isinstance(record, dict):
        raise SpikeNASError(f"{path}: {where} must be an object with 'nb201', got {_short(record)}")
    text = field(record, "nb201", path, str)
    try:
        genotype = Genotype.from_nb201(text)
    except SpikeNASError as err:
        raise SpikeNASError(f"{path}: {where}.nb201: {err}") from err
    if "ops" in record and record["ops"] != list(genotype.ops):
        raise SpikeNASError(
            f"{path}: {where}.ops is {_short(record['ops'])} but {where}.nb201 {text!r} has ops "
            f"{_short(list(genotype.ops))}"
        )
    index = record.get("index")
    if index is not None:
        op_set = record.get("op_set", op_set)
        if not isinstance(op_set, str) or isinstance(index, bool) or not isinstance(index, int):
            raise SpikeNASError(f"{path}: {where}.index {_short(index)} needs an integer index and an op set, "
                                f"got op set {_short(op_set)}")
        try:
            from_index = Genotype.from_index(index, op_set)
        except SpikeNASError as err:
            raise SpikeNASError(f"{path}: {where}.index: {err}") from err
        if from_index != genotype:
            raise SpikeNASError(
                f"{path}: {where}.nb201 {text!r} disagrees with {where}.index {index} in op set {op_set}, which is "
                f"{from_index.to_nb201()!r}"
            )
    return genotype


def check_finished(path: str | Path, finished: int, asked: int, *, allow: bool, flag: str = "--allow-unfinished"
                   ) -> None:
    """Refuse a training that stopped before the epochs it was asked for, unless ``allow``."""
    if finished < asked and not allow:
        raise SpikeNASError(
            f"{path}: training did not finish: epochs finished {finished}, epochs asked {asked} (resume it with "
            f"python -m spikenas.train --resume, or pass {flag} to use it anyway)"
        )
