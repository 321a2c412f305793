"""Neuromorphic hardware targets: what a chip holds, and how a network's layers are placed on it.

Importing this package registers the built-in targets (:mod:`spikenas.hardware.target`'s registry):
``generic``, ``loihi2``, ``spinnaker2``, ``xylo`` and ``speck``.
"""

from spikenas.hardware import generic, loihi2, speck_target, spinnaker2, xylo  # noqa: F401  (they register)
from spikenas.hardware.target import Target, TargetFit, get_target, register_target, target_names

__all__ = ["Target", "TargetFit", "get_target", "register_target", "target_names"]
