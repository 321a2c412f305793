"""Training searched networks: the library (:mod:`spikenas.train.trainer`) and the ``train`` command
(``python -m spikenas.train``, ``spikenas train``)."""

from __future__ import annotations

from spikenas.train.recipes import RECIPES, Recipe, get_recipe
from spikenas.train.trainer import CHECKPOINT_NAME, HEAD_INITS, TrainConfig, TrainResult, evaluate, train

__all__ = [
    "CHECKPOINT_NAME", "HEAD_INITS", "RECIPES", "Recipe", "TrainConfig", "TrainResult", "evaluate", "get_recipe",
    "train",
]
