"""Studies run from ``python -m spikenas.analyze <study>``; one module per study.

A study module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``, and
is listed in :data:`STUDIES`.
"""

STUDIES = ("ops", "scenarios", "correlation", "fidelity", "selection", "rerank", "guard", "ground_truth")
