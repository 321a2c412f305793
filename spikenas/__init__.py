"""SpikeNAS: fast, memory-aware, training-free architecture search for spiking neural networks.

The public API::

    import spikenas
    macro = spikenas.MacroConfig(width=16, in_channels=1, input_size=16, num_classes=10)
    result = spikenas.score("|conv3x3~0|+|skip~0|conv3x3~1|+|skip~0|skip~1|conv3x3~2|", macro=macro, images=x)
    found = spikenas.search(op_set="2O", budget=1.2e6, bits=8)

Scores: :func:`score` (cells of the space), :func:`score_network` (any spikingjelly model),
:func:`list_scores`, :func:`register_score`. Search: :func:`search`, :class:`SearchRequest` (also named
``SearchConfig``). Space and memory: :class:`Genotype`, :class:`MacroConfig`, :func:`register_op`,
:class:`Budget`, :mod:`spikenas.memory` (``params``, ``bytes``).
"""

from __future__ import annotations

from importlib import metadata

from spikenas import memory
from spikenas.api import score, search
from spikenas.memory import Budget
from spikenas.nas import SearchConfig, SearchRequest, SearchResult
from spikenas.network import MacroConfig
from spikenas.ops import register_op, register_op_set
from spikenas.scoring import ScoreConfig, ScoreResult, list_scores, register_score, score_network
from spikenas.space import Genotype

try:
    __version__ = metadata.version("spikenas")
except metadata.PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0.0.0+unknown"

__all__ = [
    "Budget",
    "Genotype",
    "MacroConfig",
    "ScoreConfig",
    "ScoreResult",
    "SearchConfig",
    "SearchRequest",
    "SearchResult",
    "__version__",
    "list_scores",
    "memory",
    "register_op",
    "register_op_set",
    "register_score",
    "score",
    "score_network",
    "search",
]
