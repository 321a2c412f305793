"""Checks of library arguments against their annotated types, each failure one line naming the value.

Python does not check a dataclass's annotations; the search request's parts (:mod:`spikenas.nas.request`)
call :func:`check_fields` so that ``width=4.5`` or ``budget=True`` is refused when the request is made, not
deep inside a search.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing

from spikenas.argparsing import SEED_LIMIT
from spikenas.errors import SpikeNASError


def accepts(value: object, hint: object) -> bool:
    """Whether ``value`` is of the annotated type ``hint`` (int, float, str, bool, a class, or a union of them);
    bools are not numbers here, and floats must be finite."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(accepts(value, h) for h in typing.get_args(hint))
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
    return True  # a generic alias (tuple[str, ...]): left to the owner's own checks


def type_name(hint: object) -> str:
    """How an error message names the annotated type ``hint`` ("an integer", "a finite number or None")."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(type_name(h) for h in typing.get_args(hint))
    names = {type(None): "None", float: "a finite number", int: "an integer", dict: "a dict"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def check_value(name: str, value: object, hint: object) -> None:
    """Raise unless ``value`` is of the annotated type ``hint``.

    :raises SpikeNASError: ``"<name> must be <type>, got <value> (<its type>)"``.
    """
    if not accepts(value, hint):
        raise SpikeNASError(f"{name} must be {type_name(hint)}, got {value!r} ({type(value).__name__})")


def check_fields(obj: object) -> None:
    """Check every field of the dataclass instance ``obj`` against its annotation (:func:`check_value`)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        check_value(f.name, getattr(obj, f.name), hints[f.name])


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` if it is an integer in ``0..2**32 - 1`` (what numpy and torch both accept).

    :raises SpikeNASError: naming ``name``, the value and the range.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < SEED_LIMIT:
        raise SpikeNASError(f"{name} must be an integer in 0..{SEED_LIMIT - 1}, got {seed!r} ({type(seed).__name__})")
    return int(seed)
