"""Hardware targets: what a chip can hold, whether a network fits it, and the registry of targets.

A :class:`Target` describes one deployment target by public constants (each with its :class:`Source`) and
answers two questions about a network's layer graph (:class:`spikenas.layer_graph.LayerGraph`):

* :meth:`Target.refusal`: one line saying why the target cannot run this kind of network at all (a layer kind
  its mapper has no mapping for), or None;
* :meth:`Target.fit`: a :class:`TargetFit`, whether this network fits the chip's resources, what each core,
  processing element or chip resource holds against its limit, and the totals.

Targets are registered by name (:func:`register_target`, :func:`get_target`, :func:`target_names`); the built-in
ones register when :mod:`spikenas.hardware` is imported.
"""

from __future__ import annotations

import json
import numbers
import warnings
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from spikenas.errors import SpikeNASError

if TYPE_CHECKING:
    from spikenas.layer_graph import LayerGraph


@dataclass(frozen=True)
class Source:
    """Where a target's constants come from."""

    title: str  # the document: authors or publisher, title, year (or version)
    where: str  # its URL or file, and the place in it
    says: str  # what it states, as it states it; for a derived constant, how it is computed
    constants: tuple[str, ...]  # the target's fields it gives
    derived: bool = False  # the constants are computed from stated ones, not stated themselves

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {**asdict(self), "constants": list(self.constants)}


@dataclass(frozen=True)
class TargetFit:
    """Whether one network fits one target, and what it takes there.

    ``units`` lists the target's resources (a range of cores holding one layer, a processing element group, a
    chip-wide resource), each a dict of what it holds and its limit; ``totals`` the network's totals (neurons,
    synapses, bytes, cores) next to the chip's.
    """

    target: str
    fits: bool
    reason: str | None  # one line naming the limit broken and the figures; None when it fits
    units: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready fields (for results.json)."""
        return {"target": self.target, "fits": self.fits, "reason": self.reason, "units": list(self.units),
                "totals": dict(self.totals)}


class Target(ABC):
    """A deployment target. Subclasses are frozen dataclasses whose fields are the target's constants (each
    given by one of :attr:`sources`) and set :attr:`name`, :attr:`description` and :attr:`exporter`."""

    name: str
    description: str
    exporter: str  # the format a network is written in for this target's toolchain ("nir")
    sources: ClassVar[tuple[Source, ...]] = ()
    #: the network families (:data:`spikenas.network.FAMILIES`) whose networks the target runs
    families: ClassVar[tuple[str, ...]] = ("snasnet",)

    @abstractmethod
    def refusal(self, graph: LayerGraph) -> str | None:
        """One line saying why this target cannot run networks like ``graph`` at all, or None if it can in
        principle (whether this one fits is :meth:`fit`'s answer)."""

    @abstractmethod
    def place(self, graph: LayerGraph, *, timesteps: int) -> TargetFit:
        """The fit of a network this target does not refuse (:meth:`fit` checks that first)."""

    def fit(self, graph: LayerGraph, *, timesteps: int) -> TargetFit:
        """Whether ``graph`` fits this target when run for ``timesteps`` steps; a refused network does not fit
        and has the refusal as its reason.

        :raises SpikeNASError: ``timesteps`` is not an integer >= 1.
        """
        if isinstance(timesteps, bool) or not isinstance(timesteps, numbers.Integral) or timesteps < 1:
            raise SpikeNASError(f"timesteps must be an integer >= 1, got {timesteps!r}")
        refused = self.refusal(graph)
        if refused is not None:
            return TargetFit(self.name, False, refused)
        return self.place(graph, timesteps=int(timesteps))

    def require(self, graph: LayerGraph) -> None:
        """Refuse a network this target cannot run at all, up front.

        :raises SpikeNASError: with :meth:`refusal`'s line.
        """
        refused = self.refusal(graph)
        if refused is not None:
            raise SpikeNASError(refused)

    def constants(self) -> dict[str, Any]:
        """The target's constants (its dataclass fields other than name, description and exporter; none for a
        target that is not a dataclass)."""
        if not is_dataclass(self):
            return {}
        skip = {"name", "description", "exporter"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    def to_dict(self) -> dict:
        """JSON-ready description: name, description, exporter, constants and their sources."""
        return {"name": self.name, "description": self.description, "exporter": self.exporter,
                "constants": self.constants(), "sources": [s.to_dict() for s in self.sources]}


def positive_int(owner: str, name: str, value: object, *, allow_none: bool = False) -> None:
    """Check a target's constant ``name`` is an integer >= 1 (or None where ``allow_none``).

    :raises SpikeNASError: naming the target, the field and the value.
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        allowed = "an integer >= 1" + (" or None" if allow_none else "")
        raise SpikeNASError(f"{owner}: {name} must be {allowed}, got {value!r}")


# ----------------------------------------------------------------------------------------------------------
# Registry

_TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    """Register ``target`` under ``target.name``; re-registering a name warns and replaces it.

    :raises SpikeNASError: ``target`` is not a :class:`Target` or its name is not a non-empty string.
    """
    if not isinstance(target, Target):
        raise SpikeNASError(f"a target must be a spikenas.hardware.target.Target, got {type(target).__name__}")
    if not isinstance(target.name, str) or not target.name:
        raise SpikeNASError(f"a target's name must be a non-empty string, got {target.name!r}")
    if target.name in _TARGETS:
        warnings.warn(f"target {target.name!r} is already registered; replacing it", stacklevel=2)
    _TARGETS[target.name] = target
    return target


def get_target(name: str) -> Target:
    """The target registered as ``name``.

    :raises SpikeNASError: no target has that name (the message lists the registered ones).
    """
    if name not in _TARGETS:
        raise SpikeNASError(f"unknown target {name!r}; registered targets: {', '.join(target_names())}")
    return _TARGETS[name]


def target_names() -> list[str]:
    """Names of the registered targets, in registration order."""
    return list(_TARGETS)


def unregister_target(name: str) -> Target:
    """Remove and return the target registered as ``name`` (tests and plugins that register temporary ones).

    :raises SpikeNASError: no target has that name.
    """
    target = get_target(name)
    del _TARGETS[name]
    return target


def fit_summary(figures: dict) -> str:
    """One line on how a network sits on its target, from :meth:`TargetFit.to_dict`'s figures (a Speck-like
    fit lists each layer's core and memory)."""
    if not figures["fits"]:
        return f"target {figures['target']}: does NOT fit: {figures['reason']}"
    units = figures["units"]
    if units and "core" in units[0]:
        cores = ", ".join(f"{u['weight']}->core {u['core']} ({u['kernel_words']}/{u['core_kernel_words']} kernel, "
                          f"{u['neuron_words']}/{u['core_neuron_words']} neuron words)" for u in units)
        return f"target {figures['target']}: fits, {len(units)} layers on cores: {cores}"
    return f"target {figures['target']}: fits ({json.dumps(figures['totals'])})"
