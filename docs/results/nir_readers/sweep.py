"""How many networks each NIR reader runs exactly: export networks of one op set and cell count for a reader, run a
batch of 8 images over T = 4 through the reader's own importer, compare with the PyTorch model.

Usage, from the repository root (one JSON line; the lines of docs/deployment.md's table are in sweep.jsonl)::

    python docs/results/nir_readers/sweep.py OP_SET CELLS READER N

Every cell of the op set when it has at most N, else N cells drawn with seed CELLS; the same cell in every position.
The line counts the networks tried, run exactly (every step within 1e-5), refused (by the refusal's reason) and
mismatched (each with whether NIR's reference interpreter also differs from the model), and the largest
differences of the exact runs, per step and on the mean over T. The networks are the tests' ``lively`` ones
(random weights, BatchNorm statistics measured on other images and shifted up so that neurons fire).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root, for the tests' helpers

import nir  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from spikenas.errors import SpikeNASError  # noqa: E402
from spikenas.export import export_nir  # noqa: E402
from spikenas.space import Genotype, num_genotypes  # noqa: E402
from tests.test_export import run_nir, torch_outputs  # noqa: E402
from tests.test_nir_readers import RUN, config, images, lively  # noqa: E402

TOLERANCE = 1e-5


def sweep(op_set: str, cells: int, reader: str, n: int) -> dict:
    count = num_genotypes(op_set)
    rng = np.random.default_rng(cells)
    indices = list(range(count)) if count <= n else sorted(rng.choice(count, n, replace=False).tolist())
    c = config(cells)
    x = images(c)
    exact, refused, mismatched = 0, {}, []
    worst_step = worst_mean = 0.0
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.nir"
        for index in indices:
            genotypes = [Genotype.from_index(int(index), op_set)] * cells
            model = lively(genotypes, c)
            try:
                graph = export_nir(model, reader=reader)
            except SpikeNASError as err:
                text = str(err)
                reason = text.split("): ")[1].split(";")[0].split(",")[0][:60] if "): " in text else text[:60]
                refused[reason] = refused.get(reason, 0) + 1
                continue
            nir.write(path, graph)
            expected = torch_outputs(model, x)
            with contextlib.redirect_stdout(io.StringIO()):
                got = RUN[reader](nir.read(path), x, c.timesteps)
            if got.shape != expected.shape:
                mismatched.append([index, "shape"])
                continue
            step = (got - expected).abs().max().item()
            if step > TOLERANCE:
                reference = run_nir(export_nir(model), x, c.timesteps)
                also = (reference - expected).abs().max().item() > TOLERANCE
                mismatched.append([index, genotypes[0].to_nb201(), round(step, 4),
                                   "nir-reference-differs-too" if also else "reader-only"])
                continue
            exact += 1
            worst_step = max(worst_step, step)
            worst_mean = max(worst_mean, (got.mean(0) - expected.mean(0)).abs().max().item())
    return {"reader": reader, "op_set": op_set, "cells": cells, "tried": len(indices), "exact": exact,
            "refused": refused, "mismatch": mismatched, "max_step_diff_exact": worst_step,
            "max_mean_diff_exact": worst_mean, "seconds": round(time.time() - t0, 1)}


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    op_set, cells, reader, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    print(json.dumps(sweep(op_set, cells, reader, n)))
